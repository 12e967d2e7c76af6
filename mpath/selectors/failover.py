"""``failover``: one active path, the others stand by (MPIO's Failover Only).

All I/O goes to the most preferred usable path: the highest ``priority``, and among
equal priorities the one added first. When it fails the next one takes over; when a
more preferred path is reinstated it becomes active again at once. Whether to reinstate
a recovered path straight away or later (failback: immediate, manual, deferred) is
decided above the selector, by whoever calls ``reinstate_path``.

Per-path arguments: ``[priority]`` (a whole number, default 0; higher is preferred).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from mpath.selectors.base import P, PathInfo, TrackedSelector, check_arg_count, parse_uint

DEFAULT_PRIORITY = 0


@dataclass(slots=True, eq=False)
class _FailoverInfo(PathInfo[P]):
    priority: int = DEFAULT_PRIORITY
    added: int = 0


class FailoverSelector(TrackedSelector[P, _FailoverInfo[P]]):
    """Everything down the one most preferred usable path."""

    name = "failover"
    version = "1.0.0"

    def _configure(self, args: tuple[str, ...]) -> None:
        check_arg_count(self.name, "selector", args, 0)
        self._added = 0
        self._active: _FailoverInfo[P] | None = None

    def _new_info(self, path: P, args: Sequence[str]) -> _FailoverInfo[P]:
        check_arg_count(self.name, "path", args, 1)
        priority = parse_uint(self.name, "priority", args[0]) if args else DEFAULT_PRIORITY
        self._added += 1
        return _FailoverInfo(path, priority=priority, added=self._added)

    def _choose_active(self) -> None:
        self._active = min(
            self._valid.values(), key=lambda info: (-info.priority, info.added), default=None
        )

    def _on_add(self, info: _FailoverInfo[P]) -> None:
        self._choose_active()

    def _on_fail(self, info: _FailoverInfo[P]) -> None:
        self._choose_active()

    def _on_reinstate(self, info: _FailoverInfo[P]) -> None:
        self._choose_active()

    def select(self, nbytes: int, avoid: P | None = None) -> P | None:
        active = self._active
        if active is not None and active.path is avoid and len(self._valid) > 1:
            # This one I/O goes to the next preferred path; the active one stays.
            standby = min(
                (i for i in self._valid.values() if i is not active),
                key=lambda info: (-info.priority, info.added),
            )
            return standby.path
        return None if active is None else active.path

    def share(self, path: P) -> float:
        return 1.0 if self._info(path) is self._active else 0.0

    def _path_status(self, info: _FailoverInfo[P]) -> dict[str, Any]:
        return {"priority": info.priority, "role": "active" if info is self._active else "standby"}
