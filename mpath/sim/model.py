"""What the simulator is asked to run and what it reports.

A simulated path is a *server* with a bandwidth and a fixed per-command latency:

* Commands on one path are transferred one after another (FIFO), each taking
  ``size / bandwidth`` of the path's time (times a small random jitter, see
  :class:`Scenario`), and complete ``latency`` after their transfer ends. The latency
  overlaps: with several commands in flight a path is busy transferring all the time
  and delivers its full bandwidth; with one command at a time it delivers only
  ``size / (size / bandwidth + latency)``. This is how a network path behaves (wire
  serialisation plus round trip) and it is the model in which queueing hurts: an I/O
  sent to a path that already holds k commands waits for all k to be transferred.
* A path that *fails* ends every command it holds at that instant, as a connection
  reset would; the simulator reports them to the selector (``end_io``) and retries them
  at once on whatever path the selector picks next. A failed path is reinstated when it
  *recovers*.
* A *rate change* applies to commands sent after it; the few already queued on the
  path keep the times they were given (at most a queue's worth of skew).
* The load comes from one or more *workers* (:class:`Worker`), each keeping its own
  number of I/Os of its own size outstanding, so small and large I/Os can share the
  paths at once; latency is reported overall and per worker.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from mpath.errors import UsageError

DEFAULT_LATENCY_MS = 0.1
DEFAULT_JITTER = 0.05
MB = 1e6  # MB/s here are decimal megabytes per second, like tc's and fio's


@dataclass(frozen=True, slots=True)
class SimPath:
    """One simulated path: bandwidth in MB/s and a fixed per-command latency in ms."""

    mbps: float
    latency_ms: float = DEFAULT_LATENCY_MS
    args: tuple[str, ...] = ()  # the selector's per-path arguments

    def __post_init__(self) -> None:
        if not self.mbps > 0:
            raise UsageError(f"bad path speed {self.mbps!r} MB/s: must be above 0")
        if not self.latency_ms >= 0:
            raise UsageError(f"bad path latency {self.latency_ms!r} ms: must be 0 or more")


class EventKind(Enum):
    FAIL = "fail"
    RECOVER = "recover"
    RATE = "rate"


@dataclass(frozen=True, slots=True)
class PathEvent:
    """Something that happens to one path (0-based ``path``) at ``at`` seconds."""

    at: float
    path: int
    kind: EventKind
    mbps: float | None = None  # the new speed, for RATE

    def __post_init__(self) -> None:
        if not self.at >= 0:
            raise UsageError(f"bad event time {self.at!r}: must be 0 or more seconds")
        if self.kind is EventKind.RATE and not (self.mbps is not None and self.mbps > 0):
            raise UsageError(f"bad speed {self.mbps!r} MB/s for a rate change: must be above 0")


@dataclass(frozen=True, slots=True)
class Worker:
    """One stream of I/Os: ``qd`` outstanding I/Os of ``bs`` bytes (a label for reports)."""

    bs: int
    qd: int
    label: str = ""

    def __post_init__(self) -> None:
        if self.qd < 1:
            raise UsageError(f"bad queue depth {self.qd}: must be at least 1")
        if self.bs < 1:
            raise UsageError(f"bad block size {self.bs}: must be at least 1 byte")


@dataclass(frozen=True, slots=True)
class Scenario:
    """A whole run: paths, workload, policy and events.

    ``qd`` I/Os of ``bs`` bytes are kept outstanding (a new one is issued as each
    completes) until ``ios`` have completed. ``workers``, when given, replaces that one
    stream by several (``bs`` and ``qd`` are then unused): each keeps its own I/Os
    outstanding until ``ios`` have completed in all. ``max_commands`` is the LUN's cap handed to
    the selector (quota divides it into budgets); it defaults to ``qd``. ``jitter``
    varies each transfer time uniformly within +-jitter (so runs differ by ``seed``,
    and are identical for one seed). ``trace_interval`` (seconds) records each path's
    throughput and selector share over time.
    """

    paths: tuple[SimPath, ...]
    policy: str = "share"
    policy_args: tuple[str, ...] = ()
    qd: int = 32
    bs: int = 256 * 1024
    ios: int = 20_000
    max_commands: int | None = None
    seed: int = 0
    jitter: float = DEFAULT_JITTER
    events: tuple[PathEvent, ...] = ()
    trace_interval: float | None = None
    workers: tuple[Worker, ...] = ()

    def __post_init__(self) -> None:
        if not self.paths:
            raise UsageError("a simulation needs at least one path")
        if self.qd < 1:
            raise UsageError(f"bad queue depth {self.qd}: must be at least 1")
        if self.bs < 1:
            raise UsageError(f"bad block size {self.bs}: must be at least 1 byte")
        if self.ios < 1:
            raise UsageError(f"bad I/O count {self.ios}: must be at least 1")
        if self.max_commands is not None and self.max_commands < 1:
            raise UsageError(f"bad max_commands {self.max_commands}: must be at least 1")
        if not 0 <= self.jitter < 1:
            raise UsageError(f"bad jitter {self.jitter!r}: must be in [0, 1)")
        if self.trace_interval is not None and not self.trace_interval > 0:
            raise UsageError(f"bad trace interval {self.trace_interval!r}: must be above 0")
        for event in self.events:
            if not 0 <= event.path < len(self.paths):
                raise UsageError(
                    f"event on path {event.path + 1}: there are only {len(self.paths)} paths"
                )

    @property
    def sum_mbps(self) -> float:
        return sum(path.mbps for path in self.paths)

    @property
    def streams(self) -> tuple[Worker, ...]:
        """The workers that make the load (one of ``bs`` x ``qd`` unless given)."""
        return self.workers or (Worker(self.bs, self.qd),)

    @property
    def total_qd(self) -> int:
        return sum(worker.qd for worker in self.streams)


@dataclass(frozen=True, slots=True)
class PathResult:
    """What one path carried: ``share`` is its fraction of all bytes moved."""

    mbps: float
    bytes: int
    ios: int
    share: float
    selector_share: float  # the share the selector meant it to have at the end
    state: str  # "active" or "failed" at the end


@dataclass(frozen=True, slots=True)
class TracePoint:
    """One sample of a traced run: per-path MB/s over the last interval, and shares."""

    time: float
    mbps: tuple[float, ...]
    shares: tuple[float, ...]


@dataclass(frozen=True, slots=True)
class LatencySummary:
    p50: float
    p99: float
    max: float
    mean: float


@dataclass(frozen=True, slots=True)
class WorkerResult:
    """What one worker got: its I/O size, completions, bytes and latency."""

    label: str
    bs: int
    ios: int
    bytes: int
    latency_ms: LatencySummary


@dataclass(frozen=True, slots=True)
class SimResult:
    """The outcome of one run (times in seconds, latencies in ms, MB = 10**6 bytes)."""

    policy: str
    ios: int  # completed
    unfinished: int  # I/Os left waiting when no path could take them any more
    retries: int  # I/Os re-sent after their path failed under them
    elapsed: float
    bytes: int
    sum_mbps: float
    latency_ms: LatencySummary
    paths: tuple[PathResult, ...]
    trace: tuple[TracePoint, ...] = field(default=())
    workers: tuple[WorkerResult, ...] = field(default=())

    @property
    def mb_per_s(self) -> float:
        return self.bytes / self.elapsed / MB if self.elapsed > 0 else 0.0

    @property
    def efficiency(self) -> float:
        """Throughput as a fraction of the paths' summed nominal speed."""
        return self.mb_per_s / self.sum_mbps

    def to_json(self) -> dict[str, Any]:
        """The ``mpath simulate --json`` document (contract keys first)."""
        return {
            "policy": self.policy,
            "mb_per_s": round(self.mb_per_s, 3),
            "sum_mbps": round(self.sum_mbps, 3),
            "efficiency": round(self.efficiency, 4),
            "latency_ms": {
                "p50": round(self.latency_ms.p50, 4),
                "p99": round(self.latency_ms.p99, 4),
                "max": round(self.latency_ms.max, 4),
                "mean": round(self.latency_ms.mean, 4),
            },
            "paths": [
                {
                    "mbps": path.mbps,
                    "bytes": path.bytes,
                    "share": round(path.share, 4),
                    "ios": path.ios,
                    "selector_share": round(path.selector_share, 4),
                    "state": path.state,
                }
                for path in self.paths
            ],
            "workers": [
                {
                    "label": worker.label,
                    "bs": worker.bs,
                    "ios": worker.ios,
                    "bytes": worker.bytes,
                    "latency_ms": {
                        "p50": round(worker.latency_ms.p50, 4),
                        "p99": round(worker.latency_ms.p99, 4),
                        "max": round(worker.latency_ms.max, 4),
                        "mean": round(worker.latency_ms.mean, 4),
                    },
                }
                for worker in self.workers
            ],
            "ios": self.ios,
            "unfinished": self.unfinished,
            "retries": self.retries,
            "seconds": round(self.elapsed, 6),
        }
