"""Thin provisioning: what a LU can deallocate and report, and its GET LBA STATUS answers.

Why: zeroing, trimming and finding holes cost a command each instead of the range's
bytes when the LU supports them (an NBD client's WRITE_ZEROES, TRIM and block status;
``nbdcopy`` skips what is unallocated). What the LU supports is read from three places
(SBC-4): READ CAPACITY (16)'s LBPME and LBPRZ bits, VPD page 0xB0 (the largest UNMAP
and WRITE SAME) and VPD page 0xB2 (which of UNMAP / WRITE SAME with UNMAP it honours).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum
from typing import Final

from mpath.scsi.errors import ScsiDataError
from mpath.scsi.vpd import vpd_payload

LOGICAL_BLOCK_PROVISIONING_PAGE: Final = 0xB2

# GET LBA STATUS parameter data: length (4), reserved (4), then 16-byte descriptors of
# LBA (8), number of blocks (4), provisioning status (1, low 4 bits), reserved (3).
_LBA_STATUS_HEADER: Final = 8
_LBA_STATUS_DESCRIPTOR: Final = struct.Struct(">QIB3x")


class LbaState(IntEnum):
    """Provisioning status of a range (SBC-4 table "LBA status descriptor")."""

    MAPPED = 0
    DEALLOCATED = 1
    ANCHORED = 2


@dataclass(frozen=True, slots=True)
class LogicalBlockProvisioning:
    """VPD 0xB2: which deallocation commands the LU honours."""

    unmap: bool  # LBPU: UNMAP
    write_same16_unmap: bool  # LBPWS: WRITE SAME (16) with the UNMAP bit
    write_same10_unmap: bool  # LBPWS10
    read_zeroes: bool  # LBPRZ (3 bits, nonzero): deallocated blocks read as zeroes
    anchor: bool  # ANC_SUP
    provisioning_type: int  # 0 full, 1 resource (thick), 2 thin


def parse_logical_block_provisioning(
    data: bytes | bytearray | memoryview,
) -> LogicalBlockProvisioning:
    """VPD 0xB2 (SBC-4 6.6.6)."""
    payload = vpd_payload(data, LOGICAL_BLOCK_PROVISIONING_PAGE)
    if len(payload) < 4:
        raise ScsiDataError("VPD page 0xb2", f"page length {len(payload)} < 4")
    flags, kind = payload[1], payload[2]
    return LogicalBlockProvisioning(
        unmap=bool(flags & 0x80),
        write_same16_unmap=bool(flags & 0x40),
        write_same10_unmap=bool(flags & 0x20),
        read_zeroes=bool(flags & 0x1C),
        anchor=bool(flags & 0x02),
        provisioning_type=kind & 0x07,
    )


@dataclass(frozen=True, slots=True)
class Provisioning:
    """What the device layer may use to zero, deallocate and map a LU (in blocks).

    * ``write_same``: WRITE SAME (16) of a zero block works (tried at open, not assumed).
    * ``unmap``: UNMAP deallocates (LBPME and LBPU).
    * ``write_same_unmap``: WRITE SAME (16) with UNMAP deallocates and the blocks then
      read as zeroes (LBPME, LBPWS, LBPRZ): a fast zero.
    * ``lba_status``: GET LBA STATUS may be asked (LBPME; a refusal is remembered).
    * ``holes_read_zeroes``: deallocated blocks read as zeroes (LBPRZ).
    * ``max_unmap_blocks`` / ``max_unmap_descriptors`` / ``max_write_same_blocks``:
      VPD 0xB0's limits, None when none was reported.
    """

    write_same: bool = False
    unmap: bool = False
    write_same_unmap: bool = False
    lba_status: bool = False
    holes_read_zeroes: bool = False
    max_unmap_blocks: int | None = None
    max_unmap_descriptors: int | None = None
    max_write_same_blocks: int | None = None

    def describe(self) -> dict[str, object]:
        return {
            "write_same": self.write_same,
            "unmap": self.unmap,
            "write_same_unmap": self.write_same_unmap,
            "lba_status": self.lba_status,
            "holes_read_zeroes": self.holes_read_zeroes,
            "max_unmap_blocks": self.max_unmap_blocks,
            "max_write_same_blocks": self.max_write_same_blocks,
        }


@dataclass(frozen=True, slots=True)
class LbaStatus:
    """One GET LBA STATUS descriptor: ``blocks`` blocks from ``lba`` are in ``state``."""

    lba: int
    blocks: int
    state: LbaState


def parse_lba_status(data: bytes | bytearray | memoryview) -> list[LbaStatus]:
    """GET LBA STATUS parameter data (SBC-4 5.7.2) -> its descriptors, in order."""
    view = memoryview(data).cast("B")
    if len(view) < _LBA_STATUS_HEADER:
        raise ScsiDataError("GET LBA STATUS", f"{len(view)} bytes < 8")
    (length,) = struct.unpack_from(">I", view)
    end = min(len(view), 4 + length)
    found = []
    for at in range(_LBA_STATUS_HEADER, end - _LBA_STATUS_DESCRIPTOR.size + 1, 16):
        lba, blocks, state = _LBA_STATUS_DESCRIPTOR.unpack_from(view, at)
        code = state & 0x0F
        try:
            kind = LbaState(code)
        except ValueError:
            kind = LbaState.MAPPED  # unknown states are treated as holding data
        found.append(LbaStatus(lba, blocks, kind))
    return found
