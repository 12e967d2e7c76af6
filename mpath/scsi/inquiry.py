"""Standard INQUIRY data: who the LU says it is, and what it supports.

mpath reads it on every path for three reasons: to see that a LU is really present at
this LUN (peripheral qualifier), to learn whether the target does ALUA (TPGS) and
command queueing (CmdQue), and to get vendor/product for the VPD 0x80 identity
fallback and for messages.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Final

from mpath.scsi.errors import ScsiDataError, ScsiTruncatedError

STANDARD_INQUIRY_MIN_LEN: Final = 36
"""SPC requires at least 36 bytes of standard INQUIRY data (up to the revision)."""

_WHAT = "standard INQUIRY"


class PeripheralQualifier(IntEnum):
    """Byte 0 bits 7..5: whether a LU is attached at this LUN."""

    CONNECTED = 0
    NOT_CONNECTED = 1  # the target could serve a LU here, none is attached now
    RESERVED = 2
    NOT_SUPPORTED = 3  # no LU can be addressed at this LUN


class DeviceType(IntEnum):
    """Byte 0 bits 4..0, the values mpath meets (the field itself can hold any 0..31)."""

    DIRECT_ACCESS = 0x00  # a disk: what mpath carries I/O to
    SEQUENTIAL_ACCESS = 0x01
    PROCESSOR = 0x03
    CD_DVD = 0x05
    MEDIUM_CHANGER = 0x08
    STORAGE_ARRAY_CONTROLLER = 0x0C  # e.g. tgt's LUN 0
    ENCLOSURE_SERVICES = 0x0D
    WELL_KNOWN_LU = 0x1E
    UNKNOWN = 0x1F


class Tpgs(IntEnum):
    """Target port group support (byte 5 bits 5..4): how ALUA states can change."""

    NONE = 0  # no ALUA: every port is active/optimized
    IMPLICIT = 1  # the target changes states itself
    EXPLICIT = 2  # the initiator changes them (SET TARGET PORT GROUPS)
    BOTH = 3


@dataclass(frozen=True, slots=True)
class StandardInquiry:
    """The fields of standard INQUIRY data mpath uses (SPC-4 6.6.2).

    ``vendor``/``product``/``revision`` are stripped of trailing spaces (their fields
    are space-padded ASCII of 8, 16 and 4 bytes).
    """

    peripheral_qualifier: int
    device_type: int
    removable: bool
    version: int
    normaca: bool
    hisup: bool
    response_data_format: int
    tpgs: Tpgs
    third_party_copy: bool
    protect: bool
    multiport: bool
    cmdque: bool
    vendor: str
    product: str
    revision: str

    @property
    def lu_present(self) -> bool:
        """A LU is attached at this LUN (qualifier 000b)."""
        return self.peripheral_qualifier == PeripheralQualifier.CONNECTED

    @property
    def is_disk(self) -> bool:
        return self.device_type == DeviceType.DIRECT_ACCESS

    @property
    def alua(self) -> bool:
        """The target reports ALUA states (REPORT TARGET PORT GROUPS is supported)."""
        return self.tpgs != Tpgs.NONE


def _ascii_field(raw: bytes) -> str:
    """A space-padded ASCII field, trailing padding (spaces, NULs) removed."""
    return raw.decode("ascii", errors="replace").rstrip(" \x00")


def parse_standard_inquiry(data: bytes | bytearray | memoryview) -> StandardInquiry:
    """Parse standard INQUIRY data; :class:`ScsiDataError` if it is shorter than 36 bytes."""
    buf = bytes(data)
    if len(buf) < 5:
        raise ScsiDataError(_WHAT, f"{len(buf)} bytes, too short for the header")
    announced = 5 + buf[4]
    if len(buf) < STANDARD_INQUIRY_MIN_LEN:
        if announced > len(buf):
            raise ScsiTruncatedError(_WHAT, max(announced, STANDARD_INQUIRY_MIN_LEN), len(buf))
        raise ScsiDataError(_WHAT, f"{len(buf)} bytes; SPC requires at least 36")
    return StandardInquiry(
        peripheral_qualifier=buf[0] >> 5,
        device_type=buf[0] & 0x1F,
        removable=bool(buf[1] & 0x80),
        version=buf[2],
        normaca=bool(buf[3] & 0x20),
        hisup=bool(buf[3] & 0x10),
        response_data_format=buf[3] & 0x0F,
        tpgs=Tpgs((buf[5] >> 4) & 0x03),
        third_party_copy=bool(buf[5] & 0x08),
        protect=bool(buf[5] & 0x01),
        multiport=bool(buf[6] & 0x10),
        cmdque=bool(buf[7] & 0x02),
        vendor=_ascii_field(buf[8:16]),
        product=_ascii_field(buf[16:32]),
        revision=_ascii_field(buf[32:36]),
    )
