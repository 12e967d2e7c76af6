"""The SCSI status byte (SAM-5), as the target returns it with each command.

This is the SCSI layer's own copy of the values, so that :mod:`mpath.scsi` depends on
nothing above it. The values are identical to :class:`mpath.transports.base.ScsiStatus`;
both are ``IntEnum`` so either compares equal to the plain byte.
"""

from __future__ import annotations

from enum import IntEnum


class ScsiStatus(IntEnum):
    """SCSI status codes. Obsolete codes are kept so that they can be named in logs."""

    GOOD = 0x00
    CHECK_CONDITION = 0x02
    CONDITION_MET = 0x04
    BUSY = 0x08
    INTERMEDIATE = 0x10  # obsolete (linked commands)
    INTERMEDIATE_CONDITION_MET = 0x14  # obsolete (linked commands)
    RESERVATION_CONFLICT = 0x18
    COMMAND_TERMINATED = 0x22  # obsolete; carried sense data like CHECK CONDITION
    TASK_SET_FULL = 0x28
    ACA_ACTIVE = 0x30
    TASK_ABORTED = 0x40


def status_name(status: int) -> str:
    """``"CHECK_CONDITION"`` for 0x02; ``"0x5a"`` for a value SAM does not define."""
    try:
        return ScsiStatus(status).name
    except ValueError:
        return f"{status:#04x}"
