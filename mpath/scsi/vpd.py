"""Vital product data pages: supported pages, serial number, designators, block limits.

Every VPD page starts with the same 4-byte header (device type, page code, 2-byte page
length). :func:`vpd_page_length` reads it so a transport can re-issue the INQUIRY with
a large enough allocation length; every parser here checks that the page is the one
asked for and complete, raising :class:`~mpath.scsi.errors.ScsiTruncatedError` (with
the length needed) rather than reading a cut-off list as if it were whole. An identity
read from half a designator list could pick the wrong designator.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum
from typing import Final

from mpath.scsi.errors import ScsiDataError, ScsiTruncatedError


class VpdPage(IntEnum):
    """VPD page codes mpath reads."""

    SUPPORTED_PAGES = 0x00
    UNIT_SERIAL_NUMBER = 0x80
    DEVICE_IDENTIFICATION = 0x83
    EXTENDED_INQUIRY = 0x86
    BLOCK_LIMITS = 0xB0
    BLOCK_DEVICE_CHARACTERISTICS = 0xB1
    LOGICAL_BLOCK_PROVISIONING = 0xB2


class CodeSet(IntEnum):
    """How a designator's bytes are encoded (byte 0 bits 3..0)."""

    BINARY = 1
    ASCII = 2
    UTF8 = 3


class Association(IntEnum):
    """What a designator names (byte 1 bits 5..4)."""

    LOGICAL_UNIT = 0
    TARGET_PORT = 1
    TARGET_DEVICE = 2


class DesignatorType(IntEnum):
    """Kind of designator (byte 1 bits 3..0), SPC-4 table 459."""

    VENDOR_SPECIFIC = 0x0
    T10_VENDOR_ID = 0x1
    EUI64 = 0x2
    NAA = 0x3
    RELATIVE_TARGET_PORT = 0x4
    TARGET_PORT_GROUP = 0x5
    LOGICAL_UNIT_GROUP = 0x6
    MD5_LOGICAL_UNIT = 0x7
    SCSI_NAME_STRING = 0x8
    PROTOCOL_SPECIFIC_PORT = 0x9
    UUID = 0xA


def _what(page: int) -> str:
    return f"VPD page {page:#04x}"


def vpd_page_length(data: bytes | bytearray | memoryview) -> int:
    """Total bytes the page occupies (4-byte header + PAGE LENGTH), from its header.

    A transport that received fewer bytes re-issues the INQUIRY with this allocation
    length (multipath-tools does the same).
    """
    if len(data) < 4:
        raise ScsiDataError("VPD page", f"{len(data)} bytes, too short for the header")
    return 4 + int.from_bytes(bytes(data[2:4]), "big")


def vpd_payload(data: bytes | bytearray | memoryview, page: int) -> bytes:
    """The page's bytes after the header, once the header is checked.

    Raises :class:`ScsiDataError` when the buffer holds another page (some targets
    answer an unsupported page with standard INQUIRY data) and
    :class:`ScsiTruncatedError` when it ends before the announced page length.
    """
    buf = bytes(data)
    needed = vpd_page_length(buf)
    if buf[1] != page:
        raise ScsiDataError(_what(page), f"the target returned page {buf[1]:#04x} instead")
    if len(buf) < needed:
        raise ScsiTruncatedError(_what(page), needed, len(buf))
    return buf[4:needed]


def parse_supported_pages(data: bytes | bytearray | memoryview) -> tuple[int, ...]:
    """VPD 0x00: the page codes the LU supports, in the order it lists them."""
    return tuple(vpd_payload(data, VpdPage.SUPPORTED_PAGES))


def parse_unit_serial(data: bytes | bytearray | memoryview) -> str:
    """VPD 0x80: the unit serial number, without its leading/trailing padding.

    Targets pad the field with spaces on either side (tgt right-aligns it) or NULs;
    multipath-tools strips the same.
    """
    payload = vpd_payload(data, VpdPage.UNIT_SERIAL_NUMBER)
    return payload.decode("ascii", errors="replace").strip(" \x00")


@dataclass(frozen=True, slots=True)
class Designator:
    """One designation descriptor of VPD 0x83 (SPC-4 7.8.6).

    The numeric fields are kept as ints (reserved values exist in the wild); compare
    them with :class:`CodeSet`, :class:`Association` and :class:`DesignatorType`.
    ``protocol_identifier`` is set only when PIV=1 for a port or device association,
    the only case in which SPC defines it.
    """

    code_set: int
    association: int
    designator_type: int
    value: bytes
    protocol_identifier: int | None = None

    @property
    def naa_type(self) -> int | None:
        """The NAA field (first nibble) of an NAA designator: 2, 3, 5 or 6."""
        if self.designator_type != DesignatorType.NAA or not self.value:
            return None
        return self.value[0] >> 4

    @property
    def text(self) -> str | None:
        """The value as text for ASCII/UTF-8 designators, cut at the first NUL."""
        if self.code_set not in (CodeSet.ASCII, CodeSet.UTF8):
            return None
        raw = self.value.split(b"\x00", 1)[0]
        codec = "utf-8" if self.code_set == CodeSet.UTF8 else "ascii"
        return raw.decode(codec, errors="replace")

    @property
    def relative_port(self) -> int | None:
        """The relative target port number of a type-4 designator."""
        if self.designator_type != DesignatorType.RELATIVE_TARGET_PORT or len(self.value) < 4:
            return None
        return int.from_bytes(self.value[2:4], "big")

    @property
    def target_port_group(self) -> int | None:
        """The ALUA target port group of a type-5 designator."""
        if self.designator_type != DesignatorType.TARGET_PORT_GROUP or len(self.value) < 4:
            return None
        return int.from_bytes(self.value[2:4], "big")

    def __str__(self) -> str:
        kind = _enum_name(DesignatorType, self.designator_type)
        assoc = _enum_name(Association, self.association)
        shown = self.text if self.text is not None else self.value.hex()
        return f"{kind}/{assoc}: {shown}"


def _enum_name(enum: type[IntEnum], value: int) -> str:
    try:
        return enum(value).name.lower()
    except ValueError:
        return f"{value:#x}"


def parse_designators(data: bytes | bytearray | memoryview) -> tuple[Designator, ...]:
    """VPD 0x83: every designation descriptor, in the order the LU lists them.

    A descriptor that runs past the end of the page makes the whole page unusable
    (:class:`ScsiDataError`): identity must not come from a misparsed list.
    """
    what = _what(VpdPage.DEVICE_IDENTIFICATION)
    payload = vpd_payload(data, VpdPage.DEVICE_IDENTIFICATION)
    found: list[Designator] = []
    offset = 0
    while offset < len(payload):
        if offset + 4 > len(payload):
            raise ScsiDataError(what, f"descriptor header at offset {offset + 4} is cut off")
        length = payload[offset + 3]
        end = offset + 4 + length
        if end > len(payload):
            raise ScsiDataError(
                what, f"descriptor at offset {offset + 4} runs past the page ({length} bytes)"
            )
        b0, b1 = payload[offset], payload[offset + 1]
        association = (b1 >> 4) & 0x03
        piv = bool(b1 & 0x80)
        protocol = b0 >> 4 if piv and association in (1, 2) else None
        found.append(
            Designator(
                code_set=b0 & 0x0F,
                association=association,
                designator_type=b1 & 0x0F,
                value=payload[offset + 4 : end],
                protocol_identifier=protocol,
            )
        )
        offset = end
    return tuple(found)


@dataclass(frozen=True, slots=True)
class BlockLimits:
    """VPD 0xB0 (SBC-4 6.6.4), in logical blocks. None: the target reports no value.

    The filter layer splits requests at ``max_transfer_length`` and prefers multiples
    of ``optimal_transfer_length``. A field of 0 means "no limit reported" in SBC, so
    it is None here, as is any field beyond a short (pre-SBC-3, 16-byte) page.
    """

    max_compare_and_write_length: int | None
    optimal_transfer_length_granularity: int | None
    max_transfer_length: int | None
    optimal_transfer_length: int | None
    max_prefetch_length: int | None
    max_unmap_lba_count: int | None
    max_unmap_block_descriptor_count: int | None
    optimal_unmap_granularity: int | None
    unmap_granularity_alignment: int | None
    max_write_same_length: int | None
    write_same_non_zero: bool = False


# From byte 4 of the page: WSNZ, MAX COMPARE AND WRITE, OPT XFER GRANULARITY (2),
# MAX XFER (4), OPT XFER (4), MAX PREFETCH (4), MAX UNMAP LBA (4), MAX UNMAP DESC (4),
# OPT UNMAP GRAN (4), UGAVALID + UNMAP GRAN ALIGNMENT (4), MAX WRITE SAME (8).
_BLOCK_LIMITS: Final = struct.Struct(">BBHIIIIIIIQ")
_BLOCK_LIMITS_SHORT_PAYLOAD: Final = 12  # SBC-2 page: up to OPTIMAL TRANSFER LENGTH
_UGAVALID: Final = 0x80000000


def _reported(value: int) -> int | None:
    return value or None


def parse_block_limits(data: bytes | bytearray | memoryview) -> BlockLimits:
    """VPD 0xB0: transfer and unmap limits. Accepts the short SBC-2 page too."""
    payload = vpd_payload(data, VpdPage.BLOCK_LIMITS)
    if len(payload) < _BLOCK_LIMITS_SHORT_PAYLOAD:
        raise ScsiDataError(_what(VpdPage.BLOCK_LIMITS), f"page length {len(payload)} < 12")
    full = payload.ljust(_BLOCK_LIMITS.size, b"\x00")[: _BLOCK_LIMITS.size]
    (
        wsnz,
        max_caw,
        opt_gran,
        max_xfer,
        opt_xfer,
        max_prefetch,
        max_unmap_lba,
        max_unmap_desc,
        opt_unmap_gran,
        ugavalid_alignment,
        max_write_same,
    ) = _BLOCK_LIMITS.unpack(full)
    alignment = ugavalid_alignment & ~_UGAVALID if ugavalid_alignment & _UGAVALID else None
    return BlockLimits(
        max_compare_and_write_length=_reported(max_caw),
        optimal_transfer_length_granularity=_reported(opt_gran),
        max_transfer_length=_reported(max_xfer),
        optimal_transfer_length=_reported(opt_xfer),
        max_prefetch_length=_reported(max_prefetch),
        max_unmap_lba_count=_reported(max_unmap_lba),
        max_unmap_block_descriptor_count=_reported(max_unmap_desc),
        optimal_unmap_granularity=_reported(opt_unmap_gran),
        unmap_granularity_alignment=alignment,
        max_write_same_length=_reported(max_write_same),
        write_same_non_zero=bool(wsnz & 0x01),
    )
