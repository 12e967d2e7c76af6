"""REPORT LUNS data and the 8-byte LUN format (SAM-5 4.7).

A LUN travels as 8 bytes whose first two bits choose an addressing method. Targets
number their LUs 0..255 with *peripheral* addressing and beyond with *flat space*
addressing; both decode here to the plain LU number the target was configured with
(the number in an ``iscsi://host/target/LUN`` URL). Other methods (hierarchical,
extended, well-known LUs) decode the way Linux's ``scsilun_to_int`` does, so such a
LUN still gets a stable number.
"""

from __future__ import annotations

from typing import Final

from mpath.scsi.errors import CdbFieldError, ScsiDataError, ScsiTruncatedError

LUN_ENTRY_LEN: Final = 8
_PERIPHERAL: Final = 0b00
_FLAT: Final = 0b01
_MAX_PERIPHERAL: Final = 0xFF
_MAX_FLAT: Final = 0x3FFF


def decode_lun(entry: bytes | bytearray | memoryview) -> int:
    """The LU number in one 8-byte LUN field."""
    raw = bytes(entry)
    if len(raw) != LUN_ENTRY_LEN:
        raise ScsiDataError("LUN", f"{len(raw)} bytes, a LUN has 8")
    method = raw[0] >> 6
    single_level = not any(raw[2:])
    if single_level and method == _PERIPHERAL and raw[0] & 0x3F == 0:
        return raw[1]
    if single_level and method == _FLAT:
        return ((raw[0] & 0x3F) << 8) | raw[1]
    # Linux scsilun_to_int: each 2-byte level, first level in the low bits.
    number = 0
    for level in range(0, LUN_ENTRY_LEN, 2):
        number |= ((raw[level] << 8) | raw[level + 1]) << (level * 8)
    return number


def encode_lun(lun: int) -> bytes:
    """The 8-byte LUN field for LU number ``lun`` (peripheral below 256, else flat)."""
    if 0 <= lun <= _MAX_PERIPHERAL:
        return bytes([0, lun]) + bytes(6)
    if _MAX_PERIPHERAL < lun <= _MAX_FLAT:
        return bytes([(_FLAT << 6) | (lun >> 8), lun & 0xFF]) + bytes(6)
    raise CdbFieldError("LUN", f"{lun} is outside 0..{_MAX_FLAT} (single-level addressing)")


def parse_report_luns(data: bytes | bytearray | memoryview) -> tuple[int, ...]:
    """REPORT LUNS parameter data: the LU numbers of the target, in its order.

    Raises :class:`ScsiTruncatedError` when the list is longer than the buffer (the
    target had more LUNs than the allocation length allowed).
    """
    what = "REPORT LUNS data"
    buf = bytes(data)
    if len(buf) < 8:
        raise ScsiDataError(what, f"{len(buf)} bytes, too short for the header")
    list_length = int.from_bytes(buf[0:4], "big")
    if list_length % LUN_ENTRY_LEN:
        raise ScsiDataError(what, f"LUN list length {list_length} is not a multiple of 8")
    needed = 8 + list_length
    if len(buf) < needed:
        raise ScsiTruncatedError(what, needed, len(buf))
    return tuple(
        decode_lun(buf[offset : offset + LUN_ENTRY_LEN])
        for offset in range(8, needed, LUN_ENTRY_LEN)
    )
