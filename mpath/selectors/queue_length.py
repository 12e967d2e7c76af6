"""``queue-length``: dm-multipath's fewest-I/Os-in-flight selector.

Each path counts the I/Os it has in flight (up at ``start_io``, down at ``end_io``);
the usable path with the fewest wins, and an idle path is taken at once. Ties go to the
path chosen least recently, as the kernel moves each winner to the tail of its list.
Because a fast path empties its queue sooner, it is chosen more often: with a deep
enough queue every path stays busy and the pair reaches the sum of its speeds. The
cost is latency: the slow path holds as many I/Os as the fast one.

Per-path arguments: ``[repeat_count]``; the kernel accepts only 1 (larger values are
deprecated and clamped to 1 with a warning), and so does this selector.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from mpath.selectors.base import (
    P,
    PathInfo,
    TrackedSelector,
    check_arg_count,
    move_to_tail,
    parse_uint,
)

log = logging.getLogger(__name__)


def parse_repeat_count(selector: str, args: Sequence[str], most: int) -> None:
    """Accept the kernel's legacy ``repeat_count`` and clamp it to 1, as the kernel does."""
    check_arg_count(selector, "path", args, most)
    if args and parse_uint(selector, "repeat count", args[0]) > 1:
        log.warning("%s ps: repeat_count > 1 is deprecated, using 1 instead", selector)


class QueueLengthSelector(TrackedSelector[P, PathInfo[P]]):
    """The usable path with the fewest I/Os in flight."""

    name = "queue-length"
    version = "0.2.0"

    def _new_info(self, path: P, args: Sequence[str]) -> PathInfo[P]:
        parse_repeat_count(self.name, args, 1)
        return PathInfo(path)

    def select(self, nbytes: int, avoid: P | None = None) -> P | None:
        best: PathInfo[P] | None = None
        for info in self._valid.values():
            if info.path is avoid and len(self._valid) > 1:
                continue
            if best is None or info.in_flight < best.in_flight:
                best = info
                if info.in_flight == 0:
                    break
        if best is None:
            return None
        move_to_tail(self._valid, best.path)
        return best.path

    def share(self, path: P) -> float:
        return self._equal_share(self._info(path))
