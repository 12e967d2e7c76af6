"""Priority path groups: one selector per group, the best usable group carries the I/O.

Like dm-multipath's priority groups (and multipath-tools' ``group_by_prio``), paths are
gathered into groups by priority. All I/O goes to the group of highest priority that
still has a usable path, and within it the group's own selector (any policy) chooses.
When the last usable path of that group fails, the next group takes over; when a path
of a higher group is reinstated, that group is used again at once. Deferred or manual
failback is decided by whoever calls ``reinstate_path``, not here.

:meth:`PriorityGroups.switch_group` makes a chosen group carry the I/O (multipathd's
``switchgroup``) while it has a usable path, until failback moves it: a path of a
better group than the chosen one being reinstated (the caller's failback policy says
when) ends the choice, as does the chosen group losing its last path (failover).

``PriorityGroups`` is itself a :class:`~mpath.selectors.base.PathSelector`, so the
filter layer and the simulator drive it like any policy; ``add_path`` takes the path's
``priority`` (higher is preferred, default 0).

One caveat: every group's selector is given the LUN's full ``max_commands``, because
only one group carries new I/O at a time. Just after a switch, I/O still in flight on
the old group is not counted against the new group's budgets.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from mpath.selectors import DEFAULT_POLICY, create_selector
from mpath.selectors.base import Clock, P, PathSelector, SelectorArgError, UnknownPathError


class PriorityGroups(PathSelector[P]):
    """Paths grouped by priority; the highest group with a usable path is used."""

    name = "groups"
    version = "1.0.0"

    def __init__(
        self,
        args: Sequence[str] = (),
        *,
        clock: Clock = time.monotonic,
        max_commands: int | None = None,
        policy: str = DEFAULT_POLICY,
    ) -> None:
        super().__init__(args, clock=clock, max_commands=max_commands)
        self._policy = policy
        self._args = tuple(args)
        # Build one now so that a bad policy name or bad arguments fail here, not later.
        create_selector(policy, self._args, clock=clock, max_commands=max_commands)
        self._groups: dict[int, PathSelector[P]] = {}
        self._group_of: dict[P, int] = {}
        self._removed: dict[P, int] = {}  # removed paths, for I/O still in flight
        self._active: PathSelector[P] | None = None
        self._active_priority: int | None = None
        self._switched: int | None = None  # an administrator's choice (switch_group)

    @property
    def policy(self) -> str:
        return self._policy

    @property
    def active_priority(self) -> int | None:
        """The priority of the group carrying I/O now (None: no usable path)."""
        return self._active_priority

    @property
    def switched(self) -> int | None:
        """The priority of the group chosen by :meth:`switch_group`, while it holds."""
        return self._switched

    @property
    def priorities(self) -> list[int]:
        """Every group's priority, best first (group N is ``priorities[N - 1]``)."""
        return sorted(self._groups, reverse=True)

    def usable(self, priority: int) -> int:
        """How many usable paths the group of ``priority`` has (0 if no such group)."""
        group = self._groups.get(priority)
        return group.valid_count if group is not None else 0

    def switch_group(self, priority: int) -> None:
        """Make the group of ``priority`` carry new I/O until failback moves it.

        Raises :class:`SelectorArgError` for an unknown group or one with no usable path.
        """
        if priority not in self._groups:
            raise SelectorArgError(f"{self.name} ps: no group of priority {priority}")
        if not self._groups[priority].valid_count:
            raise SelectorArgError(
                f"{self.name} ps: group of priority {priority} has no usable path"
            )
        self._switched = priority
        self._choose_group()

    def _choose_group(self) -> None:
        switched = self._switched
        if switched is not None:
            group = self._groups[switched]
            if group.valid_count:
                self._active, self._active_priority = group, switched
                return
            self._switched = None  # failover: the chosen group lost its last path
        self._active, self._active_priority = None, None
        for priority in sorted(self._groups, reverse=True):
            group = self._groups[priority]
            if group.valid_count:
                self._active, self._active_priority = group, priority
                return

    def _group(self, path: P) -> PathSelector[P]:
        priority = self._group_of.get(path)
        if priority is None:
            raise UnknownPathError(self.name, path)
        return self._groups[priority]

    def add_path(self, path: P, args: Sequence[str] = (), priority: int = 0) -> None:
        if path in self._group_of or path in self._removed:
            raise SelectorArgError(f"{self.name} ps: path {path} already added")
        group = self._groups.get(priority)
        if group is None:
            group = create_selector(
                self._policy, self._args, clock=self._clock, max_commands=self._max_commands
            )
        group.add_path(path, args)
        self._groups[priority] = group
        self._group_of[path] = priority
        self._choose_group()

    def remove_path(self, path: P) -> None:
        self._group(path).remove_path(path)
        self._removed[path] = self._group_of.pop(path)
        self._choose_group()

    def fail_path(self, path: P) -> None:
        self._group(path).fail_path(path)
        self._choose_group()

    def reinstate_path(self, path: P) -> None:
        self._group(path).reinstate_path(path)
        if self._switched is not None and self._group_of[path] > self._switched:
            self._switched = None  # failback: a better group came back
        self._choose_group()

    def select(self, nbytes: int, avoid: P | None = None) -> P | None:
        active = self._active
        return None if active is None else active.select(nbytes, avoid)

    def start_io(self, path: P, nbytes: int) -> None:
        self._groups[self._group_of[path]].start_io(path, nbytes)

    def end_io(self, path: P, nbytes: int, started: float) -> None:
        priority = self._group_of.get(path)
        if priority is None:
            priority = self._removed[path]
        self._groups[priority].end_io(path, nbytes, started)

    @property
    def valid_count(self) -> int:
        return sum(group.valid_count for group in self._groups.values())

    def share(self, path: P) -> float:
        group = self._group(path)
        return group.share(path) if group is self._active else 0.0

    def status(self) -> dict[str, Any]:
        groups = []
        paths = []
        for priority in sorted(self._groups, reverse=True):
            group = self._groups[priority]
            inner = group.status()
            active = group is self._active
            for entry in inner["paths"]:
                entry["priority"] = priority
                if not active:
                    entry["share"] = 0.0
            groups.append({"priority": priority, "active": active, **inner})
            paths.extend(inner["paths"])
        return {
            "policy": self._policy,
            "groups": groups,
            "paths": paths,
            "switched": self._switched,
        }
