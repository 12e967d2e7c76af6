"""What a failed command means as an errno: the one mapping from SCSI sense to errno.

Anything that hands mpath's errors to a block-device user (the NBD export today) says
*why* a request failed as an errno, the way the kernel's SCSI disk driver does
(``scsi_io_completion`` -> ``blk_status_to_errno``): a medium error is ``ENODATA``, a
write-protected LU ``EROFS``, a thin pool out of space ``ENOSPC``, a protection
information check ``EILSEQ``, a broken target ``EREMOTEIO``. The sense data is read
with :func:`mpath.scsi.sense.decode_sense`, the one decoder, and nowhere else.

:data:`ERRNO_SENSE` is the same table read the other way (an errno -> the sense a
target would have reported), for a transport whose own errors are errnos.
"""

from __future__ import annotations

import errno
from typing import Final

from mpath.errors import TargetIOError, UsageError
from mpath.scsi.sense import SenseKey, decode_sense
from mpath.scsi.status import ScsiStatus

#: errno -> (sense key, ASC, ASCQ) a target reports for it, for a read and a write.
ERRNO_SENSE: Final[dict[int, tuple[tuple[int, int, int], tuple[int, int, int]]]] = {
    errno.ENODATA: (
        (SenseKey.MEDIUM_ERROR, 0x11, 0x00),  # unrecovered read error
        (SenseKey.MEDIUM_ERROR, 0x0C, 0x00),  # write error
    ),
    errno.EILSEQ: (
        (SenseKey.ABORTED_COMMAND, 0x10, 0x01),  # logical block guard check failed
        (SenseKey.ABORTED_COMMAND, 0x10, 0x01),
    ),
    errno.EREMOTEIO: (
        (SenseKey.HARDWARE_ERROR, 0x44, 0x00),  # internal target failure
        (SenseKey.HARDWARE_ERROR, 0x44, 0x00),
    ),
    errno.ENOSPC: (
        (SenseKey.DATA_PROTECT, 0x27, 0x07),  # space allocation failed write protect
        (SenseKey.DATA_PROTECT, 0x27, 0x07),
    ),
    errno.EROFS: (
        (SenseKey.DATA_PROTECT, 0x27, 0x00),  # write protected
        (SenseKey.DATA_PROTECT, 0x27, 0x00),
    ),
    errno.EINVAL: (
        (SenseKey.ILLEGAL_REQUEST, 0x24, 0x00),  # invalid field in CDB
        (SenseKey.ILLEGAL_REQUEST, 0x24, 0x00),
    ),
}


def errno_for_result(status: int, sense: bytes | bytearray | memoryview) -> int:
    """The errno a command that ended with ``status`` and ``sense`` failed with."""
    if status == ScsiStatus.RESERVATION_CONFLICT:
        return errno.EBADE  # what the kernel reports (BLK_STS_RESV_CONFLICT)
    decoded = decode_sense(sense) if status == ScsiStatus.CHECK_CONDITION else None
    if decoded is None:
        return errno.EIO
    key = decoded.key
    if key == SenseKey.MEDIUM_ERROR:
        return errno.ENODATA
    if key == SenseKey.DATA_PROTECT:
        return errno.ENOSPC if (decoded.asc, decoded.ascq) == (0x27, 0x07) else errno.EROFS
    if key == SenseKey.ABORTED_COMMAND and decoded.asc == 0x10:
        return errno.EILSEQ
    if key == SenseKey.HARDWARE_ERROR:
        return errno.EREMOTEIO
    if key == SenseKey.ILLEGAL_REQUEST:
        return errno.EINVAL
    return errno.EIO


def errno_for_error(exc: BaseException) -> int:
    """The errno an exception from a device request means to a block-device user.

    Bad requests (:class:`~mpath.errors.UsageError`) are ``EINVAL``; what the target
    refused (:class:`~mpath.errors.TargetIOError`) is read from its sense data; running
    out of memory is ``ENOMEM``; everything else (no path left, a path error that
    could not be reissued) is ``EIO``.
    """
    if isinstance(exc, UsageError):
        return errno.EINVAL
    if isinstance(exc, TargetIOError):
        return errno_for_result(exc.status, exc.sense)
    if isinstance(exc, MemoryError):
        return errno.ENOMEM
    return errno.EIO
