"""CDB builders: the bytes of each SCSI command mpath sends.

Every builder returns ``bytes`` ready for a transport's ``execute(cdb, ...)``. The
READ/WRITE builders run once per I/O, so they are one call to a precompiled
:class:`struct.Struct` each: no pyscsi objects, no dicts, no validation beyond what
``struct`` does anyway (an out-of-range value becomes a
:class:`~mpath.scsi.errors.CdbFieldError`, caught only when it happens). The encodings
are checked against pyscsi's command layouts in the tests
(:mod:`mpath.scsi.pyscsi_adapter`).

:func:`decode_rw` reads a READ/WRITE CDB back (lba, blocks, FUA); fake transports and
the tests use it to interpret the commands they receive.

Layouts follow SBC-4 / SPC-4; the control byte is always 0 and the group number 0.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum

from mpath.scsi.errors import CdbFieldError


class Opcode(IntEnum):
    """Operation codes of the commands mpath builds."""

    TEST_UNIT_READY = 0x00
    INQUIRY = 0x12
    READ_CAPACITY_10 = 0x25
    READ_10 = 0x28
    WRITE_10 = 0x2A
    SYNCHRONIZE_CACHE_10 = 0x35
    UNMAP = 0x42
    READ_16 = 0x88
    WRITE_16 = 0x8A
    SYNCHRONIZE_CACHE_16 = 0x91
    WRITE_SAME_16 = 0x93
    PERSISTENT_RESERVE_IN = 0x5E
    PERSISTENT_RESERVE_OUT = 0x5F
    SERVICE_ACTION_IN_16 = 0x9E
    REPORT_LUNS = 0xA0
    MAINTENANCE_IN = 0xA3


SA_READ_CAPACITY_16 = 0x10  # SERVICE ACTION IN (16) service action
SA_GET_LBA_STATUS = 0x12  # SERVICE ACTION IN (16) service action
SA_REPORT_TARGET_PORT_GROUPS = 0x0A  # MAINTENANCE IN service action

_FUA = 0x08  # byte 1 of READ/WRITE (10)/(16): force unit access
_IMMED = 0x02  # byte 1 of SYNCHRONIZE CACHE: return before the cache is flushed
_EVPD = 0x01
_WS_UNMAP = 0x08  # byte 1 of WRITE SAME (16): deallocate the blocks if the LU can
_WS_NDOB = 0x01  # byte 1 of WRITE SAME (16): no data-out buffer, the block is zeroes
_RTPG_EXTENDED_HEADER = 0x20  # RTPG byte 1 bits 7..5: parameter data format 001b

# PERSISTENT RESERVE IN: opcode, service action, reserved (5), allocation length (2),
# control
_PR_IN = struct.Struct(">BB5xHB")
# PERSISTENT RESERVE OUT: opcode, service action, scope/type, reserved (2), parameter
# list length (4), control
_PR_OUT = struct.Struct(">BBB2xIB")
# PERSISTENT RESERVE OUT basic parameter list: reservation key, service action
# reservation key, obsolete (4), flags (SPEC_I_PT, ALL_TG_PT, APTPL), reserved,
# obsolete (2)
_PR_OUT_PARAMETERS = struct.Struct(">QQ4xB3x")
#: Length of the basic PERSISTENT RESERVE OUT parameter list (SPC-4 6.16.3).
PR_OUT_PARAMETERS_LEN = _PR_OUT_PARAMETERS.size
# opcode, flags, LBA (8), transfer length (4), group, control
_RW16 = struct.Struct(">BBQIBB")
# opcode, flags, LBA (4), group, transfer length (2), control
_RW10 = struct.Struct(">BBIBHB")
# opcode, byte 1, page code, allocation length (2), control
_INQUIRY = struct.Struct(">BBBHB")
# opcode, service action, LBA (8), allocation length (4), byte 14, control
_SAI16 = struct.Struct(">BBQIBB")
# opcode, ANCHOR, reserved (4), group, parameter list length (2), control
_UNMAP = struct.Struct(">BB4xBHB")
# UNMAP parameter list header: data length (2), block descriptor data length (2), 4 reserved
_UNMAP_HEADER = struct.Struct(">HH4x")
# UNMAP block descriptor: LBA (8), number of blocks (4), reserved (4)
_UNMAP_DESCRIPTOR = struct.Struct(">QI4x")
# opcode, reserved, select report, reserved (3), allocation length (4), reserved, control
_REPORT_LUNS = struct.Struct(">BxB3xIxB")
# opcode, service action, reserved (4), allocation length (4), reserved, control
_MAINTENANCE_IN = struct.Struct(">BB4xIxB")

# Plain ints and a bound method for the per-I/O builders: enum attribute lookups cost
# as much as the packing itself.
_pack_rw16 = _RW16.pack
_READ_16 = int(Opcode.READ_16)
_WRITE_16 = int(Opcode.WRITE_16)

_TEST_UNIT_READY = bytes(6)
_READ_CAPACITY_10 = bytes([Opcode.READ_CAPACITY_10]) + bytes(9)

DEFAULT_INQUIRY_ALLOC_LEN = 255
"""INQUIRY allocation length when none is given: fits standard INQUIRY and typical VPD
pages, and stays below 256 for old targets that read only the low byte."""

READ_CAPACITY_16_LEN = 32
"""Bytes of READ CAPACITY (16) parameter data (SBC-4)."""

DEFAULT_REPORT_LUNS_ALLOC_LEN = 4096
"""REPORT LUNS allocation length when none is given: room for 511 LUNs."""

DEFAULT_RTPG_ALLOC_LEN = 4096
"""REPORT TARGET PORT GROUPS allocation length when none is given."""


def _out_of_range(command: str, **fields: int) -> CdbFieldError:
    values = ", ".join(f"{name}={value}" for name, value in fields.items())
    return CdbFieldError(command, f"value out of range for the CDB field ({values})")


def test_unit_ready() -> bytes:
    """TEST UNIT READY (6): asks whether the LU can take media-access commands now."""
    return _TEST_UNIT_READY


test_unit_ready.__test__ = False  # type: ignore[attr-defined]  # not a pytest test


def inquiry(page: int | None = None, alloc_len: int = DEFAULT_INQUIRY_ALLOC_LEN) -> bytes:
    """INQUIRY (6): standard data when ``page`` is None, else VPD page ``page`` (EVPD=1)."""
    evpd, page_code = (0, 0) if page is None else (_EVPD, page)
    try:
        return _INQUIRY.pack(Opcode.INQUIRY, evpd, page_code, alloc_len, 0)
    except struct.error:
        raise _out_of_range("INQUIRY", page=page_code, alloc_len=alloc_len) from None


def read_capacity16(alloc_len: int = READ_CAPACITY_16_LEN) -> bytes:
    """READ CAPACITY (16): last LBA, block size, provisioning and protection bits."""
    try:
        return _SAI16.pack(Opcode.SERVICE_ACTION_IN_16, SA_READ_CAPACITY_16, 0, alloc_len, 0, 0)
    except struct.error:
        raise _out_of_range("READ CAPACITY (16)", alloc_len=alloc_len) from None


def read_capacity10() -> bytes:
    """READ CAPACITY (10): for targets without the 16-byte form (last LBA < 2**32)."""
    return _READ_CAPACITY_10


def read16(lba: int, blocks: int, *, fua: bool = False) -> bytes:
    """READ (16) of ``blocks`` logical blocks from ``lba``; ``fua`` bypasses the cache."""
    try:
        return _pack_rw16(_READ_16, _FUA if fua else 0, lba, blocks, 0, 0)
    except struct.error:
        raise _out_of_range("READ (16)", lba=lba, blocks=blocks) from None


def write16(lba: int, blocks: int, *, fua: bool = False) -> bytes:
    """WRITE (16) of ``blocks`` logical blocks at ``lba``; ``fua`` writes through the cache."""
    try:
        return _pack_rw16(_WRITE_16, _FUA if fua else 0, lba, blocks, 0, 0)
    except struct.error:
        raise _out_of_range("WRITE (16)", lba=lba, blocks=blocks) from None


def read10(lba: int, blocks: int, *, fua: bool = False) -> bytes:
    """READ (10): 32-bit LBA, at most 65535 blocks (for block devices lacking READ (16))."""
    try:
        return _RW10.pack(Opcode.READ_10, _FUA if fua else 0, lba, 0, blocks, 0)
    except struct.error:
        raise _out_of_range("READ (10)", lba=lba, blocks=blocks) from None


def write10(lba: int, blocks: int, *, fua: bool = False) -> bytes:
    """WRITE (10): 32-bit LBA, at most 65535 blocks (for block devices lacking WRITE (16))."""
    try:
        return _RW10.pack(Opcode.WRITE_10, _FUA if fua else 0, lba, 0, blocks, 0)
    except struct.error:
        raise _out_of_range("WRITE (10)", lba=lba, blocks=blocks) from None


def synchronize_cache16(lba: int = 0, blocks: int = 0, *, immediate: bool = False) -> bytes:
    """SYNCHRONIZE CACHE (16): make cached writes durable; 0/0 means the whole LU.

    ``immediate`` lets the target answer before the flush completes; a flush that must
    be durable when it returns (``MultipathDevice.flush``) leaves it False.
    """
    try:
        return _RW16.pack(
            Opcode.SYNCHRONIZE_CACHE_16, _IMMED if immediate else 0, lba, blocks, 0, 0
        )
    except struct.error:
        raise _out_of_range("SYNCHRONIZE CACHE (16)", lba=lba, blocks=blocks) from None


def synchronize_cache10(lba: int = 0, blocks: int = 0, *, immediate: bool = False) -> bytes:
    """SYNCHRONIZE CACHE (10): the 10-byte form, for targets without the 16-byte one."""
    try:
        return _RW10.pack(
            Opcode.SYNCHRONIZE_CACHE_10, _IMMED if immediate else 0, lba, 0, blocks, 0
        )
    except struct.error:
        raise _out_of_range("SYNCHRONIZE CACHE (10)", lba=lba, blocks=blocks) from None


def write_same16(lba: int, blocks: int, *, unmap: bool = False, ndob: bool = False) -> bytes:
    """WRITE SAME (16): write one block's content over ``blocks`` blocks from ``lba``.

    Zeroing a range costs one command and one block of data instead of the range's
    bytes. ``unmap`` lets a thin-provisioned LU deallocate the blocks instead (only
    where they then read as zeroes: LBPRZ); ``ndob`` sends no data (zeroes implied),
    which fewer targets accept.
    """
    flags = (_WS_UNMAP if unmap else 0) | (_WS_NDOB if ndob else 0)
    try:
        return _RW16.pack(Opcode.WRITE_SAME_16, flags, lba, blocks, 0, 0)
    except struct.error:
        raise _out_of_range("WRITE SAME (16)", lba=lba, blocks=blocks) from None


def unmap(parameter_list_length: int) -> bytes:
    """UNMAP: deallocate the ranges of the parameter list that follows (see
    :func:`unmap_parameters`)."""
    try:
        return _UNMAP.pack(Opcode.UNMAP, 0, 0, parameter_list_length, 0)
    except struct.error:
        raise _out_of_range("UNMAP", parameter_list_length=parameter_list_length) from None


def unmap_parameters(ranges: list[tuple[int, int]]) -> bytes:
    """UNMAP's parameter list: one descriptor per (LBA, blocks) range."""
    try:
        descriptors = b"".join(_UNMAP_DESCRIPTOR.pack(lba, n) for lba, n in ranges)
        return _UNMAP_HEADER.pack(len(descriptors) + 6, len(descriptors)) + descriptors
    except struct.error:
        raise _out_of_range("UNMAP parameter list", ranges=len(ranges)) from None


def get_lba_status(lba: int, alloc_len: int) -> bytes:
    """GET LBA STATUS: which blocks from ``lba`` on are mapped, deallocated or anchored."""
    try:
        return _SAI16.pack(Opcode.SERVICE_ACTION_IN_16, SA_GET_LBA_STATUS, lba, alloc_len, 0, 0)
    except struct.error:
        raise _out_of_range("GET LBA STATUS", lba=lba, alloc_len=alloc_len) from None


def report_luns(alloc_len: int = DEFAULT_REPORT_LUNS_ALLOC_LEN, select_report: int = 0) -> bytes:
    """REPORT LUNS: the LU inventory of the target (SPC requires alloc_len >= 16)."""
    if alloc_len < 16:
        raise CdbFieldError("REPORT LUNS", f"alloc_len must be at least 16, got {alloc_len}")
    try:
        return _REPORT_LUNS.pack(Opcode.REPORT_LUNS, select_report, alloc_len, 0)
    except struct.error:
        raise _out_of_range(
            "REPORT LUNS", alloc_len=alloc_len, select_report=select_report
        ) from None


def report_target_port_groups(alloc_len: int = DEFAULT_RTPG_ALLOC_LEN) -> bytes:
    """REPORT TARGET PORT GROUPS: the ALUA state of each target port group.

    Asks for the extended header (parameter data format 001b), which adds the implicit
    transition time; targets that do not know it answer in the length-only format,
    which the header's format field reveals.
    """
    try:
        return _MAINTENANCE_IN.pack(
            Opcode.MAINTENANCE_IN,
            _RTPG_EXTENDED_HEADER | SA_REPORT_TARGET_PORT_GROUPS,
            alloc_len,
            0,
        )
    except struct.error:
        raise _out_of_range("REPORT TARGET PORT GROUPS", alloc_len=alloc_len) from None


def persistent_reserve_in(action: int, alloc_len: int) -> bytes:
    """PERSISTENT RESERVE IN: ``action`` 0 READ KEYS, 1 READ RESERVATION (SPC-4 6.15)."""
    try:
        return _PR_IN.pack(Opcode.PERSISTENT_RESERVE_IN, action & 0x1F, alloc_len, 0)
    except struct.error:
        raise _out_of_range("PERSISTENT RESERVE IN", alloc_len=alloc_len) from None


def persistent_reserve_out(action: int, pr_type: int = 0) -> bytes:
    """PERSISTENT RESERVE OUT with the basic parameter list (SPC-4 6.16), LU scope.

    ``action`` is the service action (REGISTER, RESERVE, PREEMPT, ...), ``pr_type`` the
    reservation type where the action takes one (0 otherwise). The parameter list
    comes from :func:`pr_out_parameters`.
    """
    if not 0 <= action <= 0x1F or not 0 <= pr_type <= 0x0F:
        raise _out_of_range("PERSISTENT RESERVE OUT", action=action, pr_type=pr_type)
    return _PR_OUT.pack(Opcode.PERSISTENT_RESERVE_OUT, action, pr_type, PR_OUT_PARAMETERS_LEN, 0)


def pr_out_parameters(key: int, service_action_key: int = 0) -> bytes:
    """The 24-byte basic parameter list: this nexus's key and the action's key.

    SPEC_I_PT, ALL_TG_PT and APTPL are left clear: each I_T nexus registers for itself,
    and nothing survives a target power loss (tgt refuses all three).
    """
    try:
        return _PR_OUT_PARAMETERS.pack(key, service_action_key, 0)
    except struct.error:
        raise _out_of_range(
            "PERSISTENT RESERVE OUT parameters", key=key, service_action_key=service_action_key
        ) from None


@dataclass(frozen=True, slots=True)
class RwCommand:
    """A READ or WRITE CDB read back: which command, where, how many blocks, FUA."""

    opcode: Opcode
    lba: int
    blocks: int
    fua: bool

    @property
    def is_write(self) -> bool:
        return self.opcode in (Opcode.WRITE_10, Opcode.WRITE_16)


def decode_rw(cdb: bytes | bytearray | memoryview) -> RwCommand | None:
    """Read a READ/WRITE (10)/(16) CDB back; None for any other command or a short CDB."""
    if len(cdb) < 1:
        return None
    opcode = cdb[0]
    if opcode in (Opcode.READ_16, Opcode.WRITE_16) and len(cdb) >= _RW16.size:
        _, flags, lba, blocks, _, _ = _RW16.unpack_from(cdb)
    elif opcode in (Opcode.READ_10, Opcode.WRITE_10) and len(cdb) >= _RW10.size:
        _, flags, lba, _, blocks, _ = _RW10.unpack_from(cdb)
    else:
        return None
    return RwCommand(Opcode(opcode), lba, blocks, bool(flags & _FUA))
