"""Errors of the pure SCSI layer.

Every parser in :mod:`mpath.scsi` is fed bytes that came from a target (or from a
buggy one). A short or malformed buffer is an expected failure, so it is reported
as a :class:`ScsiDataError` naming *what* was being parsed and *why* it was
rejected, never as ``IndexError`` or ``struct.error`` leaking out of the parser.
"""

from __future__ import annotations

from mpath.errors import MpathError, UsageError


class ScsiError(MpathError):
    """Base of the errors raised by :mod:`mpath.scsi`."""


class ScsiDataError(ScsiError):
    """A data-in buffer (INQUIRY, VPD page, READ CAPACITY, REPORT LUNS) is unusable.

    ``what`` names the structure ("VPD page 0x83", "standard INQUIRY"); ``reason``
    says what is wrong with it.
    """

    def __init__(self, what: str, reason: str) -> None:
        super().__init__(f"{what}: {reason}")
        self.what = what
        self.reason = reason


class ScsiTruncatedError(ScsiDataError):
    """The buffer ends before the length its own header announces.

    The allocation length of the command was too small: re-issue it with an
    allocation length of at least ``needed`` bytes (``got`` were received).
    """

    def __init__(self, what: str, needed: int, got: int) -> None:
        super().__init__(
            what, f"truncated: {got} bytes of {needed} (re-issue with alloc_len >= {needed})"
        )
        self.needed = needed
        self.got = got


class NoIdentityError(ScsiError):
    """The logical unit reports no designator usable as its identity.

    Neither VPD page 0x83 nor page 0x80 gave a WWID. Such a LUN must not be
    grouped with any other path: without an identity we cannot prove two paths
    lead to the same LUN.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(f"no usable LUN identity: {reason}")
        self.reason = reason


class CdbFieldError(ScsiError, UsageError):
    """A CDB builder was given a value its field cannot hold (negative, too large)."""

    exit_code = 2

    def __init__(self, command: str, reason: str) -> None:
        super().__init__(f"{command}: {reason}")
        self.command = command
        self.reason = reason


class PyscsiError(ScsiError):
    """pyscsi raised one of its (per-class, metaclass-made) exceptions.

    Raised only by :mod:`mpath.scsi.pyscsi_adapter`, which is the one place
    pyscsi is used. ``kind`` is the pyscsi exception's class name
    (``OpcodeException``, ``MissingBlocksizeException``, ...).
    """

    def __init__(self, operation: str, kind: str, detail: str = "") -> None:
        suffix = f": {detail}" if detail else ""
        super().__init__(f"pyscsi {operation} failed ({kind}){suffix}")
        self.operation = operation
        self.kind = kind
        self.detail = detail


class PyscsiCheckConditionError(PyscsiError):
    """pyscsi reported CHECK CONDITION; ``sense`` holds the raw sense bytes.

    Decode them with :func:`mpath.scsi.sense.decode_sense` and classify them with
    :func:`mpath.scsi.classify.classify` like any other sense data.
    """

    def __init__(self, operation: str, sense: bytes) -> None:
        super().__init__(operation, "CheckCondition", sense.hex())
        self.sense = sense
