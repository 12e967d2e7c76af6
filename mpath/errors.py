"""The one error hierarchy of mpath.

Every expected failure is an :class:`MpathError` carrying the data that explains it.
Lower-layer errors (``OSError``, ``subprocess.CalledProcessError``, libiscsi status
codes, pyscsi's nested exception classes) are translated into these at the boundary
where they happen, so callers catch one family and the CLI can turn any of them into
one clear line and the right exit code.
"""

from __future__ import annotations


class MpathError(Exception):
    """Base of every error mpath raises on purpose.

    ``exit_code`` follows the CLI contract: 1 when the operation failed (a path, the
    target or the I/O), 2 when the input was bad.
    """

    exit_code = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class UsageError(MpathError):
    """The caller asked for something that cannot be valid (bad value, bad name)."""

    exit_code = 2


class RigError(MpathError):
    """Building, changing or removing a test rig failed."""


class RigUsageError(RigError, UsageError):
    """A rig command was given bad input (unknown rig, path out of range, bad rate)."""

    exit_code = 2


class RigNotFoundError(RigUsageError):
    """No rig of that name exists on this host."""

    def __init__(self, name: str) -> None:
        super().__init__(f"no rig named {name!r} on this host (see 'mpath rig up')")
        self.name = name


class CommandFailedError(RigError):
    """A system command the rig depends on (ip, tc, nft, tgtadm) failed."""

    def __init__(self, argv: list[str], returncode: int, stderr: str) -> None:
        detail = stderr.strip().splitlines()[-1] if stderr.strip() else f"exit {returncode}"
        super().__init__(f"{' '.join(argv)}: {detail}")
        self.argv = argv
        self.returncode = returncode
        self.stderr = stderr


class BackendUnavailableError(RigError):
    """The requested rig backend cannot run on this host (a kernel part is missing)."""

    exit_code = 1

    def __init__(self, backend: str, reason: str) -> None:
        super().__init__(f"{backend} backend unavailable: {reason}")
        self.backend = backend
        self.reason = reason
