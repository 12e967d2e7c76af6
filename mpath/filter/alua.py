"""Which paths carry I/O on an ALUA LU: pure decisions over the paths' access states.

A path's access state is its target port group's (REPORT TARGET PORT GROUPS, or the
sense code a command met: 04/0a transitioning, 04/0b standby, 04/0c unavailable).
What the device does with each state, as the kernel's ALUA handler and multipath-tools'
``alua`` prioritizer do it:

* active/optimized (and LBA-dependent): carries I/O;
* active/non-optimized: carries I/O only while no optimized path is usable;
* standby, unavailable, offline: carries none, but the path is not failed: its
  session stays up and it comes back as soon as its group's state does;
* transitioning: carries none while it lasts; I/O goes to another usable path, and
  when there is none it waits (``no_path_retry`` does not run) for at most
  ``alua_transition_timeout``, after which the port counts as standby.

Kept apart from the device so the rules are tested with plain values, no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TypeVar

from mpath.scsi.alua import AluaState, io_tier

K = TypeVar("K")


def carriers(paths: Iterable[tuple[K, bool, int | None]]) -> set[K]:
    """The paths that carry I/O, from (path, usable, ALUA state) triples.

    ``usable`` is the filter layer's own verdict (logged in, not failed). Of the
    usable paths, those whose state ranks best (:func:`mpath.scsi.alua.io_tier`) carry
    I/O; the others stand by. Empty when no usable path may take media access.
    """
    ranked = [(path, io_tier(state)) for path, usable, state in paths if usable]
    tiers = [tier for _, tier in ranked if tier is not None]
    if not tiers:
        return set()
    best = min(tiers)
    return {path for path, tier in ranked if tier == best}


def transition_pending(
    paths: Iterable[tuple[bool, int | None, float]], now: float, timeout: float
) -> bool:
    """Whether I/O should keep waiting for a port to finish an ALUA transition.

    From (usable, ALUA state, since when) triples: True while some usable path has been
    transitioning for less than ``timeout`` seconds.
    """
    return any(
        usable and state == AluaState.TRANSITIONING and now - since < timeout
        for usable, state, since in paths
    )
