"""Target backends of the rig: who serves the LUN inside the rig's namespace.

``tgt`` (the user-space target daemon) runs everywhere; ``lio`` drives the kernel
target through rtslib-fb where configfs and the target modules exist.
"""

from __future__ import annotations

from typing import Protocol

from mpath.errors import RigUsageError
from mpath.rig.model import Rig


class TargetBackend(Protocol):
    """What the rig asks of a target implementation."""

    name: str

    def check_available(self) -> None:
        """Raise BackendUnavailableError, before anything is created, if it cannot run."""

    def start(self, rig: Rig) -> int | None:
        """Serve ``rig.target`` on its portals; return the daemon's pid if there is one."""

    def stop(self, rig: Rig) -> None:
        """Remove everything ``start`` created; safe to call on a half-built rig, twice."""

    def restart(self, rig: Rig) -> int | None:
        """Take the target away on every path at once and serve it again, same identity."""

    def resize(self, rig: Rig) -> None:
        """Serve the LUN at ``rig.lun.size_bytes`` (the backing file already has it)."""


BACKEND_NAMES = ("tgt", "lio")


def get_backend(name: str) -> TargetBackend:
    """Return the backend called ``name``; unknown names are a usage error."""
    if name == "tgt":
        from mpath.rig.backends.tgt import TgtBackend

        return TgtBackend()
    if name == "lio":
        from mpath.rig.backends.lio import LioBackend

        return LioBackend()
    raise RigUsageError(f"unknown rig backend {name!r}: choose one of {', '.join(BACKEND_NAMES)}")
