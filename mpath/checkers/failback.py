"""Failback: when a better priority group that came back takes the I/O back.

With priority groups (docs/selectors.md, ``PriorityGroups``) I/O goes to the group of
highest priority that has a usable path. *Failover* to a lower group happens at once
when the active group loses its last path: that is never delayed. *Failback* is the
return to a better group after one of its paths recovers, and that is a policy,
multipath-tools' ``failback``:

``immediate``
    Switch back as soon as a path of the better group is up (and not held by damping).
``manual``
    Never switch back by itself; an administrator asks (:meth:`Failback.request`). The
    recovered path stays checked and ready, and is used at once if the active group
    fails.
``followover``
    Switch back only when the recovered path is the *first* of its group to come
    back (every other path of the group is down or shaky). Used where several hosts
    share an active/passive array: if another host moved the LUN to the other group
    while this group's paths were up, this host follows instead of fighting it.
``N`` (seconds, deferred)
    Switch back once the better group has been available for N seconds. As in
    multipathd, every new path coming up in a better group restarts the delay, and any
    path failure of the device cancels it (it restarts at the next check that finds the
    better group still up), so a flapping preferred group does not pull the I/O back
    and forth.

:class:`Failback` is a pure state machine for one device; time is passed in.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from mpath.errors import UsageError


class FailbackMode(StrEnum):
    IMMEDIATE = "immediate"
    MANUAL = "manual"
    FOLLOWOVER = "followover"
    DEFERRED = "deferred"


DEFAULT_FAILBACK = "immediate"
"""Go back to the preferred group at once: what the device's priority groups do by
themselves, and what multipath-tools' hardware table sets for most ALUA arrays
(LIO included). multipath-tools' own built-in default is ``manual``."""


@dataclass(frozen=True, slots=True)
class FailbackPolicy:
    """A parsed ``failback`` setting; ``delay`` is used by DEFERRED only."""

    mode: FailbackMode
    delay: float = 0.0

    @classmethod
    def parse(cls, text: str) -> FailbackPolicy:
        """``immediate``, ``manual``, ``followover`` or a number of seconds (deferred)."""
        word = text.strip().lower()
        for mode in (FailbackMode.IMMEDIATE, FailbackMode.MANUAL, FailbackMode.FOLLOWOVER):
            if word == mode.value:
                return cls(mode)
        try:
            delay = float(word)
        except ValueError:
            raise UsageError(
                f"bad failback {text!r}: immediate, manual, followover or seconds (deferred)"
            ) from None
        if not delay > 0:
            raise UsageError(f"bad failback {text!r}: a deferred failback needs seconds above 0")
        return cls(FailbackMode.DEFERRED, delay)

    def __str__(self) -> str:
        return f"{self.delay:g}" if self.mode is FailbackMode.DEFERRED else self.mode.value


class Failback:
    """Decides, for one device, whether a recovered better group may take over now."""

    __slots__ = ("_due", "_requested", "policy")

    def __init__(self, policy: FailbackPolicy) -> None:
        self.policy = policy
        self._due: float | None = None
        self._requested = False

    @property
    def due(self) -> float | None:
        """When a deferred failback fires if nothing changes (None: none scheduled)."""
        return self._due

    def request(self) -> None:
        """An administrator asks for failback (the only way under ``manual``)."""
        self._requested = True

    def path_failed(self) -> None:
        """Some path of the device failed: a scheduled deferred failback starts over."""
        self._due = None

    def decide(self, now: float, *, new_up: bool, first_in_group: bool) -> bool:
        """A path of a better group than the active one is up: switch back now?

        ``new_up``: the path just came up (it was not up at its previous check).
        ``first_in_group``: no other path of its group is up (followover's test).
        Returns True when the caller should reinstate the better group's paths now.
        """
        if self._requested:
            self._requested = False
            self._due = None
            return True
        mode = self.policy.mode
        if mode is FailbackMode.IMMEDIATE:
            return True
        if mode is FailbackMode.FOLLOWOVER:
            return new_up and first_in_group
        if mode is FailbackMode.DEFERRED:
            if new_up or self._due is None:
                self._due = now + self.policy.delay
            if now >= self._due:
                self._due = None
                return True
        return False

    def done(self) -> None:
        """The better group took over (or was reinstated for failover): nothing pending."""
        self._due = None
        self._requested = False
