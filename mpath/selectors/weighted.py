"""``weighted``: Windows MPIO's Weighted Paths policy.

The administrator gives each path a weight, a cost: *the usable path with the lowest
weight carries the I/O*, and when it fails the next lowest takes over. It is a ranked
failover list rather than a proportional split. MPIO does not say what happens between
equal weights; here equal lowest weights take turns (the path chosen least recently
wins), so equal paths share the load evenly.

Per-path arguments: ``[weight]`` (a whole number, default 0; lower is preferred).
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

DEFAULT_WEIGHT = 0


@dataclass(slots=True, eq=False)
class _WeightedInfo(PathInfo[P]):
    weight: int = DEFAULT_WEIGHT


class WeightedSelector(TrackedSelector[P, _WeightedInfo[P]]):
    """The usable path of lowest weight; equal lowest weights take turns."""

    name = "weighted"
    version = "1.0.0"

    def _new_info(self, path: P, args: Sequence[str]) -> _WeightedInfo[P]:
        check_arg_count(self.name, "path", args, 1)
        weight = parse_uint(self.name, "weight", args[0]) if args else DEFAULT_WEIGHT
        return _WeightedInfo(path, weight=weight)

    def select(self, nbytes: int, avoid: P | None = None) -> P | None:
        best: _WeightedInfo[P] | None = None
        for info in self._valid.values():
            if info.path is avoid and len(self._valid) > 1:
                continue
            if best is None or info.weight < best.weight:
                best = info
        if best is None:
            return None
        move_to_tail(self._valid, best.path)
        return best.path

    def share(self, path: P) -> float:
        info = self._info(path)
        if info.failed:
            return 0.0
        lowest = min(other.weight for other in self._valid.values())
        if info.weight != lowest:
            return 0.0
        return 1.0 / sum(1 for other in self._valid.values() if other.weight == lowest)

    def _path_status(self, info: _WeightedInfo[P]) -> dict[str, Any]:
        return {"weight": info.weight}
