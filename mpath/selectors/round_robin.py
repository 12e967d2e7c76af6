"""``round-robin``: dm-multipath's oldest selector.

Usable paths form a ring. The path at the head is chosen, moved to the tail, and kept
for ``repeat_count`` I/Os in a row (multipath.conf's ``rr_min_io_rq``) before the next
path takes over. It ignores load and speed entirely, which is why, over one 50 MB/s and
one 200 MB/s path, it holds the pair near twice the slow path: each path gets the same
number of I/Os, so the slow one sets the pace.

Per-path arguments: ``[repeat_count]`` (default 1).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from mpath.selectors.base import P, PathInfo, TrackedSelector, check_arg_count, parse_uint

DEFAULT_REPEAT_COUNT = 1


@dataclass(slots=True, eq=False)
class _RoundRobinInfo(PathInfo[P]):
    repeat_count: int = DEFAULT_REPEAT_COUNT


class RoundRobinSelector(TrackedSelector[P, _RoundRobinInfo[P]]):
    """Each usable path in turn, ``repeat_count`` I/Os at a time."""

    name = "round-robin"
    version = "1.2.0"

    def _configure(self, args: tuple[str, ...]) -> None:
        check_arg_count(self.name, "selector", args, 0)
        self._ring: deque[_RoundRobinInfo[P]] = deque()
        self._current: _RoundRobinInfo[P] | None = None
        self._repeats_left = 0

    def _new_info(self, path: P, args: Sequence[str]) -> _RoundRobinInfo[P]:
        check_arg_count(self.name, "path", args, 1)
        repeat = DEFAULT_REPEAT_COUNT
        if args:
            repeat = parse_uint(self.name, "repeat count", args[0], low=1)
        return _RoundRobinInfo(path, repeat_count=repeat)

    def _on_add(self, info: _RoundRobinInfo[P]) -> None:
        self._ring.append(info)

    def _on_fail(self, info: _RoundRobinInfo[P]) -> None:
        self._ring.remove(info)
        if self._current is info:
            self._current = None

    def _on_reinstate(self, info: _RoundRobinInfo[P]) -> None:
        # Like the kernel, put it at the head: it is next once the current path's
        # repeat count runs out, rather than after every other path again.
        self._ring.appendleft(info)

    def select(self, nbytes: int, avoid: P | None = None) -> P | None:
        if self._current is not None:
            self._repeats_left -= 1
            if self._repeats_left > 0 and (self._current.path is not avoid or len(self._ring) < 2):
                return self._current.path
        ring = self._ring
        if not ring:
            return None
        info = ring.popleft()
        ring.append(info)
        if info.path is avoid and len(ring) > 1:
            info = ring.popleft()
            ring.append(info)
        self._current = info
        self._repeats_left = info.repeat_count
        return info.path

    def share(self, path: P) -> float:
        info = self._info(path)
        if info.failed:
            return 0.0
        return info.repeat_count / sum(other.repeat_count for other in self._ring)

    def _path_status(self, info: _RoundRobinInfo[P]) -> dict[str, Any]:
        return {"repeat_count": info.repeat_count}
