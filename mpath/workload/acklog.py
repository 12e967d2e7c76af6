"""Checking a LUN's backing file against logs of acknowledged writes, from outside.

Two writers keep such logs: ``mpath bench --ack-log`` (:class:`mpath.workload.bench.AckLog`)
and the libnbd client of the torture benchmark and crash test
(``benchmarks/nbd_ack_client.py``). Both write the self-describing stamps of
:mod:`mpath.workload.pattern`, so each sector of the backing file says which run,
sector and generation it holds. For each chunk the log names the newest generation
that was acknowledged (or, for a crash, made durable: written with FUA or covered by an
acknowledged FLUSH); the file must hold that generation or a newer one (a write that
was sent but not acknowledged may land). An older generation, or data of no generation
where one was acknowledged, is a **lost write**; a stamp of another sector or run, or a
torn sector, is a **mismatch**.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from mpath.workload import pattern

_STAMP = struct.Struct("<QQQQ")


@dataclass(slots=True)
class AckLogRecord:
    """What one log says: its run, geometry, and the generation each chunk must hold."""

    run_id: int
    block_size: int
    chunks: int
    offset: int = 0
    #: chunk -> newest acknowledged (or durable) generation
    expected: dict[int, int] = field(default_factory=dict)
    acknowledged: int = 0
    errors: list[tuple[float, str]] = field(default_factory=list)  # (monotonic T, what)
    mismatches: int = 0  # the writer's own read checks
    max_latency: float = 0.0
    ack_times: list[float] = field(default_factory=list)  # (nbd log) when each W came


@dataclass(slots=True)
class CheckResult:
    chunks_checked: int = 0
    lost_writes: int = 0
    mismatches: int = 0
    examples: list[str] = field(default_factory=list)

    def add(self, other: CheckResult) -> None:
        self.chunks_checked += other.chunks_checked
        self.lost_writes += other.lost_writes
        self.mismatches += other.mismatches
        self.examples.extend(other.examples[: 10 - len(self.examples)])


def _header(line: str) -> dict[str, int]:
    return {
        key: int(value)
        for key, value in (item.split("=", 1) for item in line.split() if "=" in item)
    }


def parse_bench_log(lines: Iterable[str]) -> AckLogRecord:
    """``mpath bench --ack-log``: every acknowledged write counts."""
    iterator = iter(lines)
    head = _header(next(iterator))
    record = AckLogRecord(head["run_id"], head["block_size"], head["chunks"])
    for line in iterator:
        parts = line.split()
        if len(parts) < 4:
            continue  # a line cut short by a kill
        kind, chunk, generation, at = parts[0], int(parts[1]), int(parts[2]), float(parts[3])
        if kind == "W":
            record.acknowledged += 1
            record.expected[chunk] = max(record.expected.get(chunk, 0), generation)
        elif kind in ("E", "R"):  # a write or a read that failed
            record.errors.append((at, parts[4] if len(parts) > 4 else "error"))
    return record


def parse_nbd_log(lines: Iterable[str], *, durable_only: bool = False) -> AckLogRecord:
    """The libnbd client's log. With ``durable_only``, only writes acknowledged with FUA
    or followed by an acknowledged FLUSH count (what must survive a crash of the
    server); otherwise every acknowledged write counts."""
    iterator = iter(lines)
    head = _header(next(iterator))
    record = AckLogRecord(
        head["run_id"], head["block_size"], head["chunks"], offset=head.get("offset", 0)
    )
    pending: dict[int, int] = {}  # acknowledged, not yet covered by a flush
    for line in iterator:
        parts = line.split()
        if not parts:
            continue
        kind = parts[0]
        if kind == "W" and len(parts) >= 6:
            chunk, generation, fua = int(parts[1]), int(parts[2]), parts[3] == "1"
            record.acknowledged += 1
            record.ack_times.append(float(parts[4]))
            record.max_latency = max(record.max_latency, float(parts[5]))
            if fua or not durable_only:
                record.expected[chunk] = max(record.expected.get(chunk, 0), generation)
            else:
                pending[chunk] = max(pending.get(chunk, 0), generation)
        elif kind == "F" and len(parts) >= 3:
            record.max_latency = max(record.max_latency, float(parts[2]))
            for chunk, generation in pending.items():
                record.expected[chunk] = max(record.expected.get(chunk, 0), generation)
            pending.clear()
        elif kind == "E" and len(parts) >= 6:
            record.errors.append((float(parts[4]), f"{parts[1]} errno {parts[5]}"))
        elif kind == "M" and len(parts) >= 4:
            record.mismatches += 1
    return record


def check_backing(record: AckLogRecord, backing: Path) -> CheckResult:
    """Read each chunk the log names from the backing file and judge every sector."""
    result = CheckResult()
    sectors = record.block_size // pattern.SECTOR
    with backing.open("rb") as file:
        for chunk, generation in sorted(record.expected.items()):
            start = record.offset + chunk * record.block_size
            file.seek(start)
            data = file.read(record.block_size)
            first = start // pattern.SECTOR
            result.chunks_checked += 1
            lost = wrong = 0
            for i in range(sectors):
                sector = data[i * pattern.SECTOR : (i + 1) * pattern.SECTOR]
                if len(sector) < pattern.SECTOR:
                    lost += 1
                    continue
                magic, run_id, lba, found = _STAMP.unpack_from(sector)
                if sector != pattern.fill(lba, 1, found, run_id):
                    wrong += 1  # torn, or not our stamp at all
                    if magic != pattern.MAGIC:
                        wrong, lost = wrong - 1, lost + 1  # old/foreign data: not written
                elif run_id != record.run_id or lba != first + i:
                    wrong += 1
                elif found < generation:
                    lost += 1
            if lost:
                result.lost_writes += 1
            if wrong:
                result.mismatches += 1
            if (lost or wrong) and len(result.examples) < 10:
                result.examples.append(
                    f"chunk {chunk} (byte {start}): acknowledged generation {generation}; "
                    f"{lost} sector(s) older, {wrong} sector(s) not this chunk's data"
                )
    return result


def load(path: Path, kind: str, *, durable_only: bool = False) -> AckLogRecord:
    """Parse a log file: ``kind`` is ``bench`` or ``nbd``."""
    lines = path.read_text(errors="replace").splitlines()
    if kind == "bench":
        return parse_bench_log(lines)
    return parse_nbd_log(lines, durable_only=durable_only)
