"""open-iscsi sessions to a LIO rig, for the lab tests that need /dev/sdX paths."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from mpath.lab.stack import Sessions, iscsi_sessions, sh
from mpath.rig import RigManager
from mpath.units import Rate

__all__ = ["Sessions", "logged_in", "sh"]


@contextlib.contextmanager
def logged_in(name: str, rates: list[Rate | None] | None = None) -> Iterator[Sessions]:
    """A 2-path LIO rig (64 MiB), iscsid, and one open-iscsi session per path; all
    undone afterwards."""
    manager = RigManager()
    try:
        rig = manager.up(name=name, paths=2, size=64 * 1024**2, backend="lio", rates=rates)
        with iscsi_sessions(rig) as sessions:
            yield sessions
    finally:
        manager.down(name)
