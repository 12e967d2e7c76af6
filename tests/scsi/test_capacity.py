"""READ CAPACITY (16)/(10) parsing, against tgt's bytes and pyscsi."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mpath.scsi.capacity import (
    READ_CAPACITY_10_OVERFLOW,
    Capacity,
    parse_read_capacity10,
    parse_read_capacity16,
)
from mpath.scsi.errors import ScsiDataError
from mpath.scsi.pyscsi_adapter import reference_decode_read_capacity16
from tests.scsi.canned import READ_CAPACITY_16


def test_the_rig_lun_is_64_mib_of_512_byte_blocks_on_4k_sectors() -> None:
    capacity = parse_read_capacity16(READ_CAPACITY_16)
    assert capacity == Capacity(last_lba=131071, block_size=512, logical_per_physical_exponent=3)
    assert capacity.blocks == 131072
    assert capacity.size_bytes == 67108864  # iscsi-readcapacity16: "Total size:67108864"
    assert capacity.physical_block_size == 4096
    assert capacity.protection_type is None
    assert not capacity.lbpme and not capacity.lbprz


def test_agrees_with_pyscsi_on_the_rig_bytes() -> None:
    ours = parse_read_capacity16(READ_CAPACITY_16)
    theirs = reference_decode_read_capacity16(READ_CAPACITY_16)
    assert ours.last_lba == theirs["returned_lba"]
    assert ours.block_size == theirs["block_length"]
    assert ours.logical_per_physical_exponent == theirs["lbppbe"]
    assert ours.lbpme == bool(theirs["lbpme"])


def test_thin_provisioned_protected_lun() -> None:
    raw = bytes.fromhex(
        "00000000ffffffff"
        "00001000"  # 2**32 blocks of 4096
        "03"  # P_TYPE 1 -> protection type 2, PROT_EN
        "20"  # P_I_EXPONENT 2, LBPPBE 0
        "c008"  # LBPME, LBPRZ, lowest aligned LBA 8
    ) + bytes(16)
    capacity = parse_read_capacity16(raw)
    assert capacity.blocks == 2**32
    assert capacity.size_bytes == 2**32 * 4096
    assert capacity.protection_type == 2
    assert capacity.p_i_exponent == 2
    assert capacity.lbpme and capacity.lbprz
    assert capacity.lowest_aligned_lba == 8


def test_twelve_bytes_are_enough() -> None:
    capacity = parse_read_capacity16(READ_CAPACITY_16[:12])
    assert (capacity.last_lba, capacity.block_size) == (131071, 512)
    assert capacity.logical_per_physical_exponent == 0  # not received


@pytest.mark.parametrize(
    ("raw", "match"),
    [
        (READ_CAPACITY_16[:11], "at least 12"),
        (bytes.fromhex("000000000001ffff00000000") + bytes(20), "block length is 0"),
    ],
    ids=["short", "zero-block-length"],
)
def test_unusable_data_raises(raw: bytes, match: str) -> None:
    with pytest.raises(ScsiDataError, match=match):
        parse_read_capacity16(raw)


def test_read_capacity10() -> None:
    capacity = parse_read_capacity10(bytes.fromhex("0001ffff00000200"))
    assert capacity == Capacity(last_lba=131071, block_size=512)
    too_big = parse_read_capacity10(bytes.fromhex("ffffffff00000200"))
    assert too_big.last_lba == READ_CAPACITY_10_OVERFLOW
    with pytest.raises(ScsiDataError):
        parse_read_capacity10(b"\x00" * 7)


@given(st.binary(max_size=40))
def test_arbitrary_bytes_parse_or_raise_a_data_error(raw: bytes) -> None:
    for parse in (parse_read_capacity16, parse_read_capacity10):
        try:
            capacity = parse(raw)
        except ScsiDataError:
            continue
        assert capacity.size_bytes > 0
