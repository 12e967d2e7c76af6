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


class DeviceError(MpathError):
    """A multipath device could not do what was asked (open, read, write, flush)."""


class NoPathError(DeviceError):
    """Every path stayed failed for longer than ``no_path_retry`` allowed."""

    def __init__(self, waited_s: float, no_path_retry: float, last_reason: str) -> None:
        super().__init__(
            f"no usable path: all paths failed and none came back within "
            f"no_path_retry={no_path_retry:g} s (waited {waited_s:.2f} s; last failure: "
            f"{last_reason})"
        )
        self.waited_s = waited_s
        self.no_path_retry = no_path_retry
        self.last_reason = last_reason


class FenceTimeoutError(DeviceError):
    """A write's path failed while the write was in flight, and could not be fenced.

    The target may still execute that write (it may be waiting in the network), so
    reissuing it elsewhere could let the stale copy overwrite newer data later; it is
    neither acknowledged nor reissued. ``url`` names the path, ``reason`` why no fence
    succeeded within ``fence_timeout`` seconds.
    """

    def __init__(self, operation: str, url: str, fence_timeout: float, reason: str) -> None:
        super().__init__(
            f"{operation} not reissued: path {url} failed while it was in flight and could "
            f"not be fenced within fence_timeout={fence_timeout:g} s ({reason}); the "
            f"target may still execute it, so its outcome is unknown"
        )
        self.operation = operation
        self.url = url
        self.fence_timeout = fence_timeout
        self.reason = reason


class TargetIOError(DeviceError):
    """The target refused or failed the command itself (medium error, bad request).

    This is returned to the caller, not failed over: every path would give the same
    answer. ``status`` is the SCSI status byte and ``sense`` the raw sense data.
    """

    def __init__(self, operation: str, status: int, sense: bytes, detail: str) -> None:
        super().__init__(f"{operation} failed on the target: {detail}")
        self.operation = operation
        self.status = status
        self.sense = sense
        self.detail = detail


class IdentityMismatchError(DeviceError):
    """Paths given as one device lead to different LUNs; using them together would
    corrupt data, so the device is refused before anything is written."""

    exit_code = 2

    def __init__(self, first_url: str, first_id: str, other_url: str, other_id: str) -> None:
        super().__init__(
            f"paths lead to different LUNs: {first_url} is {first_id} but {other_url} is "
            f"{other_id}; refusing to use them as one device"
        )
        self.first_url = first_url
        self.first_id = first_id
        self.other_url = other_url
        self.other_id = other_id


class ControlError(MpathError):
    """A control-socket request failed: the daemon is not running, or it refused or
    could not do what was asked (``mpath ctl``)."""


class NotPermittedError(ControlError):
    """The caller may only ``show``: every other control command needs root."""
