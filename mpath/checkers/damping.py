"""Flap damping: a path that keeps failing is held out until it has stayed up a while.

A flapping path (a loose cable, a switch port bouncing, an overloaded target) costs
more than a dead one: every time it is reinstated, the I/O sent down it stalls until
the failure is noticed again, and the logs fill. multipath-tools' answers are the
``san_path_err_threshold`` / ``san_path_err_forget_rate`` / ``san_path_err_recovery_time``
trio and the ``marginal_path_*`` settings, all off by default and hard to tune. mpath
keeps one rule, on by default:

    A path that failed ``flap_threshold`` times within ``flap_window`` seconds is
    *shaky*: it is not reinstated until it has been seen up, without a failure, for
    ``recovery_time`` seconds. Then its failure record is forgotten.

A *failure* is a transition from usable to unusable (the device failing the path on
an I/O error or stall, or a check finding a usable path down), not every check that
finds it still down, as in multipathd's ``check_path_reinstate_state``. The window
slides, so old failures are forgotten by age (multipath-tools' forget rate counts
good checks instead, which makes the forgetting depend on the polling interval).

Exception, as in multipathd: when no other path is usable, a shaky path that is up is
reinstated at once (:meth:`Damping.release`): a flaky path beats no path.

:class:`Damping` is a pure state machine for one path; time is passed in.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from mpath.errors import UsageError

DEFAULT_FLAP_THRESHOLD = 3
"""Failures within the window that make a path shaky. Two failures in a minute happen
to healthy paths (a target restart, a cable swap); three is a pattern."""
DEFAULT_FLAP_WINDOW = 60.0
"""Seconds over which failures are counted (multipathd's 12 checks at its 5 s interval)."""
DEFAULT_RECOVERY_TIME = 30.0
"""Seconds a shaky path must stay up before it carries I/O again: long enough to
outlast the usual bounce of a switch port, short enough that a repaired path returns
without an administrator."""


@dataclass(frozen=True, slots=True)
class DampingSettings:
    """Flap damping knobs (see the module docstring). ``flap_threshold`` 0 turns it off."""

    flap_threshold: int = DEFAULT_FLAP_THRESHOLD
    flap_window: float = DEFAULT_FLAP_WINDOW
    recovery_time: float = DEFAULT_RECOVERY_TIME

    def __post_init__(self) -> None:
        if self.flap_threshold < 0:
            raise UsageError(f"flap_threshold must be 0 (off) or more, not {self.flap_threshold}")
        if self.flap_window <= 0:
            raise UsageError(f"flap_window must be above 0 seconds, not {self.flap_window}")
        if self.recovery_time < 0:
            raise UsageError(f"recovery_time must be 0 or more seconds, not {self.recovery_time}")

    @property
    def enabled(self) -> bool:
        return self.flap_threshold > 0


class Damping:
    """One path's failure record and whether it may be reinstated now."""

    __slots__ = ("_failures", "_settings", "_up_since", "shaky")

    def __init__(self, settings: DampingSettings) -> None:
        self._settings = settings
        # Only the newest ``flap_threshold`` failure times matter: the path is shaky
        # when the oldest of them is still inside the window.
        self._failures: deque[float] = deque(maxlen=max(settings.flap_threshold, 1))
        self._up_since: float | None = None
        self.shaky = False

    def record_failure(self, now: float) -> bool:
        """The path went from usable to unusable at ``now``. True if it just became shaky."""
        self._up_since = None
        if not self._settings.enabled:
            return False
        self._failures.append(now)
        if self.shaky:
            return False
        full = len(self._failures) == self._settings.flap_threshold
        if full and now - self._failures[0] <= self._settings.flap_window:
            self.shaky = True
            return True
        return False

    def record_up(self, now: float) -> None:
        """A check found the path up at ``now`` (the stable period starts at the first)."""
        if self._up_since is None:
            self._up_since = now

    def record_down(self) -> None:
        """A check found the path not up (its stable period, if any, is over)."""
        self._up_since = None

    def failures(self, now: float) -> int:
        """Failures counted within the window ending at ``now`` (at most the threshold)."""
        window = self._settings.flap_window
        return sum(1 for at in self._failures if now - at <= window)

    def may_reinstate(self, now: float) -> bool:
        """True unless the path is shaky and has not yet been up for ``recovery_time``.

        Once the stable period is over the path stops being shaky and its failures are
        forgotten, so it starts afresh.
        """
        if not self.shaky:
            return True
        release = self.release_at()
        if release is not None and now >= release:
            self.release()
            return True
        return False

    def release_at(self) -> float | None:
        """When a shaky path that stays up may be reinstated (None: not shaky, or down)."""
        if not self.shaky or self._up_since is None:
            return None
        return self._up_since + self._settings.recovery_time

    def release(self) -> None:
        """Stop holding the path (stable long enough, or no other path is usable)."""
        self.shaky = False
        self._failures.clear()
