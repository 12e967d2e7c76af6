"""``service-time``: dm-multipath's estimated-service-time selector (multipath-tools'
default, as ``"service-time 0"``).

Each path has a *relative throughput* (0..100, set by the administrator, default 1) and
counts the bytes it has in flight. An I/O of ``n`` bytes goes to the path with the
least ``(in_flight_bytes + n) / relative_throughput``: the time it would take to drain
that path's queue plus this I/O if the throughputs were true. The comparison follows
the kernel's four cases for two paths A and B:

1. equal throughputs: the one with fewer bytes in flight;
2. equal bytes in flight, or either throughput is 0: the higher throughput (so a path
   with throughput 0 is used only when no path with a positive one is usable);
3. otherwise ``(a + n) * tB`` against ``(b + n) * tA`` by cross-multiplication (no
   division, and Python integers never overflow, so no shifting is needed);
4. equal estimates: the higher throughput.

Among equals the path chosen least recently wins (the winner moves to the tail).

Per-path arguments: ``[repeat_count [relative_throughput]]``; repeat_count > 1 is
clamped to 1 as in the kernel.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from mpath.selectors.base import (
    P,
    PathInfo,
    TrackedSelector,
    check_arg_count,
    move_to_tail,
    parse_uint,
)
from mpath.selectors.queue_length import parse_repeat_count

MAX_RELATIVE_THROUGHPUT = 100
DEFAULT_RELATIVE_THROUGHPUT = 1


@dataclass(slots=True, eq=False)
class _ServiceTimeInfo(PathInfo[P]):
    relative_throughput: int = DEFAULT_RELATIVE_THROUGHPUT


def compare_load(a: _ServiceTimeInfo[Any], b: _ServiceTimeInfo[Any], incoming: int) -> int:
    """Negative when ``a`` should take the incoming I/O rather than ``b``."""
    load_a, load_b = a.in_flight_bytes, b.in_flight_bytes
    speed_a, speed_b = a.relative_throughput, b.relative_throughput
    if speed_a == speed_b:
        return load_a - load_b
    if load_a == load_b or not speed_a or not speed_b:
        return speed_b - speed_a
    estimate_a = (load_a + incoming) * speed_b
    estimate_b = (load_b + incoming) * speed_a
    if estimate_a != estimate_b:
        return estimate_a - estimate_b
    return speed_b - speed_a


class ServiceTimeSelector(TrackedSelector[P, _ServiceTimeInfo[P]]):
    """The usable path with the least estimated service time for this I/O."""

    name = "service-time"
    version = "0.3.0"

    def _new_info(self, path: P, args: Sequence[str]) -> _ServiceTimeInfo[P]:
        check_arg_count(self.name, "path", args, 2)
        parse_repeat_count(self.name, args[:1], 1)
        throughput = DEFAULT_RELATIVE_THROUGHPUT
        if len(args) == 2:
            throughput = parse_uint(
                self.name, "relative_throughput", args[1], high=MAX_RELATIVE_THROUGHPUT
            )
        return _ServiceTimeInfo(path, relative_throughput=throughput)

    def select(self, nbytes: int, avoid: P | None = None) -> P | None:
        best: _ServiceTimeInfo[P] | None = None
        for info in self._valid.values():
            if info.path is avoid and len(self._valid) > 1:
                continue
            if best is None or compare_load(info, best, nbytes) < 0:
                best = info
        if best is None:
            return None
        move_to_tail(self._valid, best.path)
        return best.path

    def share(self, path: P) -> float:
        info = self._info(path)
        if info.failed:
            return 0.0
        total = sum(other.relative_throughput for other in self._valid.values())
        if total == 0:
            return 1.0 / len(self._valid)
        return info.relative_throughput / total

    def _path_status(self, info: _ServiceTimeInfo[P]) -> dict[str, Any]:
        return {"relative_throughput": info.relative_throughput}
