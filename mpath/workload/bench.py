"""The benchmark behind ``mpath bench``: I/O through the filter layer, measured.

``qd`` workers keep that many I/Os outstanding for ``seconds``. With ``verify`` every
write carries self-describing data (:mod:`mpath.workload.pattern`), each worker owns a
disjoint set of chunks (so no read races a write of the same chunk), reads check what
they find, and at the end every chunk written is read back and checked. A write that
failed may or may not have reached the LUN, so until that chunk is written again either
generation is accepted for it. Rig faults can be scheduled at given times to measure
failover while I/O runs.

With an acknowledgement log (``ack_log``) every write the device acknowledged is
appended to a file as it completes (:class:`AckLog`), so a checker outside the process
can compare the LUN's backing file with what was acknowledged, even after the process
was killed.
"""

from __future__ import annotations

import asyncio
import os
import random
import secrets
import time
from array import array
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from mpath.errors import MpathError, UsageError
from mpath.filter.device import MultipathDevice
from mpath.workload import pattern

RW_MODES = ("read", "write", "randread", "randwrite", "randrw")


@dataclass(frozen=True, slots=True)
class FaultStep:
    """``--fault T:INDEX:ACTION``: at ``at`` seconds, apply ACTION to rig path INDEX."""

    at: float
    index: int
    action: str
    rate: str | None = None

    @classmethod
    def parse(cls, text: str) -> FaultStep:
        parts = text.split(":")
        if len(parts) != 3:
            raise UsageError(f"bad --fault {text!r}: expected T:INDEX:ACTION, e.g. 3:1:down")
        at_text, index_text, action = parts
        try:
            at, index = float(at_text), int(index_text)
        except ValueError:
            raise UsageError(
                f"bad --fault {text!r}: T is seconds and INDEX a path number"
            ) from None
        if at < 0 or index < 1:
            raise UsageError(f"bad --fault {text!r}: T must be >= 0 and INDEX >= 1")
        rate = None
        if action.startswith("rate="):
            action, rate = "rate", action.removeprefix("rate=")
        if action not in ("down", "up", "drop", "clear", "rate", "hold", "release"):
            raise UsageError(
                f"bad --fault {text!r}: ACTION is down, up, drop, hold, release, clear or rate=RATE"
            )
        return cls(at, index, action, rate)


@dataclass(slots=True)
class BenchSpec:
    rw: str = "read"
    block_size: int = 256 * 1024
    queue_depth: int = 32
    seconds: float = 10.0
    span: int | None = None
    verify: bool = False
    faults: tuple[FaultStep, ...] = ()
    seed: int | None = None
    trace_interval: float | None = None
    ack_log: str | None = None

    def __post_init__(self) -> None:
        if self.rw not in RW_MODES:
            raise UsageError(f"bad --rw {self.rw!r}: choose one of {', '.join(RW_MODES)}")
        if self.queue_depth < 1:
            raise UsageError("--qd must be at least 1")
        if self.seconds <= 0:
            raise UsageError("--seconds must be above 0")
        for step in self.faults:
            if step.at >= self.seconds:
                raise UsageError(
                    f"--fault {step.at:g}:{step.index}:{step.action} is at {step.at:g} s, "
                    f"but the run ends at {self.seconds:g} s (--seconds): it would never happen"
                )


@dataclass(slots=True)
class BenchResult:
    policy: str
    seconds: float
    bytes: int
    ios: int
    latencies: array[float]
    errors: int
    verify_mismatches: int
    failovers: int
    paths: list[dict[str, Any]]
    fences: int = 0
    first_error: str | None = None
    mismatch_examples: list[str] = field(default_factory=list)
    trace: list[dict[str, Any]] = field(default_factory=list)

    def describe(self) -> dict[str, Any]:
        ordered = sorted(self.latencies)

        def percentile(q: float) -> float:
            if not ordered:
                return 0.0
            return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 3)

        return {
            "policy": self.policy,
            "seconds": round(self.seconds, 3),
            "bytes": self.bytes,
            "mb_per_s": round(self.bytes / self.seconds / 1e6, 2) if self.seconds else 0.0,
            "iops": round(self.ios / self.seconds, 1) if self.seconds else 0.0,
            "latency_ms": {
                "p50": percentile(0.50),
                "p99": percentile(0.99),
                "max": round(ordered[-1] * 1000, 3) if ordered else 0.0,
            },
            "errors": self.errors,
            "verify_mismatches": self.verify_mismatches,
            "failovers": self.failovers,
            "fences": self.fences,
            "first_error": self.first_error,
            "mismatch_examples": self.mismatch_examples,
            "paths": self.paths,
            **({"trace": self.trace} if self.trace else {}),
        }


class AckLog:
    """An append-only text log of acknowledged writes, one line per write as it completes.

    Why a line per write, written at once with ``os.write``: a line the kernel took is
    in the file even if this process is killed the next instant, so a crash test can
    check every logged write against the LUN. The header names the run, so the stamps
    of :mod:`mpath.workload.pattern` can be told apart from other runs' data::

        # mpath bench ack log v1 run_id=R block_size=B chunks=N
        W CHUNK GENERATION T        (a write the device acknowledged, at monotonic T)
        E CHUNK GENERATION T ERROR  (a write that failed: either generation may be there)
        R CHUNK GENERATION T ERROR  (a read that failed)
    """

    HEADER = "# mpath bench ack log v1"

    def __init__(self, path: str, run_id: int, block_size: int, chunks: int) -> None:
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o644)
        self._line(f"{self.HEADER} run_id={run_id} block_size={block_size} chunks={chunks}")

    def _line(self, text: str) -> None:
        os.write(self.fd, (text + "\n").encode())

    def acknowledged(self, chunk: int, generation: int) -> None:
        self._line(f"W {chunk} {generation} {time.monotonic():.6f}")

    def failed(self, chunk: int, generation: int, error: BaseException) -> None:
        self._line(f"E {chunk} {generation} {time.monotonic():.6f} {type(error).__name__}")

    def read_failed(self, chunk: int, generation: int, error: BaseException) -> None:
        self._line(f"R {chunk} {generation} {time.monotonic():.6f} {type(error).__name__}")

    def close(self) -> None:
        os.close(self.fd)


Progress = Callable[[float, "BenchRun"], None]
FaultApplier = Callable[[FaultStep], Awaitable[None]]


class BenchRun:
    """One benchmark run over an open device."""

    def __init__(self, device: MultipathDevice, spec: BenchSpec) -> None:
        self.device = device
        self.spec = spec
        block = device.block_size
        if spec.block_size % block or spec.block_size <= 0:
            raise UsageError(f"--bs must be a multiple of the LUN's {block}-byte block size")
        span = min(spec.span or device.size_bytes, device.size_bytes)
        self.chunks = span // spec.block_size
        if self.chunks < spec.queue_depth:
            raise UsageError(
                f"the span holds {self.chunks} chunks of {spec.block_size} bytes: fewer than "
                f"--qd {spec.queue_depth}"
            )
        self.sectors_per_chunk = spec.block_size // pattern.SECTOR
        self.run_id = secrets.randbits(63)
        self.generations = array("I", bytes(4 * self.chunks))
        #: chunk -> generation of a write that failed: it may or may not be on the LUN.
        self.uncertain: dict[int, int] = {}
        self.ack_log = (
            AckLog(spec.ack_log, self.run_id, spec.block_size, self.chunks)
            if spec.ack_log
            else None
        )
        self.random = random.Random(spec.seed)
        self.bytes = 0
        self.ios = 0
        self.errors = 0
        self.mismatches = 0
        self.mismatch_examples: list[str] = []
        self.first_error: str | None = None
        self.latencies: array[float] = array("d")
        self.trace: list[dict[str, Any]] = []
        self.started = 0.0
        self._filler = bytes(spec.block_size)

    # -- one I/O ---------------------------------------------------------------------------

    async def _write_chunk(self, chunk: int) -> None:
        generation = self.generations[chunk] + 1
        lba = chunk * self.sectors_per_chunk
        data = (
            pattern.fill(lba, self.sectors_per_chunk, generation, self.run_id)
            if self.spec.verify
            else self._filler
        )
        try:
            await self.device.write(chunk * self.spec.block_size, data)
        except MpathError as exc:
            self.uncertain[chunk] = generation
            if self.ack_log is not None:
                self.ack_log.failed(chunk, generation, exc)
            raise
        self.generations[chunk] = generation
        self.uncertain.pop(chunk, None)
        if self.ack_log is not None:
            self.ack_log.acknowledged(chunk, generation)

    async def _read_chunk(self, chunk: int) -> None:
        generation = self.generations[chunk]
        try:
            data = await self.device.read(chunk * self.spec.block_size, self.spec.block_size)
        except MpathError as exc:
            if self.ack_log is not None:
                self.ack_log.read_failed(chunk, generation, exc)
            raise
        if self.spec.verify and generation:
            lba = chunk * self.sectors_per_chunk
            found = pattern.check(data, lba, generation, self.run_id)
            maybe = self.uncertain.get(chunk)
            if found and maybe is not None:  # sectors of the failed write are fine too
                found = [
                    m
                    for m in found
                    if pattern.check(
                        data[(m.lba - lba) * pattern.SECTOR :][: pattern.SECTOR],
                        m.lba,
                        maybe,
                        self.run_id,
                    )
                ]
            if found:
                self.mismatches += len(found)
                self.mismatch_examples.extend(
                    str(m) for m in found[: 5 - len(self.mismatch_examples)]
                )

    async def _one(self, chunk: int, write: bool) -> None:
        begin = time.monotonic()
        try:
            if write:
                await self._write_chunk(chunk)
            else:
                await self._read_chunk(chunk)
        except MpathError as exc:
            self.errors += 1
            self.first_error = self.first_error or str(exc)
            return
        self.latencies.append(time.monotonic() - begin)
        self.ios += 1
        self.bytes += self.spec.block_size

    # -- workers -----------------------------------------------------------------------------

    async def _worker(self, worker: int, deadline: float) -> None:
        spec = self.spec
        owned = range(worker, self.chunks, spec.queue_depth)  # disjoint per worker
        position = 0
        while time.monotonic() < deadline:
            if spec.rw in ("read", "write"):
                chunk = owned[position % len(owned)]
                position += 1
            else:
                chunk = owned[self.random.randrange(len(owned))]
            if spec.rw == "randrw":
                write = self.random.random() < 0.5
            else:
                write = spec.rw in ("write", "randwrite")
            await self._one(chunk, write)

    async def _prefill(self) -> None:
        """Read workloads with --verify need known data: write every chunk once."""
        queue = iter(range(self.chunks))

        async def filler() -> None:
            for chunk in queue:
                await self._write_chunk(chunk)

        await asyncio.gather(*(filler() for _ in range(self.spec.queue_depth)))

    async def _final_verify(self) -> None:
        written = iter([c for c in range(self.chunks) if self.generations[c]])

        async def checker() -> None:
            for chunk in written:
                try:
                    await self._read_chunk(chunk)
                except MpathError as exc:
                    self.errors += 1
                    self.first_error = self.first_error or f"verify read: {exc}"

        await asyncio.gather(*(checker() for _ in range(self.spec.queue_depth)))

    async def run(
        self, *, progress: Progress | None = None, apply_fault: FaultApplier | None = None
    ) -> BenchResult:
        try:
            return await self._run(progress, apply_fault)
        finally:
            if self.ack_log is not None:
                self.ack_log.close()

    async def _run(
        self, progress: Progress | None, apply_fault: FaultApplier | None
    ) -> BenchResult:
        spec = self.spec
        at_open = self._path_bytes()
        if spec.verify and spec.rw in ("read", "randread"):
            await self._prefill()
            self.bytes = self.ios = 0
        at_start = self._path_bytes()
        failovers_before = self.device.stats.failovers
        fences_before = self.device.stats.fences
        self.started = time.monotonic()
        deadline = self.started + spec.seconds
        background = []
        if apply_fault is not None:
            background += [
                asyncio.ensure_future(self._fault_at(step, apply_fault)) for step in spec.faults
            ]
        if progress is not None:
            background.append(asyncio.ensure_future(self._report(progress)))
        if spec.trace_interval:
            background.append(asyncio.ensure_future(self._trace(spec.trace_interval)))
        try:
            await asyncio.gather(*(self._worker(w, deadline) for w in range(spec.queue_depth)))
        finally:
            for task in background:
                task.cancel()
            outcomes = await asyncio.gather(*background, return_exceptions=True)
        for outcome in outcomes:
            if isinstance(outcome, Exception):
                raise outcome
        elapsed = time.monotonic() - self.started
        at_end = self._path_bytes()
        if spec.verify:
            await self._final_verify()
        paths = self.device.paths
        for path, opened, started, ended, now in zip(
            paths, at_open, at_start, at_end, self._path_bytes(), strict=True
        ):
            path["workload_bytes"] = ended - started
            if spec.verify:
                path["prefill_bytes"] = started - opened
                path["verify_bytes"] = now - ended
        return BenchResult(
            policy=self.device.policy,
            seconds=elapsed,
            bytes=self.bytes,
            ios=self.ios,
            latencies=self.latencies,
            errors=self.errors,
            verify_mismatches=self.mismatches,
            failovers=self.device.stats.failovers - failovers_before,
            paths=paths,
            fences=self.device.stats.fences - fences_before,
            first_error=self.first_error,
            mismatch_examples=self.mismatch_examples,
            trace=self.trace,
        )

    def _path_bytes(self) -> list[int]:
        """Bytes each path has moved so far (the device counts them per path)."""
        return [int(p["bytes"]) for p in self.device.paths]

    async def _fault_at(self, step: FaultStep, apply_fault: FaultApplier) -> None:
        delay = self.started + step.at - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)  # the fault is scheduled at a time, by design
        await apply_fault(step)

    async def _trace(self, interval: float) -> None:
        """Every ``interval`` s, record each path's MB/s and share of the traffic."""
        before = [p["bytes"] for p in self.device.paths]
        while True:
            await asyncio.sleep(interval)  # sampling period
            now = [p["bytes"] for p in self.device.paths]
            moved = [b - a for a, b in zip(before, now, strict=True)]
            total = sum(moved) or 1
            self.trace.append(
                {
                    "t": round(time.monotonic() - self.started, 3),
                    "mb_per_s": [round(m / interval / 1e6, 2) for m in moved],
                    "split": [round(m / total, 3) for m in moved],
                }
            )
            before = now

    async def _report(self, progress: Progress) -> None:
        while True:
            await asyncio.sleep(0.5)  # display refresh period
            progress(time.monotonic() - self.started, self)
