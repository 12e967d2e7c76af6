"""``least-blocks``: Windows MPIO's Least Blocks policy.

The usable path with the fewest bytes outstanding wins (MPIO counts blocks; bytes are
the same measure at a finer grain). Unlike queue-length it weighs each I/O by its size,
so one large transfer counts as much as many small ones. Ties go to the path chosen
least recently. No arguments.
"""

from __future__ import annotations

from collections.abc import Sequence

from mpath.selectors.base import P, PathInfo, TrackedSelector, check_arg_count, move_to_tail


class LeastBlocksSelector(TrackedSelector[P, PathInfo[P]]):
    """The usable path with the fewest bytes in flight."""

    name = "least-blocks"
    version = "1.0.0"

    def _new_info(self, path: P, args: Sequence[str]) -> PathInfo[P]:
        check_arg_count(self.name, "path", args, 0)
        return PathInfo(path)

    def select(self, nbytes: int, avoid: P | None = None) -> P | None:
        best: PathInfo[P] | None = None
        for info in self._valid.values():
            if info.path is avoid and len(self._valid) > 1:
                continue
            if best is None or info.in_flight_bytes < best.in_flight_bytes:
                best = info
                if info.in_flight_bytes == 0:
                    break
        if best is None:
            return None
        move_to_tail(self._valid, best.path)
        return best.path

    def share(self, path: P) -> float:
        return self._equal_share(self._info(path))
