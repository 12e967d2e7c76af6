"""When each path is checked next: the backoff rule and a due-time queue.

Both are pure (no I/O, time passed in) so the scheduling can be tested with a fake
clock; :class:`~mpath.checkers.monitor.CheckerMonitor` drives them from one asyncio
task for all paths, which is what lets one process check ten thousand paths.

**Backoff**, as multipathd's ``polling_interval`` / ``max_polling_interval``: a path
whose check found it usable and unchanged is checked half as often next time, up to
the maximum; any change, and any path that is not up, goes back to the base interval.
A failure the device reports (an I/O error or stall) schedules a check at once.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Hashable
from typing import Generic, TypeVar

DEFAULT_POLLING_INTERVAL = 5.0
"""Seconds between checks of a path that just changed or is not up (multipathd's default)."""
DEFAULT_MAX_POLLING_INTERVAL = 20.0
"""Longest interval a stable path backs off to (multipathd's default: 4 x polling_interval)."""

K = TypeVar("K", bound=Hashable)


def next_interval(current: float, *, base: float, maximum: float, settled: bool) -> float:
    """The interval until the next check.

    ``settled`` is True when the check found the path usable and in the same state as
    before; the interval then doubles (capped at ``maximum``). Otherwise it is ``base``.
    """
    if not settled:
        return base
    return min(maximum, max(current, base) * 2)


class DueQueue(Generic[K]):
    """Keys ordered by due time; scheduling a key again replaces its earlier time.

    A heap with lazy deletion: a replaced entry stays in the heap and is skipped when
    it surfaces, so :meth:`schedule` and :meth:`pop_due` are O(log n).
    """

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, K]] = []
        self._current: dict[K, int] = {}
        self._sequence = itertools.count()

    def __len__(self) -> int:
        return len(self._current)

    def __contains__(self, key: object) -> bool:
        return key in self._current

    def schedule(self, key: K, due: float) -> None:
        """Make ``key`` due at ``due`` (replacing any earlier schedule of it)."""
        number = next(self._sequence)
        self._current[key] = number
        heapq.heappush(self._heap, (due, number, key))

    def schedule_earlier(self, key: K, due: float) -> None:
        """Make ``key`` due at ``due`` unless it is already due sooner."""
        known = self.due_time(key)
        if known is None or due < known:
            self.schedule(key, due)

    def discard(self, key: K) -> None:
        """Forget ``key`` (its heap entry is skipped later)."""
        self._current.pop(key, None)

    def due_time(self, key: K) -> float | None:
        """When ``key`` is due, or None. O(n): for tests and rare decisions only."""
        number = self._current.get(key)
        if number is None:
            return None
        return next(due for due, n, k in self._heap if n == number and k == key)

    def next_due(self) -> float | None:
        """The earliest due time, or None when nothing is scheduled."""
        self._drop_stale()
        return self._heap[0][0] if self._heap else None

    def pop_due(self, now: float) -> list[K]:
        """Remove and return every key due at or before ``now``, earliest first."""
        due: list[K] = []
        heap, current = self._heap, self._current
        while heap and heap[0][0] <= now:
            _, number, key = heapq.heappop(heap)
            if current.get(key) == number:
                del current[key]
                due.append(key)
        return due

    def _drop_stale(self) -> None:
        heap, current = self._heap, self._current
        while heap and current.get(heap[0][2]) != heap[0][1]:
            heapq.heappop(heap)
