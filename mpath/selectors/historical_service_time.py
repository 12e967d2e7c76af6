"""``historical-service-time``: dm-multipath's measured-service-time selector.

Each path keeps an exponentially weighted moving average (EWMA) of its measured service
time. The next I/O goes to the path whose estimated completion, ``(1 + outstanding) *
hst``, is earliest. Details follow the kernel's dm-historical-service-time:

* Service time is measured "as if serial": when an earlier I/O on the same path
  finished after this one started, the clock starts at that finish, so queueing on the
  path is not counted twice.
* The EWMA weight decays with the sample's own length: the history keeps weight
  ``base ** (bucket + 1)`` where ``bucket`` counts 2**24 ns (~16.8 ms) steps of the
  sample, and a sample of 63 or more steps replaces the history outright.
* Paths whose service times differ by no more than ``threshold_multiplier`` times are
  compared by outstanding I/Os only (0 or 1 disables this).
* A path that has not finished an I/O for ``valid_count * hst`` is *stale*: an idle
  stale path is chosen (one probe, in case it got better), and a stale path that is
  already busy gets no more than its fair count of outstanding I/Os.

Selector arguments: ``[base_weight [threshold_multiplier]]`` with ``base_weight`` in
1/1024ths (0..1023, default 972 = 0.95). Per-path arguments: ``[repeat_count]``
(accepted for table compatibility and unused, as in the kernel).
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

FIXED_ONE = 1024
DEFAULT_BASE_WEIGHT = 972
BUCKET_SECONDS = (1 << 24) / 1e9
BUCKET_COUNT = 64
INITIAL_SERVICE_TIME = 1e-9  # the kernel starts every path at 1 ns: all look fast


@dataclass(slots=True, eq=False)
class _HistoryInfo(PathInfo[P]):
    service_time: float = INITIAL_SERVICE_TIME
    last_finish: float = 0.0
    stale_after: float = 0.0
    repeat_count: int = 1


class HistoricalServiceTimeSelector(TrackedSelector[P, _HistoryInfo[P]]):
    """The usable path with the earliest estimated completion from its history."""

    name = "historical-service-time"
    version = "0.1.1"

    def _configure(self, args: tuple[str, ...]) -> None:
        check_arg_count(self.name, "selector", args, 2)
        base = DEFAULT_BASE_WEIGHT
        if args:
            base = parse_uint(self.name, "base_weight", args[0], high=FIXED_ONE - 1)
        self._threshold = parse_uint(self.name, "threshold_multiplier", args[1]) if args[1:] else 0
        self._base_weight = base
        fraction = base / FIXED_ONE
        self._history_weights = [fraction ** (i + 1) for i in range(BUCKET_COUNT - 1)] + [0.0]

    def _new_info(self, path: P, args: Sequence[str]) -> _HistoryInfo[P]:
        check_arg_count(self.name, "path", args, 1)
        repeat = parse_uint(self.name, "repeat count", args[0]) if args else 1
        return _HistoryInfo(path, repeat_count=repeat)

    def _compare(self, a: _HistoryInfo[P], b: _HistoryInfo[P], now: float) -> float:
        """Negative when ``a`` is the better path for the next I/O."""
        hst_a, hst_b = a.service_time, b.service_time
        out_a, out_b = a.in_flight, b.in_flight
        if hst_a > hst_b:
            different = hst_a > self._threshold * hst_b
        else:
            different = hst_b > self._threshold * hst_a
        if not different:
            return out_a - out_b
        idle_a, idle_b = out_a == 0, out_b == 0
        if (
            (idle_a and a.stale_after < now)
            or (idle_b and b.stale_after < now)
            or (idle_a and idle_b)
        ):
            # Prefer an idle stale path; between two idle paths, the staler one.
            return idle_b * a.stale_after - idle_a * b.stale_after
        b_better = hst_a > hst_b if out_a == out_b else (1 + out_a) * hst_a > (1 + out_b) * hst_b
        if b_better:
            return out_a - out_b if b.stale_after < now else 1
        return out_a - out_b if a.stale_after < now else -1

    def select(self, nbytes: int, avoid: P | None = None) -> P | None:
        now = self._clock()
        best: _HistoryInfo[P] | None = None
        for info in self._valid.values():
            if info.path is avoid and len(self._valid) > 1:
                continue
            if best is None or self._compare(info, best, now) < 0:
                best = info
        if best is None:
            return None
        move_to_tail(self._valid, best.path)
        return best.path

    def end_io(self, path: P, nbytes: int, started: float) -> None:
        info = self._infos[path]
        now = self._clock()
        start = max(started, info.last_finish)
        info.last_finish = now
        sample = max(0.0, now - start)
        bucket = min(int(sample / BUCKET_SECONDS), BUCKET_COUNT - 1)
        keep = self._history_weights[bucket]
        info.service_time = info.service_time * keep + sample * (1.0 - keep)
        info.stale_after = now + len(self._valid) * info.service_time
        super().end_io(path, nbytes, started)

    def share(self, path: P) -> float:
        info = self._info(path)
        if info.failed:
            return 0.0
        speeds = {
            other.path: 1.0 / max(other.service_time, 1e-12) for other in self._valid.values()
        }
        return speeds[path] / sum(speeds.values())

    def _selector_status(self) -> dict[str, Any]:
        return {"base_weight": self._base_weight, "threshold_multiplier": self._threshold}

    def _path_status(self, info: _HistoryInfo[P]) -> dict[str, Any]:
        return {"service_time_ms": info.service_time * 1e3}
