"""The one sense -> errno mapping, and the NBD export narrowing it to NBD's codes."""

from __future__ import annotations

import errno

import pytest

from mpath.errors import NoPathError, TargetIOError, UsageError
from mpath.nbd.connection import nbd_errno
from mpath.scsi.errnos import ERRNO_SENSE, errno_for_error, errno_for_result
from mpath.scsi.sense import encode_sense
from mpath.scsi.status import ScsiStatus


def _target_error(key: int, asc: int, ascq: int) -> TargetIOError:
    sense = encode_sense(key, asc, ascq)
    return TargetIOError("write", ScsiStatus.CHECK_CONDITION, sense, "test")


@pytest.mark.parametrize("code", sorted(ERRNO_SENSE))
def test_the_table_read_both_ways_agrees(code: int) -> None:
    for key, asc, ascq in ERRNO_SENSE[code]:
        assert errno_for_result(ScsiStatus.CHECK_CONDITION, encode_sense(key, asc, ascq)) == code


def test_errors_the_sense_does_not_explain_are_eio() -> None:
    assert errno_for_result(ScsiStatus.CHECK_CONDITION, b"") == errno.EIO
    assert errno_for_result(ScsiStatus.BUSY, b"") == errno.EIO
    assert errno_for_result(ScsiStatus.RESERVATION_CONFLICT, b"") == errno.EBADE
    assert errno_for_error(UsageError("bad")) == errno.EINVAL
    assert errno_for_error(NoPathError(2.0, 2.0, "cut")) == errno.EIO
    assert errno_for_error(MemoryError()) == errno.ENOMEM


@pytest.mark.parametrize(
    ("sense", "expected"),
    [
        ((0x07, 0x27, 0x00), errno.EPERM),  # write protected: EROFS, narrowed
        ((0x07, 0x27, 0x07), errno.ENOSPC),  # thin pool out of space
        ((0x03, 0x11, 0x00), errno.EIO),  # medium error: ENODATA is not an NBD code
        ((0x05, 0x24, 0x00), errno.EINVAL),
    ],
)
def test_nbd_answers_only_with_codes_the_protocol_defines(
    sense: tuple[int, int, int], expected: int
) -> None:
    assert nbd_errno(_target_error(*sense)) == expected
