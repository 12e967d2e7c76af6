"""``quota``: static load balancing by data quota under the LUN's command cap.

This is the patent's claim 3. Each path gets two static allowances:

* a **data quota** per round: ``quota_i = weight_i * quantum`` bytes (weights default
  to 1, so equal quotas);
* a **command budget**: its part of the LUN's maximum number of outstanding commands
  ``C``. Each usable path first gets one slot (when ``C`` allows), and the remaining
  ``C - n`` slots are split in proportion to weight by the largest-remainder method,
  so the budgets add up to exactly ``C``. When ``C`` is smaller than the number of
  paths, the ``C`` most heavily weighted paths get one slot each and the others sit
  out. Without a cap (``max_commands=None``) budgets are unlimited.

The path at the head of the round keeps receiving I/O while it has quota left and a
free slot; when its quota runs out it leaves the round, and when its slots are full it
waits (is *parked*) until one of its commands ends. When no path has quota left, the
next round tops every quota up by its quantum; an I/O larger than what is left is
still sent and the overdraft is paid back from the next round (deficit round-robin),
so the split by bytes matches the weights over time whatever the I/O sizes.

The LUN cap holds at all times: ``select`` returns None while the commands in flight
on all paths (failed ones included, until their I/O ends) reach ``C``, and also while
every path that still has quota has its slots full. The policy is deliberately not
work-conserving: a static split is only as good as its weights, which is what the
dynamic ``share`` policy fixes.

Costs: ``select``, ``start_io`` and ``end_io`` are O(1) (amortised: a new round costs
O(paths) and carries at least one I/O per path). Membership changes recompute the
budgets and start a fresh round.

Selector arguments: ``quantum=SIZE`` (bytes per unit of weight per round, default 1M).
Per-path arguments: ``[weight]`` (a whole number >= 1, default 1).
"""

from __future__ import annotations

import sys
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from mpath.errors import UsageError
from mpath.selectors.base import (
    P,
    PathInfo,
    SelectorArgError,
    TrackedSelector,
    check_arg_count,
    parse_options,
    parse_uint,
)
from mpath.units import parse_size

DEFAULT_QUANTUM = 1 << 20
DEFAULT_WEIGHT = 1
UNLIMITED = sys.maxsize

# Where a path stands in the current round.
_OUT = 0  # failed, or no command slot at all: not in rounds
_READY = 1  # in the round's ring: has quota, may have a free slot
_PARKED = 2  # has quota, every slot busy: rejoins the ring when one ends
_SPENT = 3  # quota used up: waits for the next round


@dataclass(slots=True, eq=False)
class _QuotaInfo(PathInfo[P]):
    weight: int = DEFAULT_WEIGHT
    quota: int = 0
    budget: int = 0
    standing: int = _OUT


def apportion_budgets(weights: Sequence[int], max_commands: int | None) -> list[int]:
    """Split ``max_commands`` slots over paths of the given weights (see module doc).

    >>> apportion_budgets([1, 4], 32)
    [7, 25]
    >>> apportion_budgets([1, 1, 1], 2)
    [1, 1, 0]
    """
    count = len(weights)
    if max_commands is None:
        return [UNLIMITED] * count
    if max_commands < count:
        order = sorted(range(count), key=lambda i: -weights[i])
        chosen = set(order[:max_commands])
        return [1 if i in chosen else 0 for i in range(count)]
    spare = max_commands - count
    total = sum(weights)
    exact = [spare * weight / total for weight in weights]
    budgets = [int(value) for value in exact]
    leftover = spare - sum(budgets)
    by_remainder = sorted(range(count), key=lambda i: (-(exact[i] - budgets[i]), -weights[i], i))
    for i in by_remainder[:leftover]:
        budgets[i] += 1
    return [1 + budget for budget in budgets]


class QuotaSelector(TrackedSelector[P, _QuotaInfo[P]]):
    """Per-round data quotas per path, within per-path command budgets and the LUN cap."""

    name = "quota"
    version = "1.0.0"

    def _configure(self, args: tuple[str, ...]) -> None:
        options = parse_options(self.name, args, ("quantum",))
        self._quantum = DEFAULT_QUANTUM
        if "quantum" in options:
            try:
                self._quantum = parse_size(options["quantum"])
            except UsageError:
                self._quantum = 0
            if self._quantum < 1:
                raise SelectorArgError(f"{self.name} ps: invalid quantum {options['quantum']!r}")
        self._cap = UNLIMITED if self._max_commands is None else self._max_commands
        self._ring: deque[_QuotaInfo[P]] = deque()
        self._parked = 0
        self._total_in_flight = 0
        self._total_weight = 0

    def _new_info(self, path: P, args: Sequence[str]) -> _QuotaInfo[P]:
        check_arg_count(self.name, "path", args, 1)
        weight = parse_uint(self.name, "weight", args[0], low=1) if args else DEFAULT_WEIGHT
        return _QuotaInfo(path, weight=weight)

    # Any change of the usable set re-divides the budgets and starts a fresh round.
    def _on_add(self, info: _QuotaInfo[P]) -> None:
        self._restart()

    def _on_fail(self, info: _QuotaInfo[P]) -> None:
        self._restart()

    def _on_reinstate(self, info: _QuotaInfo[P]) -> None:
        self._restart()

    def _restart(self) -> None:
        for info in self._infos.values():
            info.standing = _OUT
            info.budget = 0
            info.quota = 0
        valid = list(self._valid.values())
        budgets = apportion_budgets([info.weight for info in valid], self._max_commands)
        for info, budget in zip(valid, budgets, strict=True):
            info.budget = budget
            if budget:
                info.standing = _SPENT
        self._total_weight = sum(info.weight for info in valid if info.budget)
        self._ring.clear()
        self._parked = 0
        self._new_round()

    def _new_round(self) -> bool:
        """Top every participating quota up; False when no path takes part."""
        members = [info for info in self._valid.values() if info.standing != _OUT]
        if not members:
            return False
        while not self._ring and not self._parked:
            for info in members:
                info.quota += info.weight * self._quantum
                if info.quota > 0:
                    self._join(info)
        return True

    def _join(self, info: _QuotaInfo[P]) -> None:
        if info.in_flight < info.budget:
            info.standing = _READY
            self._ring.append(info)
        else:
            info.standing = _PARKED
            self._parked += 1

    def select(self, nbytes: int, avoid: P | None = None) -> P | None:
        if self._total_in_flight >= self._cap:
            return None
        ring = self._ring
        if avoid is not None and self.valid_count > 1:
            # Another path's budget must take it: the first one in the ring that has room.
            for info in ring:
                if info.path is not avoid and info.in_flight < info.budget:
                    return info.path
        while True:
            while ring:
                info = ring[0]
                if info.in_flight < info.budget:
                    if info.path is avoid and self.valid_count > 1:
                        return None  # wait for another path's room
                    return info.path
                ring.popleft()
                info.standing = _PARKED
                self._parked += 1
            if self._parked or not self._new_round():
                return None

    def start_io(self, path: P, nbytes: int) -> None:
        info = self._infos[path]
        info.in_flight += 1
        info.in_flight_bytes += nbytes
        self._total_in_flight += 1
        if info.standing == _READY:
            info.quota -= nbytes
            if info.quota <= 0:
                info.standing = _SPENT
                ring = self._ring
                if ring[0] is info:
                    ring.popleft()
                else:
                    ring.remove(info)

    def end_io(self, path: P, nbytes: int, started: float) -> None:
        info = self._infos[path]
        info.in_flight -= 1
        info.in_flight_bytes -= nbytes
        self._total_in_flight -= 1
        if info.standing == _PARKED and info.in_flight < info.budget:
            info.standing = _READY
            self._parked -= 1
            self._ring.append(info)
        elif info.removed and info.in_flight == 0:
            del self._infos[path]

    @property
    def total_in_flight(self) -> int:
        """Commands in flight on all paths of this LUN, failed paths included."""
        return self._total_in_flight

    def budget(self, path: P) -> int | None:
        """The path's command budget (None: unlimited)."""
        budget = self._info(path).budget
        return None if budget == UNLIMITED else budget

    def share(self, path: P) -> float:
        info = self._info(path)
        if info.standing == _OUT or not self._total_weight:
            return 0.0
        return info.weight / self._total_weight

    def _selector_status(self) -> dict[str, Any]:
        return {
            "quantum": self._quantum,
            "max_commands": self._max_commands,
            "in_flight_total": self._total_in_flight,
        }

    def _path_status(self, info: _QuotaInfo[P]) -> dict[str, Any]:
        return {
            "weight": info.weight,
            "quota_bytes": info.weight * self._quantum,
            "quota_left": max(info.quota, 0) if info.standing != _OUT else 0,
            "budget": None if info.budget == UNLIMITED else info.budget,
        }
