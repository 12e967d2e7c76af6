"""VPD page parsers: tgt's pages, cross-checked with pyscsi, and broken pages."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mpath.scsi.errors import ScsiDataError, ScsiTruncatedError
from mpath.scsi.pyscsi_adapter import reference_decode_inquiry
from mpath.scsi.vpd import (
    Association,
    BlockLimits,
    CodeSet,
    Designator,
    DesignatorType,
    VpdPage,
    parse_block_limits,
    parse_designators,
    parse_supported_pages,
    parse_unit_serial,
    vpd_page_length,
)
from tests.scsi.canned import (
    RIG_SERIAL,
    VPD_BLOCK_LIMITS,
    VPD_DEVICE_IDENTIFICATION,
    VPD_SUPPORTED_PAGES,
    VPD_UNIT_SERIAL,
)


def test_supported_pages_of_the_rig() -> None:
    assert parse_supported_pages(VPD_SUPPORTED_PAGES) == (0x00, 0x80, 0x83, 0xB0, 0xB1, 0xB2)


def test_unit_serial_of_the_rig_loses_its_padding() -> None:
    assert parse_unit_serial(VPD_UNIT_SERIAL) == RIG_SERIAL


def test_unit_serial_with_nul_padding() -> None:
    raw = bytes([0, 0x80, 0, 10]) + b"ABC123\x00\x00\x00\x00"
    assert parse_unit_serial(raw) == "ABC123"


def test_designators_of_the_rig() -> None:
    designators = parse_designators(VPD_DEVICE_IDENTIFICATION)
    assert designators == (
        Designator(
            code_set=CodeSet.ASCII,
            association=Association.LOGICAL_UNIT,
            designator_type=DesignatorType.T10_VENDOR_ID,
            value=b"62f461bbfdc43634f4f288adff22bcdd\x00\x00\x00\x00",
        ),
        Designator(
            code_set=CodeSet.BINARY,
            association=Association.LOGICAL_UNIT,
            designator_type=DesignatorType.NAA,
            value=bytes.fromhex("3000000100000001"),
        ),
        Designator(
            code_set=CodeSet.BINARY,
            association=Association.LOGICAL_UNIT,
            designator_type=DesignatorType.NAA,
            value=bytes.fromhex("62f461bbfdc43634f4f288adff22bcdd"),
        ),
    )
    assert [d.naa_type for d in designators] == [None, 3, 6]
    assert designators[0].text == "62f461bbfdc43634f4f288adff22bcdd"
    assert designators[1].text is None
    assert str(designators[2]) == "naa/logical_unit: 62f461bbfdc43634f4f288adff22bcdd"


def test_designators_agree_with_pyscsi() -> None:
    theirs = reference_decode_inquiry(VPD_DEVICE_IDENTIFICATION, evpd=True)
    descriptors = theirs["designator_descriptors"]
    assert isinstance(descriptors, list)
    ours = parse_designators(VPD_DEVICE_IDENTIFICATION)
    assert [(d.code_set, d.association, d.designator_type) for d in ours] == [
        (t["code_set"], t["association"], t["designator_type"]) for t in descriptors
    ]
    assert [d.naa_type for d in ours if d.naa_type is not None] == [
        t["designator"]["naa"] for t in descriptors if t["designator_type"] == 3
    ]


def test_port_designators_keep_their_protocol_and_numbers() -> None:
    raw = bytes.fromhex(
        "0083"
        "0018"
        "51940004"
        "00000002"  # iSCSI (5), PIV, target port, relative port 2
        "01950004"
        "00000007"  # target port group 7 (PIV=1 but protocol 0)
        "51140004"
        "00000003"  # PIV=0: protocol identifier not defined
    )
    relative, group, no_piv = parse_designators(raw)
    assert relative.association == Association.TARGET_PORT
    assert relative.protocol_identifier == 5
    assert relative.relative_port == 2
    assert group.target_port_group == 7
    assert group.relative_port is None
    assert no_piv.protocol_identifier is None


def test_scsi_name_string_text_is_utf8_cut_at_nul() -> None:
    raw = bytes.fromhex("008300100308000c") + b"iqn.2026-x\x00\x00"
    (designator,) = parse_designators(raw)
    assert designator.code_set == CodeSet.UTF8
    assert designator.text == "iqn.2026-x"


def test_block_limits_of_the_rig() -> None:
    assert parse_block_limits(VPD_BLOCK_LIMITS) == BlockLimits(
        max_compare_and_write_length=128,
        optimal_transfer_length_granularity=None,
        max_transfer_length=None,
        optimal_transfer_length=None,
        max_prefetch_length=None,
        max_unmap_lba_count=None,
        max_unmap_block_descriptor_count=None,
        optimal_unmap_granularity=None,
        unmap_granularity_alignment=None,
        max_write_same_length=None,
    )


def test_block_limits_full_page() -> None:
    raw = bytes.fromhex(
        "00b0003c"
        "01"
        "20"
        "0008"  # WSNZ, max compare and write 32, optimal granularity 8
        "00000800"  # max transfer length 2048
        "00000100"  # optimal transfer length 256
        "00000400"  # max prefetch 1024
        "ffffffff"  # max unmap LBA count: unlimited
        "00000010"  # max unmap block descriptors 16
        "00000008"  # optimal unmap granularity 8
        "80000000"  # UGAVALID, alignment 0
        "0000000000010000" + "00" * 20  # max write same 65536
    )
    limits = parse_block_limits(raw)
    assert limits == BlockLimits(
        max_compare_and_write_length=32,
        optimal_transfer_length_granularity=8,
        max_transfer_length=2048,
        optimal_transfer_length=256,
        max_prefetch_length=1024,
        max_unmap_lba_count=0xFFFFFFFF,
        max_unmap_block_descriptor_count=16,
        optimal_unmap_granularity=8,
        unmap_granularity_alignment=0,
        max_write_same_length=65536,
        write_same_non_zero=True,
    )
    theirs = reference_decode_inquiry(raw, evpd=True)
    assert theirs["max_xfer_len"] == limits.max_transfer_length
    assert theirs["opt_xfer_len"] == limits.optimal_transfer_length
    assert theirs["max_unmap_lba_count"] == limits.max_unmap_lba_count
    assert theirs["opt_unmap_gran"] == limits.optimal_unmap_granularity
    # Not compared: pyscsi 2.1 reads MAXIMUM WRITE SAME LENGTH as 4 bytes at offset 36,
    # the high half of SBC's 8-byte field (bytes 36..43).


def test_block_limits_short_sbc2_page() -> None:
    raw = bytes.fromhex("00b0000c000000000000008000000010")
    limits = parse_block_limits(raw)
    assert (limits.max_transfer_length, limits.optimal_transfer_length) == (128, 16)
    assert limits.max_unmap_lba_count is None


def test_page_length_from_the_header() -> None:
    assert vpd_page_length(VPD_DEVICE_IDENTIFICATION) == 76
    assert vpd_page_length(VPD_DEVICE_IDENTIFICATION[:4]) == 76


def test_truncated_page_says_how_much_to_ask_for() -> None:
    with pytest.raises(ScsiTruncatedError) as caught:
        parse_designators(VPD_DEVICE_IDENTIFICATION[:40])
    assert (caught.value.needed, caught.value.got) == (76, 40)
    assert "0x83" in str(caught.value)


def test_another_page_than_asked_is_refused() -> None:
    with pytest.raises(ScsiDataError, match="returned page 0x80"):
        parse_designators(VPD_UNIT_SERIAL)


def test_designator_running_past_the_page_is_refused() -> None:
    raw = bytes.fromhex("008300080103001030000001")  # claims 16 bytes, page has 4
    with pytest.raises(ScsiDataError, match="runs past the page"):
        parse_designators(raw)


def test_designator_header_cut_off_is_refused() -> None:
    raw = bytes.fromhex("00830006010300000103")
    with pytest.raises(ScsiDataError, match="cut off"):
        parse_designators(raw)


@pytest.mark.parametrize(
    ("parse", "page"),
    [
        (parse_supported_pages, VpdPage.SUPPORTED_PAGES),
        (parse_unit_serial, VpdPage.UNIT_SERIAL_NUMBER),
        (parse_designators, VpdPage.DEVICE_IDENTIFICATION),
        (parse_block_limits, VpdPage.BLOCK_LIMITS),
    ],
)
def test_header_shorter_than_four_bytes(parse: object, page: VpdPage) -> None:
    assert callable(parse)
    with pytest.raises(ScsiDataError):
        parse(bytes([0, page, 0]))


@given(st.binary(max_size=120), st.sampled_from([0x00, 0x80, 0x83, 0xB0]))
def test_arbitrary_pages_parse_or_raise_a_data_error(tail: bytes, page: int) -> None:
    raw = bytes([0, page]) + tail
    parsers = {
        0x00: parse_supported_pages,
        0x80: parse_unit_serial,
        0x83: parse_designators,
        0xB0: parse_block_limits,
    }
    with contextlib.suppress(ScsiDataError):
        parsers[page](raw)
