"""Thin-provisioning commands and data: WRITE SAME (16), UNMAP, GET LBA STATUS, VPD 0xB2."""

from __future__ import annotations

import struct

import pytest

from mpath.scsi import cdb
from mpath.scsi.errors import CdbFieldError, ScsiDataError
from mpath.scsi.provisioning import (
    LbaState,
    LbaStatus,
    parse_lba_status,
    parse_logical_block_provisioning,
)


def test_write_same16_carries_lba_blocks_and_the_unmap_and_ndob_bits() -> None:
    assert cdb.write_same16(0x0102, 8).hex() == "93000000000000000102000000080000"
    assert cdb.write_same16(1, 1, unmap=True)[1] == 0x08
    assert cdb.write_same16(1, 1, unmap=True, ndob=True)[1] == 0x09
    with pytest.raises(CdbFieldError):
        cdb.write_same16(-1, 1)


def test_unmap_cdb_and_its_parameter_list() -> None:
    parameters = cdb.unmap_parameters([(8, 16), (1 << 40, 2)])
    assert len(parameters) == 8 + 2 * 16
    data_length, descriptors_length = struct.unpack_from(">HH", parameters)
    assert (data_length, descriptors_length) == (38, 32)
    assert struct.unpack_from(">QI", parameters, 8) == (8, 16)
    assert struct.unpack_from(">QI", parameters, 24) == (1 << 40, 2)
    assert cdb.unmap(len(parameters)).hex() == "42000000000000002800"


def test_get_lba_status_is_service_action_0x12() -> None:
    assert cdb.get_lba_status(0x10, 4104).hex() == ("9e120000000000000010000010080000")


def _vpd_b2(flags: int, kind: int) -> bytes:
    payload = bytes([0, flags, kind, 0])
    return bytes([0, 0xB2]) + struct.pack(">H", len(payload)) + payload


def test_vpd_b2_says_which_deallocation_commands_work() -> None:
    tgt_like = parse_logical_block_provisioning(_vpd_b2(0x80 | 0x40 | 0x20 | 0x04, 2))
    assert tgt_like.unmap and tgt_like.write_same16_unmap and tgt_like.write_same10_unmap
    assert tgt_like.read_zeroes and tgt_like.provisioning_type == 2
    thick = parse_logical_block_provisioning(_vpd_b2(0, 0))
    assert not (thick.unmap or thick.write_same16_unmap or thick.read_zeroes)
    with pytest.raises(ScsiDataError):
        parse_logical_block_provisioning(bytes([0, 0xB2, 0, 1, 0]))


def test_lba_status_descriptors_in_order() -> None:
    descriptors = [(0, 8, 0), (8, 24, 1), (32, 4, 2), (36, 4, 0x0F)]
    body = b"".join(struct.pack(">QIB3x", *d) for d in descriptors)
    data = struct.pack(">I4x", 4 + len(body)) + body
    assert parse_lba_status(data) == [
        LbaStatus(0, 8, LbaState.MAPPED),
        LbaStatus(8, 24, LbaState.DEALLOCATED),
        LbaStatus(32, 4, LbaState.ANCHORED),
        LbaStatus(36, 4, LbaState.MAPPED),  # an unknown state is taken as holding data
    ]
    # A truncated answer yields the whole descriptors it holds.
    assert len(parse_lba_status(data[: 8 + 16 + 10])) == 1
    with pytest.raises(ScsiDataError):
        parse_lba_status(b"\0\0\0")
