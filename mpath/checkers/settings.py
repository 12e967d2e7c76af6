"""Settings of the checker monitor, with their defaults and why they are what they are."""

from __future__ import annotations

from dataclasses import dataclass, field

from mpath.checkers.base import DEFAULT_CHECK_TIMEOUT
from mpath.checkers.damping import DampingSettings
from mpath.checkers.failback import DEFAULT_FAILBACK, FailbackPolicy
from mpath.checkers.schedule import DEFAULT_MAX_POLLING_INTERVAL, DEFAULT_POLLING_INTERVAL
from mpath.errors import UsageError

DEFAULT_LOGIN_TIMEOUT = 5.0
"""Seconds a failed path's fresh login plus identity check may take (the iSCSI
transport's own login bound): a portal that drops packets makes a login wait out TCP's
SYN retries, and that must not hold the path's checks for longer."""


@dataclass(frozen=True, slots=True)
class CheckerSettings:
    """How a :class:`~mpath.checkers.monitor.CheckerMonitor` checks and reinstates paths.

    * ``checker``: the checker's registered name (``tur``, ``readsector0``, ``directio``,
      ``nop``); ``timeout``: seconds one check may take before the path is ``timeout``.
    * ``polling_interval`` / ``max_polling_interval``: the base interval between checks,
      and the longest a stable path backs off to (doubling at each unchanged check).
    * ``login_timeout``: bound on re-logging a failed path in and checking its identity.
    * ``damping``: flap damping (:mod:`mpath.checkers.damping`).
    * ``failback``: ``immediate``, ``manual``, ``followover`` or seconds
      (:mod:`mpath.checkers.failback`).
    """

    checker: str = "tur"
    timeout: float = DEFAULT_CHECK_TIMEOUT
    polling_interval: float = DEFAULT_POLLING_INTERVAL
    max_polling_interval: float = DEFAULT_MAX_POLLING_INTERVAL
    login_timeout: float = DEFAULT_LOGIN_TIMEOUT
    damping: DampingSettings = field(default_factory=DampingSettings)
    failback: str = DEFAULT_FAILBACK

    def __post_init__(self) -> None:
        from mpath.checkers import CHECKER_NAMES, UnknownCheckerError

        if self.checker not in CHECKER_NAMES:
            raise UnknownCheckerError(self.checker)
        if not self.timeout > 0:
            raise UsageError(f"checker timeout must be above 0 seconds, not {self.timeout}")
        if not self.polling_interval > 0:
            raise UsageError(
                f"polling_interval must be above 0 seconds, not {self.polling_interval}"
            )
        if self.max_polling_interval < self.polling_interval:
            raise UsageError("max_polling_interval must not be below polling_interval")
        if not self.login_timeout > 0:
            raise UsageError(f"login_timeout must be above 0 seconds, not {self.login_timeout}")
        FailbackPolicy.parse(self.failback)

    @property
    def failback_policy(self) -> FailbackPolicy:
        return FailbackPolicy.parse(self.failback)
