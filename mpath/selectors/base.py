"""The path-selector contract, shaped like the kernel's ``path_selector_type``.

A selector is a small, pure state machine: it is told which paths exist, which failed
and which came back, and for each I/O it answers which path should carry it. It does
no I/O and never sleeps; time comes from an injected clock. That lets the same class
run under the real filter layer (:mod:`mpath.filter`) and under the discrete-event
simulator (:mod:`mpath.sim`), where the clock is the simulated one.

Calling convention (the filter layer and the simulator both follow it)::

    path = selector.select(nbytes)          # None: no usable path, or all out of budget
    started = clock()
    selector.start_io(path, nbytes)
    ...                                     # the command runs
    selector.end_io(path, nbytes, started)  # exactly once, also when the I/O failed

A path may be failed while it has I/O in flight; its counters still return to zero as
those I/Os end. ``valid_count`` lets the caller tell "no usable path" (0) from "every
usable path is busy" (quota's command budgets) when ``select`` returns None.

:class:`TrackedSelector` holds the bookkeeping every policy shares, in the kernel's
shape: one per-path info record (the kernel's ``pscontext``), usable paths kept apart
from failed ones, and in-flight counts and bytes maintained by ``start_io``/``end_io``.
"""

from __future__ import annotations

import re
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, TypeVar

from mpath.errors import MpathError, UsageError

Clock = Callable[[], float]
"""Monotonic seconds (``time.monotonic`` in production, the simulated clock in sim)."""

P = TypeVar("P", bound=Hashable)
"""The caller's path object; selectors only use it as a dictionary key and print it."""


class SelectorError(MpathError):
    """A selector was driven against its contract (for example an unknown path)."""


class UnknownPathError(SelectorError, KeyError):
    """The path was never added to this selector (or was removed)."""

    def __init__(self, selector: str, path: object) -> None:
        super().__init__(f"{selector} ps: unknown path {path}")
        self.path = path


class SelectorArgError(UsageError):
    """Bad selector or per-path arguments; the message starts with the selector name.

    The wording follows the kernel's (``"service-time ps: invalid relative_throughput
    'x'"``), so an administrator sees which policy refused which value.
    """


class PathSelector(ABC, Generic[P]):
    """One load-balancing policy over the paths of one path group.

    ``args`` are the policy's own arguments (strings, as in a dm table or on the
    command line); ``max_commands`` is the LUN's cap on outstanding commands, used by
    policies that budget commands (quota) and ignored by the rest.
    """

    name: ClassVar[str]
    version: ClassVar[str]

    def __init__(
        self,
        args: Sequence[str] = (),
        *,
        clock: Clock = time.monotonic,
        max_commands: int | None = None,
    ) -> None:
        if max_commands is not None and max_commands < 1:
            raise SelectorArgError(f"{self.name} ps: invalid max_commands {max_commands!r}")
        self._clock = clock
        self._max_commands = max_commands

    @abstractmethod
    def add_path(self, path: P, args: Sequence[str] = ()) -> None:
        """Add a usable path with its per-path arguments; a known path raises."""

    @abstractmethod
    def remove_path(self, path: P) -> None:
        """Forget a path; it is never selected again."""

    @abstractmethod
    def fail_path(self, path: P) -> None:
        """Move a path to the failed set: it is never selected while failed."""

    @abstractmethod
    def reinstate_path(self, path: P) -> None:
        """Make a failed path usable again."""

    @abstractmethod
    def select(self, nbytes: int, avoid: P | None = None) -> P | None:
        """The path for the next I/O of ``nbytes``, or None when none may take it now.

        ``avoid`` is a path that should not carry this I/O (it answered "ALUA state
        transition"): another valid path is chosen by the policy's own rule, with its
        budgets and counters as for any I/O; ``avoid`` itself only when it is the only
        valid path.
        """

    @abstractmethod
    def start_io(self, path: P, nbytes: int) -> None:
        """An I/O of ``nbytes`` was sent down ``path`` (after ``select`` returned it)."""

    @abstractmethod
    def end_io(self, path: P, nbytes: int, started: float) -> None:
        """An I/O ended (successfully or not); ``started`` is the clock at start_io."""

    @abstractmethod
    def status(self) -> dict[str, Any]:
        """A JSON-able picture: ``{"policy", "paths": [{"path", "state", "share", ...}]}``."""

    @property
    @abstractmethod
    def valid_count(self) -> int:
        """How many paths are usable (not failed)."""

    @abstractmethod
    def share(self, path: P) -> float:
        """The fraction (0..1) of traffic this path is meant to carry now."""


@dataclass(slots=True, eq=False)
class PathInfo(Generic[P]):
    """What a selector keeps per path (the kernel's ``struct path_info``)."""

    path: P
    failed: bool = False
    in_flight: int = 0
    in_flight_bytes: int = 0
    removed: bool = False


InfoT = TypeVar("InfoT", bound=PathInfo[Any])


class TrackedSelector(PathSelector[P], Generic[P, InfoT]):
    """Bookkeeping shared by every policy: path records, valid/failed sets, counters.

    Subclasses create their per-path record in :meth:`_new_info` (parsing per-path
    arguments there) and react to membership changes in the ``_on_*`` hooks. Usable
    paths live in ``_valid`` (in the order they were added or reinstated); every known
    path, failed or not, lives in ``_infos``. A removed path with I/O still in flight
    stays in ``_infos`` (marked ``removed``) until that I/O ends, so counters stay right.
    """

    def __init__(
        self,
        args: Sequence[str] = (),
        *,
        clock: Clock = time.monotonic,
        max_commands: int | None = None,
    ) -> None:
        super().__init__(args, clock=clock, max_commands=max_commands)
        self._infos: dict[P, InfoT] = {}
        self._valid: dict[P, InfoT] = {}
        self._configure(tuple(args))

    # -- hooks -----------------------------------------------------------------------

    def _configure(self, args: tuple[str, ...]) -> None:
        """Parse the selector's own arguments and set up its state (default: none)."""
        check_arg_count(self.name, "selector", args, 0)

    @abstractmethod
    def _new_info(self, path: P, args: Sequence[str]) -> InfoT:
        """Parse per-path arguments and build the path's record."""

    def _on_add(self, info: InfoT) -> None:
        """The path became known and usable."""

    def _on_fail(self, info: InfoT) -> None:
        """The path just left the usable set (failed or removed)."""

    def _on_reinstate(self, info: InfoT) -> None:
        """The path just came back into the usable set."""

    def _path_status(self, info: InfoT) -> dict[str, Any]:
        """Policy-specific keys for one path in :meth:`status`."""
        return {}

    def _selector_status(self) -> dict[str, Any]:
        """Policy-specific keys at the top of :meth:`status`."""
        return {}

    # -- membership ------------------------------------------------------------------

    def _info(self, path: P) -> InfoT:
        info = self._infos.get(path)
        if info is None or info.removed:
            raise UnknownPathError(self.name, path)
        return info

    def add_path(self, path: P, args: Sequence[str] = ()) -> None:
        known = self._infos.get(path)
        if known is not None:
            state = "being removed" if known.removed else "already added"
            raise SelectorArgError(f"{self.name} ps: path {path} {state}")
        info = self._new_info(path, tuple(args))
        self._infos[path] = info
        self._valid[path] = info
        self._on_add(info)

    def remove_path(self, path: P) -> None:
        info = self._info(path)
        if not info.failed:
            info.failed = True
            del self._valid[path]
            self._on_fail(info)
        info.removed = True
        if info.in_flight == 0:
            del self._infos[path]

    def fail_path(self, path: P) -> None:
        info = self._info(path)
        if info.failed:
            return
        info.failed = True
        del self._valid[path]
        self._on_fail(info)

    def reinstate_path(self, path: P) -> None:
        info = self._info(path)
        if not info.failed:
            return
        info.failed = False
        self._valid[path] = info
        self._on_reinstate(info)

    @property
    def valid_count(self) -> int:
        return len(self._valid)

    # -- I/O accounting --------------------------------------------------------------

    def start_io(self, path: P, nbytes: int) -> None:
        info = self._infos[path]
        info.in_flight += 1
        info.in_flight_bytes += nbytes

    def end_io(self, path: P, nbytes: int, started: float) -> None:
        info = self._infos[path]
        info.in_flight -= 1
        info.in_flight_bytes -= nbytes
        if info.removed and info.in_flight == 0:
            del self._infos[path]

    # -- reporting -------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        paths = []
        for info in self._infos.values():
            if info.removed:
                continue
            entry: dict[str, Any] = {
                "path": str(info.path),
                "state": "failed" if info.failed else "active",
                "share": self.share(info.path),
                "in_flight": info.in_flight,
                "in_flight_bytes": info.in_flight_bytes,
            }
            entry.update(self._path_status(info))
            paths.append(entry)
        return {"policy": self.name, **self._selector_status(), "paths": paths}

    def _equal_share(self, info: InfoT) -> float:
        """Every usable path meant to carry the same part (failed paths: none)."""
        return 0.0 if info.failed else 1.0 / len(self._valid)


# -- argument parsing ------------------------------------------------------------------

_UINT_RE = re.compile(r"[0-9]+")


def parse_uint(
    selector: str, what: str, text: str, *, low: int = 0, high: int | None = None
) -> int:
    """Parse a whole number strictly (no sign, no junk), like the kernel's ``%u%c``."""
    if not _UINT_RE.fullmatch(text):
        raise SelectorArgError(f"{selector} ps: invalid {what} {text!r}")
    value = int(text)
    if value < low or (high is not None and value > high):
        bounds = f"{low}..{high}" if high is not None else f">= {low}"
        raise SelectorArgError(f"{selector} ps: invalid {what} {text!r} (expected {bounds})")
    return value


def check_arg_count(selector: str, what: str, args: Sequence[str], most: int) -> None:
    """Refuse more positional arguments than the policy takes."""
    if len(args) > most:
        raise SelectorArgError(
            f"{selector} ps: too many {what} arguments {list(args)!r} (at most {most})"
        )


def parse_options(selector: str, args: Sequence[str], known: Sequence[str]) -> dict[str, str]:
    """Parse ``name=value`` selector arguments, refusing unknown or repeated names."""
    options: dict[str, str] = {}
    for arg in args:
        key, sep, value = arg.partition("=")
        if not sep or key not in known:
            raise SelectorArgError(
                f"{selector} ps: invalid argument {arg!r} (expected name=value, "
                f"names: {', '.join(known)})"
            )
        if key in options:
            raise SelectorArgError(f"{selector} ps: argument {key!r} given twice")
        options[key] = value
    return options


def move_to_tail(paths: dict[P, InfoT], path: P) -> None:
    """Move the chosen path to the end of the usable paths, as the kernel does.

    Iteration order is then least recently chosen first, so scans that keep the first
    of equal candidates break ties in favour of the path that waited longest.
    """
    paths[path] = paths.pop(path)
