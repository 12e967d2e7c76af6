"""CDB builders: exact bytes from SBC/SPC layouts, cross-checked against pyscsi."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mpath.errors import UsageError
from mpath.scsi import cdb
from mpath.scsi.cdb import Opcode, RwCommand, decode_rw
from mpath.scsi.errors import CdbFieldError
from mpath.scsi.pyscsi_adapter import (
    reference_inquiry,
    reference_read_capacity16,
    reference_report_luns,
    reference_rw,
    reference_test_unit_ready,
)

U64 = st.integers(min_value=0, max_value=2**64 - 1)
U32 = st.integers(min_value=0, max_value=2**32 - 1)


@pytest.mark.parametrize(
    ("built", "expected_hex"),
    [
        pytest.param(cdb.test_unit_ready(), "000000000000", id="tur"),
        pytest.param(cdb.inquiry(), "12000000ff00", id="inquiry-standard"),
        pytest.param(cdb.inquiry(0x83), "12018300ff00", id="inquiry-vpd83"),
        pytest.param(cdb.inquiry(0xB0, alloc_len=0x1000), "1201b0100000", id="inquiry-vpdb0-4k"),
        pytest.param(cdb.read_capacity16(), "9e10" + "00" * 8 + "00000020" + "0000", id="rc16"),
        pytest.param(
            cdb.read_capacity16(0xFFFFFFFF), "9e10" + "00" * 8 + "ffffffff" + "0000", id="rc16-max"
        ),
        pytest.param(cdb.read_capacity10(), "25" + "00" * 9, id="rc10"),
        pytest.param(
            cdb.read16(0x0102030405060708, 0x0A0B0C0D),
            "88000102030405060708" + "0a0b0c0d" + "0000",
            id="read16",
        ),
        pytest.param(
            cdb.write16(5, 8, fua=True),
            "8a08" + "0000000000000005" + "00000008" + "0000",
            id="write16-fua",
        ),
        pytest.param(cdb.read10(0x01020304, 0x0506), "28000102030400050600", id="read10"),
        pytest.param(cdb.write10(7, 1, fua=True), "2a080000000700000100", id="write10-fua"),
        pytest.param(cdb.synchronize_cache16(), "91" + "00" * 15, id="sync16-all"),
        pytest.param(
            cdb.synchronize_cache16(9, 3, immediate=True),
            "9102" + "0000000000000009" + "00000003" + "0000",
            id="sync16-range-immed",
        ),
        pytest.param(cdb.synchronize_cache10(), "35" + "00" * 9, id="sync10-all"),
        pytest.param(cdb.report_luns(), "a0" + "00" * 5 + "00001000" + "0000", id="report-luns"),
        pytest.param(
            cdb.report_luns(16, select_report=2),
            "a000020000000000001000" + "00",
            id="report-luns-sel2",
        ),
        pytest.param(
            cdb.report_target_port_groups(), "a32a" + "00" * 4 + "00001000" + "0000", id="rtpg"
        ),
    ],
)
def test_cdb_bytes_follow_the_spc_sbc_layouts(built: bytes, expected_hex: str) -> None:
    assert isinstance(built, bytes)
    assert built.hex() == expected_hex


def test_cdb_lengths_match_their_opcode_group() -> None:
    # Group 0 commands are 6 bytes, groups 1-2 ten, group 4 sixteen, group 5 twelve.
    assert len(cdb.test_unit_ready()) == 6
    assert len(cdb.inquiry()) == 6
    assert len(cdb.read10(0, 1)) == len(cdb.synchronize_cache10()) == 10
    assert len(cdb.read16(0, 1)) == len(cdb.read_capacity16()) == 16
    assert len(cdb.report_luns()) == len(cdb.report_target_port_groups()) == 12


class TestAgainstPyscsi:
    """pyscsi's command classes are an independent encoding of the same layouts."""

    def test_test_unit_ready(self) -> None:
        assert cdb.test_unit_ready() == reference_test_unit_ready()

    @pytest.mark.parametrize("page", [None, 0x00, 0x80, 0x83, 0xB0])
    @pytest.mark.parametrize("alloc_len", [36, 255, 4096, 0xFFFF])
    def test_inquiry(self, page: int | None, alloc_len: int) -> None:
        assert cdb.inquiry(page, alloc_len) == reference_inquiry(page, alloc_len)

    # pyscsi allocates a data-in buffer of alloc_len bytes, so keep these small.
    @pytest.mark.parametrize("alloc_len", [12, 32, 0x12345])
    def test_read_capacity16(self, alloc_len: int) -> None:
        assert cdb.read_capacity16(alloc_len) == reference_read_capacity16(alloc_len)

    @pytest.mark.parametrize("alloc_len", [16, 4096, 0x12345])
    def test_report_luns(self, alloc_len: int) -> None:
        assert cdb.report_luns(alloc_len) == reference_report_luns(alloc_len)

    @given(lba=U64, blocks=U32, fua=st.booleans())
    def test_read16_and_write16(self, lba: int, blocks: int, fua: bool) -> None:
        assert cdb.read16(lba, blocks, fua=fua) == reference_rw("READ_16", lba, blocks, fua=fua)
        assert cdb.write16(lba, blocks, fua=fua) == reference_rw("WRITE_16", lba, blocks, fua=fua)

    @given(
        lba=st.integers(0, 2**32 - 1),
        blocks=st.integers(0, 0xFFFF),
        fua=st.booleans(),
    )
    def test_read10_and_write10(self, lba: int, blocks: int, fua: bool) -> None:
        assert cdb.read10(lba, blocks, fua=fua) == reference_rw("READ_10", lba, blocks, fua=fua)
        assert cdb.write10(lba, blocks, fua=fua) == reference_rw("WRITE_10", lba, blocks, fua=fua)


@given(lba=U64, blocks=U32, fua=st.booleans())
def test_read16_round_trips_lba_blocks_and_fua(lba: int, blocks: int, fua: bool) -> None:
    assert decode_rw(cdb.read16(lba, blocks, fua=fua)) == RwCommand(
        Opcode.READ_16, lba, blocks, fua
    )


@given(lba=U64, blocks=U32, fua=st.booleans())
def test_write16_round_trips_lba_blocks_and_fua(lba: int, blocks: int, fua: bool) -> None:
    decoded = decode_rw(cdb.write16(lba, blocks, fua=fua))
    assert decoded == RwCommand(Opcode.WRITE_16, lba, blocks, fua)
    assert decoded.is_write


@given(lba=st.integers(0, 2**32 - 1), blocks=st.integers(0, 0xFFFF))
def test_rw10_round_trips(lba: int, blocks: int) -> None:
    assert decode_rw(cdb.read10(lba, blocks)) == RwCommand(Opcode.READ_10, lba, blocks, False)
    assert decode_rw(cdb.write10(lba, blocks)) == RwCommand(Opcode.WRITE_10, lba, blocks, False)


@pytest.mark.parametrize(
    "other",
    [b"", cdb.test_unit_ready(), cdb.inquiry(), cdb.synchronize_cache16(), cdb.read16(0, 1)[:15]],
    ids=["empty", "tur", "inquiry", "sync16", "short-read16"],
)
def test_decode_rw_ignores_other_commands(other: bytes) -> None:
    assert decode_rw(other) is None


@pytest.mark.parametrize(
    ("build", "command"),
    [
        (lambda: cdb.read16(-1, 1), "READ (16)"),
        (lambda: cdb.read16(2**64, 1), "READ (16)"),
        (lambda: cdb.write16(0, 2**32), "WRITE (16)"),
        (lambda: cdb.read10(2**32, 1), "READ (10)"),
        (lambda: cdb.write10(0, 0x10000), "WRITE (10)"),
        (lambda: cdb.inquiry(0x100), "INQUIRY"),
        (lambda: cdb.inquiry(0x83, alloc_len=0x10000), "INQUIRY"),
        (lambda: cdb.read_capacity16(-1), "READ CAPACITY (16)"),
        (lambda: cdb.synchronize_cache16(-5), "SYNCHRONIZE CACHE (16)"),
        (lambda: cdb.synchronize_cache10(0, 0x10000), "SYNCHRONIZE CACHE (10)"),
        (lambda: cdb.report_luns(15), "REPORT LUNS"),
        (lambda: cdb.report_luns(2**32), "REPORT LUNS"),
        (lambda: cdb.report_target_port_groups(2**32), "REPORT TARGET PORT GROUPS"),
    ],
)
def test_out_of_range_fields_raise_a_usage_error_naming_the_command(
    build: object, command: str
) -> None:
    assert callable(build)
    with pytest.raises(CdbFieldError) as caught:
        build()
    assert caught.value.command == command
    assert isinstance(caught.value, UsageError)
    assert caught.value.exit_code == 2
