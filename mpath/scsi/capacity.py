"""READ CAPACITY parameter data: how big the LU is and how its blocks are laid out.

Every path to a LU must report the same capacity and block size; the path model checks
that, and the filter layer converts byte offsets to LBAs with ``block_size``.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Final

from mpath.scsi.errors import ScsiDataError

READ_CAPACITY_10_OVERFLOW: Final = 0xFFFFFFFF
"""RETURNED LOGICAL BLOCK ADDRESS of READ CAPACITY (10) when the LU is too large for
it: the 16-byte command must be used."""

# LBA (8), block length (4), P_TYPE/PROT_EN, P_I_EXPONENT/LBPPBE, LBPME/LBPRZ/aligned LBA (2)
_RC16: Final = struct.Struct(">QIBBH")
_RC16_MIN_LEN: Final = 12
_RC10: Final = struct.Struct(">II")


@dataclass(frozen=True, slots=True)
class Capacity:
    """The LU's size and block geometry (SBC-4 5.20.2).

    ``last_lba`` is the highest addressable block; ``block_size`` the logical block
    length in bytes. ``logical_per_physical_exponent`` says 2**n logical blocks make a
    physical block (3 for 512-byte logical blocks on 4 KiB sectors). ``lbpme`` is set on
    thin-provisioned LUs (UNMAP may be used), ``lbprz`` when unmapped blocks read as
    zeros. ``protection_type`` is 1..3 when protection information is enabled.
    """

    last_lba: int
    block_size: int
    protection_type: int | None = None
    p_i_exponent: int = 0
    logical_per_physical_exponent: int = 0
    lbpme: bool = False
    lbprz: bool = False
    lowest_aligned_lba: int = 0

    @property
    def blocks(self) -> int:
        return self.last_lba + 1

    @property
    def size_bytes(self) -> int:
        return self.blocks * self.block_size

    @property
    def physical_block_size(self) -> int:
        return self.block_size << self.logical_per_physical_exponent


def _check_block_size(what: str, block_size: int) -> None:
    if block_size == 0:
        raise ScsiDataError(what, "block length is 0")


def parse_read_capacity16(data: bytes | bytearray | memoryview) -> Capacity:
    """READ CAPACITY (16) data: 32 bytes from SBC-3 on; the first 12 are the essentials.

    Fields past a short buffer (an allocation length below 32) read as 0.
    """
    what = "READ CAPACITY (16) data"
    buf = bytes(data)
    if len(buf) < _RC16_MIN_LEN:
        raise ScsiDataError(what, f"{len(buf)} bytes, need at least {_RC16_MIN_LEN}")
    last_lba, block_size, prot, exponents, aligned = _RC16.unpack(
        buf[: _RC16.size].ljust(_RC16.size, b"\x00")
    )
    _check_block_size(what, block_size)
    return Capacity(
        last_lba=last_lba,
        block_size=block_size,
        protection_type=((prot >> 1) & 0x07) + 1 if prot & 0x01 else None,
        p_i_exponent=exponents >> 4,
        logical_per_physical_exponent=exponents & 0x0F,
        lbpme=bool(aligned & 0x8000),
        lbprz=bool(aligned & 0x4000),
        lowest_aligned_lba=aligned & 0x3FFF,
    )


def parse_read_capacity10(data: bytes | bytearray | memoryview) -> Capacity:
    """READ CAPACITY (10) data (8 bytes).

    A ``last_lba`` of :data:`READ_CAPACITY_10_OVERFLOW` means the LU is larger than
    the 10-byte form can say; issue READ CAPACITY (16) instead.
    """
    what = "READ CAPACITY (10) data"
    buf = bytes(data)
    if len(buf) < _RC10.size:
        raise ScsiDataError(what, f"{len(buf)} bytes, need {_RC10.size}")
    last_lba, block_size = _RC10.unpack_from(buf)
    _check_block_size(what, block_size)
    return Capacity(last_lba=last_lba, block_size=block_size)
