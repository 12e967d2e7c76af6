"""The few SCSI CDBs the transport tests send, built by hand (SBC-4 / SPC-5 layouts).

Kept independent of mpath's own command encoding so a bug there cannot hide one in the
transport.
"""

from __future__ import annotations

import struct


def inquiry(allocation_length: int = 96, *, page: int | None = None) -> bytes:
    evpd = 0 if page is None else 1
    return struct.pack(">BBBHB", 0x12, evpd, page or 0, allocation_length, 0)


def read_capacity16(allocation_length: int = 32) -> bytes:
    return struct.pack(">BBQIBB", 0x9E, 0x10, 0, allocation_length, 0, 0)


def read16(lba: int, blocks: int) -> bytes:
    return struct.pack(">BBQIBB", 0x88, 0, lba, blocks, 0, 0)


def write16(lba: int, blocks: int) -> bytes:
    return struct.pack(">BBQIBB", 0x8A, 0, lba, blocks, 0, 0)


def synchronize_cache10() -> bytes:
    return struct.pack(">BBIBHB", 0x35, 0, 0, 0, 0, 0)


def tur() -> bytes:
    """TEST UNIT READY."""
    return bytes(6)
