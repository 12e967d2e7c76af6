"""Path checkers: the workers that tell the filter layer a path failed or came back.

They play the part of the patent's miniport drivers between I/Os (docs/checkers.md):

* a **checker** (one small module each, registered here by name) checks one path once
  and returns a :class:`~mpath.checkers.base.CheckResult`: ``tur`` (the default),
  ``readsector0``, ``directio`` (block-device paths) and ``nop`` (iSCSI NOP-Out);
* the **monitor** (:class:`mpath.checkers.monitor.CheckerMonitor`) runs the checks of
  every path of a device from one scheduler task, backs the interval off while a path
  is stable, fails idle paths found down, and reinstates recovered ones subject to
  flap damping (:mod:`~mpath.checkers.damping`) and the failback policy
  (:mod:`~mpath.checkers.failback`).

::

    checker = create_checker("tur", timeout=1.0)
    result = await checker.check(transport)      # CheckResult(state, msgid, latency_ms)
"""

from __future__ import annotations

from mpath.checkers.base import DEFAULT_CHECK_TIMEOUT, Checker, CheckResult
from mpath.checkers.directio import DirectioChecker
from mpath.checkers.nop import NopChecker
from mpath.checkers.readsector0 import ReadSector0Checker
from mpath.checkers.tur import TurChecker
from mpath.errors import UsageError

DEFAULT_CHECKER = "tur"

_REGISTRY: dict[str, type[Checker]] = {
    cls.name: cls for cls in (TurChecker, ReadSector0Checker, DirectioChecker, NopChecker)
}

CHECKER_NAMES: tuple[str, ...] = tuple(_REGISTRY)
"""Every checker name, the default first."""


class UnknownCheckerError(UsageError):
    """No checker is registered under that name."""

    def __init__(self, name: str) -> None:
        super().__init__(f"unknown checker {name!r} (choose from {', '.join(CHECKER_NAMES)})")
        self.name = name


def create_checker(name: str, timeout: float = DEFAULT_CHECK_TIMEOUT) -> Checker:
    """A new checker of kind ``name`` whose checks end after ``timeout`` seconds."""
    try:
        cls = _REGISTRY[name]
    except KeyError:
        raise UnknownCheckerError(name) from None
    return cls(timeout)


__all__ = [
    "CHECKER_NAMES",
    "DEFAULT_CHECKER",
    "DEFAULT_CHECK_TIMEOUT",
    "CheckResult",
    "Checker",
    "UnknownCheckerError",
    "create_checker",
]
