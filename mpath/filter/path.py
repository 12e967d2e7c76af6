"""One path as the filter layer sees it: a transport plus health and counters."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from mpath.filter.latency import LatencyHistogram
from mpath.scsi.alua import state_name
from mpath.settings import DeviceSettings
from mpath.transports.base import DirectSubmit, LinkAware, Transport
from mpath.transports.tcp import LinkState

#: Weight of the newest sample in the smoothed command latency.
LATENCY_EWMA_WEIGHT = 0.1


class PathState(StrEnum):
    """``active``: carries I/O. ``failed``: out of use until it logs in again.

    The filter layer's decision about a path, not a checker's verdict
    (:class:`mpath.scsi.states.CheckerState`: up, down, ghost, ...), which the monitor
    turns into this one.
    """

    ACTIVE = "active"
    FAILED = "failed"


@dataclass(eq=False, slots=True)
class Path:
    """A path of a multipath device. Hashable by identity: selectors key on it.

    ``progress`` is when the path last showed life while busy: the last completion, or
    the moment it went from idle to busy. The stall watchdog compares it with the
    path's timeout. ``answered`` is the last completion alone: the watchdog compares
    paths by it (:mod:`mpath.filter.stall`).
    """

    index: int
    transport: Transport
    priority: int = 0
    #: The policy's per-path arguments (DeviceSettings.path_args), given to add_path.
    selector_args: tuple[str, ...] = ()
    state: PathState = PathState.ACTIVE
    in_flight: int = 0
    slow_in_flight: int = 0
    progress: float = 0.0
    answered: float = 0.0
    latency: float = 0.0
    ios: int = 0
    bytes: int = 0
    #: Of ``ios`` and ``bytes``: commands that read data from the LU (READ, and raw
    #: commands with data in) and those that wrote data to it (WRITE, raw commands with
    #: data out). Flushes and other commands without data count in neither.
    reads: int = 0
    read_bytes: int = 0
    writes: int = 0
    written_bytes: int = 0
    errors: int = 0
    failures: int = 0
    last_failure: str = ""
    #: Every completed command's latency (slow ones too), in fixed buckets.
    histogram: LatencyHistogram = field(default_factory=LatencyHistogram, repr=False)
    #: The path's ALUA target port group and that group's access state (None: the LU
    #: has no ALUA, or it is not known yet), and when the state last changed.
    alua_group: int | None = None
    alua_state: int | None = None
    alua_since: float = 0.0
    close_task: asyncio.Task[None] | None = field(default=None, repr=False)
    #: The transport's direct ``submit`` (:class:`DirectSubmit`), or None.
    submit: Callable[..., None] | None = field(default=None, init=False, repr=False)
    #: The transport's ``link`` (:class:`LinkAware`: what its TCP connection says), or
    #: None. The stall watchdog's questions to the network: when it last pinged the
    #: path, how many bytes the peer had acknowledged then, and when the peer last
    #: acknowledged a ping (the network carried).
    link: Callable[[], LinkState | None] | None = field(default=None, init=False, repr=False)
    pinged: float = field(default=float("-inf"), init=False, repr=False)
    acked_before_ping: int = field(default=0, init=False, repr=False)
    carried: float = field(default=float("-inf"), init=False, repr=False)

    def __post_init__(self) -> None:
        if isinstance(self.transport, DirectSubmit):
            self.submit = self.transport.submit
        if isinstance(self.transport, LinkAware):
            self.link = self.transport.link

    @property
    def url(self) -> str:
        return self.transport.url

    def __str__(self) -> str:
        return self.transport.url

    def timeout(self, settings: DeviceSettings) -> float:
        """Seconds without progress after which this busy path counts as dead."""
        scaled = settings.io_timeout_factor * self.latency
        return min(max(settings.io_timeout_min, scaled), settings.io_timeout_max)

    def record_latency(self, seconds: float) -> None:
        if self.latency == 0.0:
            self.latency = seconds
        else:
            self.latency += LATENCY_EWMA_WEIGHT * (seconds - self.latency)

    def counters(self) -> dict[str, int]:
        """What the path carried and how often it failed: the counters every view of a
        path shows (``describe``, the daemon's ``show paths`` and ``show stats``)."""
        return {
            "ios": self.ios,
            "bytes": self.bytes,
            "reads": self.reads,
            "read_bytes": self.read_bytes,
            "writes": self.writes,
            "written_bytes": self.written_bytes,
            "errors": self.errors,
            "failures": self.failures,
        }

    def describe(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "state": self.state.value,
            "priority": self.priority,
            "in_flight": self.in_flight,
            **self.counters(),
            "latency_ms": round(self.latency * 1000, 3),
            "last_failure": self.last_failure or None,
            "alua_group": self.alua_group,
            "alua_state": state_name(self.alua_state),
        }
