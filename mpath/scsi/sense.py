"""Sense data: decode what the target says went wrong, in either SPC format.

A target answers CHECK CONDITION with sense data in one of two layouts (SPC-4 4.4):

* **fixed** (response code 0x70 current / 0x71 deferred): key in byte 2, ASC/ASCQ in
  bytes 12/13, a 4-byte INFORMATION field in bytes 3..6;
* **descriptor** (0x72 current / 0x73 deferred): key, ASC, ASCQ in bytes 1..3, then a
  list of typed descriptors (INFORMATION is an 8-byte field in descriptor 0x00).

:func:`decode_sense` turns either into one :class:`Sense`. Sense bytes come from the
target (or from a broken one), so the decoder never raises: anything it cannot read as
sense data gives ``None``, and a buffer cut short before ASC/ASCQ gives a ``Sense``
marked ``truncated`` (ASC/ASCQ read as 0, the way the kernel's scsi_normalize_sense
treats missing bytes). The additional-length byte is honoured, so bytes past the end
the target announced are ignored.

:func:`encode_sense` builds sense bytes; tests and fake transports use it to produce
canned CHECK CONDITIONs in both formats.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

FIXED_CURRENT = 0x70
FIXED_DEFERRED = 0x71
DESCRIPTOR_CURRENT = 0x72
DESCRIPTOR_DEFERRED = 0x73

# Descriptor types of descriptor-format sense data (SPC-4 table 29) that we read.
_DESC_INFORMATION = 0x00
_DESC_COMMAND_SPECIFIC = 0x01
_DESC_SENSE_KEY_SPECIFIC = 0x02
_DESC_FRU = 0x03
_DESC_STREAM_COMMANDS = 0x04
_DESC_BLOCK_COMMANDS = 0x05

_ILI = 0x20
_SKSV = 0x80
_VALID = 0x80


class SenseKey(IntEnum):
    """The 4-bit sense key (SPC-4 table 48). All 16 values exist, so any nibble maps."""

    NO_SENSE = 0x0
    RECOVERED_ERROR = 0x1
    NOT_READY = 0x2
    MEDIUM_ERROR = 0x3
    HARDWARE_ERROR = 0x4
    ILLEGAL_REQUEST = 0x5
    UNIT_ATTENTION = 0x6
    DATA_PROTECT = 0x7
    BLANK_CHECK = 0x8
    VENDOR_SPECIFIC = 0x9
    COPY_ABORTED = 0xA
    ABORTED_COMMAND = 0xB
    RESERVED_C = 0xC  # obsolete EQUAL
    VOLUME_OVERFLOW = 0xD
    MISCOMPARE = 0xE
    COMPLETED = 0xF

    @property
    def label(self) -> str:
        """The key as SPC spells it: ``"ILLEGAL REQUEST"``."""
        return self.name.replace("_", " ")


@dataclass(frozen=True, slots=True)
class Sense:
    """Decoded sense data.

    ``key``/``asc``/``ascq`` say what happened. ``deferred`` means the error belongs to
    an *earlier* command (typically a cached write that later failed); the command that
    received it was not executed. ``information`` is the INFORMATION field when the
    target marked it valid (for a medium error: the failing LBA), else None.
    ``sense_key_specific`` holds the 3 SKS bytes when their SKSV bit is set (field
    pointer for ILLEGAL REQUEST, progress for NOT READY). ``truncated`` marks a buffer
    that ended before ASC/ASCQ, which were then read as 0.
    """

    key: SenseKey
    asc: int
    ascq: int
    deferred: bool = False
    information: int | None = None
    descriptor_format: bool = False
    command_specific: int | None = None
    sense_key_specific: bytes | None = None
    fru: int = 0
    ili: bool = False
    truncated: bool = False

    @property
    def response_code(self) -> int:
        """0x70..0x73: the format and current/deferred bits together."""
        base = DESCRIPTOR_CURRENT if self.descriptor_format else FIXED_CURRENT
        return base + int(self.deferred)

    @property
    def code(self) -> str:
        """Key, ASC and ASCQ as the usual hex triple: ``"05/24/00"``."""
        return f"{self.key:02x}/{self.asc:02x}/{self.ascq:02x}"

    @property
    def description(self) -> str | None:
        """SPC's name for the ASC/ASCQ pair ("INVALID FIELD IN CDB"), when known."""
        from mpath.scsi.pyscsi_adapter import asc_description

        return asc_description(self.asc, self.ascq)

    def __str__(self) -> str:
        text = f"{self.key.label} {self.asc:02x}/{self.ascq:02x}"
        description = self.description
        if description:
            text += f" ({description})"
        if self.deferred:
            text += " [deferred error]"
        if self.truncated:
            text += " [truncated sense]"
        return text


def decode_sense(data: bytes | bytearray | memoryview) -> Sense | None:
    """Decode fixed or descriptor sense data; None when ``data`` is not sense data.

    None is returned for an empty buffer, a response code other than 0x70..0x73, or a
    buffer too short to hold even the sense key. Never raises on any input.
    """
    buf = bytes(data)
    if not buf:
        return None
    response_code = buf[0] & 0x7F
    if response_code in (FIXED_CURRENT, FIXED_DEFERRED):
        return _decode_fixed(buf, deferred=response_code == FIXED_DEFERRED)
    if response_code in (DESCRIPTOR_CURRENT, DESCRIPTOR_DEFERRED):
        return _decode_descriptor(buf, deferred=response_code == DESCRIPTOR_DEFERRED)
    return None


def _announced_length(buf: bytes) -> int:
    """Bytes that belong to the sense data: the buffer, cut at 8 + ADDITIONAL LENGTH."""
    if len(buf) > 7:
        return min(len(buf), 8 + buf[7])
    return len(buf)


def _decode_fixed(buf: bytes, *, deferred: bool) -> Sense | None:
    if len(buf) < 3:
        return None
    n = _announced_length(buf)
    information = int.from_bytes(buf[3:7], "big") if buf[0] & _VALID and n >= 7 else None
    sks = buf[15:18] if n >= 18 and buf[15] & _SKSV else None
    return Sense(
        key=SenseKey(buf[2] & 0x0F),
        asc=buf[12] if n > 12 else 0,
        ascq=buf[13] if n > 13 else 0,
        deferred=deferred,
        information=information,
        descriptor_format=False,
        command_specific=int.from_bytes(buf[8:12], "big") if n >= 12 else None,
        sense_key_specific=sks,
        fru=buf[14] if n > 14 else 0,
        ili=bool(buf[2] & _ILI),
        truncated=n < 14,
    )


def _decode_descriptor(buf: bytes, *, deferred: bool) -> Sense | None:
    if len(buf) < 2:
        return None
    n = _announced_length(buf)
    information: int | None = None
    command_specific: int | None = None
    sks: bytes | None = None
    fru = 0
    ili = False
    offset = 8
    while offset + 2 <= n:
        kind, length = buf[offset], buf[offset + 1]
        end = offset + 2 + length
        if end > n:
            break  # a descriptor cut short by the buffer: ignore it and the rest
        body = buf[offset + 2 : end]
        if kind == _DESC_INFORMATION and length >= 0x0A and body[0] & _VALID:
            information = int.from_bytes(body[2:10], "big")
        elif kind == _DESC_COMMAND_SPECIFIC and length >= 0x0A:
            command_specific = int.from_bytes(body[2:10], "big")
        elif kind == _DESC_SENSE_KEY_SPECIFIC and length >= 5 and body[2] & _SKSV:
            sks = body[2:5]
        elif kind == _DESC_FRU and length >= 2:
            fru = body[1]
        elif kind in (_DESC_STREAM_COMMANDS, _DESC_BLOCK_COMMANDS) and length >= 2:
            ili = ili or bool(body[1] & _ILI)
        offset = end
    return Sense(
        key=SenseKey(buf[1] & 0x0F),
        asc=buf[2] if n > 2 else 0,
        ascq=buf[3] if n > 3 else 0,
        deferred=deferred,
        information=information,
        descriptor_format=True,
        command_specific=command_specific,
        sense_key_specific=sks,
        fru=fru,
        ili=ili,
        truncated=n < 4,
    )


def encode_sense(
    key: int,
    asc: int,
    ascq: int,
    *,
    descriptor: bool = False,
    deferred: bool = False,
    information: int | None = None,
) -> bytes:
    """Build sense data (18-byte fixed, or descriptor with an optional INFORMATION descriptor).

    Used to produce canned CHECK CONDITIONs for tests and fake transports. In fixed
    format ``information`` must fit 32 bits (SPC's fixed INFORMATION field).
    """
    if descriptor:
        descriptors = b""
        if information is not None:
            descriptors = bytes([_DESC_INFORMATION, 0x0A, _VALID, 0]) + information.to_bytes(
                8, "big"
            )
        response = DESCRIPTOR_DEFERRED if deferred else DESCRIPTOR_CURRENT
        header = bytes([response, key & 0x0F, asc, ascq, 0, 0, 0, len(descriptors)])
        return header + descriptors
    response = FIXED_DEFERRED if deferred else FIXED_CURRENT
    if information is not None:
        response |= _VALID
    fixed = bytearray(18)
    fixed[0] = response
    fixed[2] = key & 0x0F
    fixed[3:7] = (information or 0).to_bytes(4, "big")
    fixed[7] = 10  # additional sense length: bytes 8..17
    fixed[12] = asc
    fixed[13] = ascq
    return bytes(fixed)
