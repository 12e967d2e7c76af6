"""REPORT LUNS and the 8-byte LUN format."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mpath.scsi.errors import CdbFieldError, ScsiDataError, ScsiTruncatedError
from mpath.scsi.luns import decode_lun, encode_lun, parse_report_luns
from mpath.scsi.pyscsi_adapter import reference_decode_report_luns
from tests.scsi.canned import REPORT_LUNS


def test_the_rig_reports_the_controller_and_the_disk() -> None:
    assert parse_report_luns(REPORT_LUNS) == (0, 1)
    # pyscsi finds the same two entries, but ends the list 4 bytes early (it slices
    # data[8:LENGTH + 4]), so it reads the last entry as 4 bytes: 0x0001_0000.
    assert reference_decode_report_luns(REPORT_LUNS) == [0, 0x0001_0000]


@pytest.mark.parametrize(
    ("entry", "lun"),
    [
        ("0000000000000000", 0),
        ("00ff000000000000", 255),
        ("4100000000000000", 256),  # flat space
        ("7fff000000000000", 16383),
        ("d2040b0300000000", 0x0B03D204),  # two-level: Linux's scsilun_to_int example
        ("c101000000000000", 0xC101),  # well-known LU (REPORT LUNS)
        ("0105000000000000", 0x0105),  # peripheral, bus 1: not a plain LU number
    ],
)
def test_decode_lun(entry: str, lun: int) -> None:
    assert decode_lun(bytes.fromhex(entry)) == lun


@given(st.integers(0, 16383))
def test_encode_decode_round_trip(lun: int) -> None:
    encoded = encode_lun(lun)
    assert len(encoded) == 8
    assert decode_lun(encoded) == lun
    assert (encoded[0] >> 6) == (0 if lun < 256 else 1)


@pytest.mark.parametrize("lun", [-1, 16384])
def test_encode_out_of_range(lun: int) -> None:
    with pytest.raises(CdbFieldError):
        encode_lun(lun)


def test_decode_needs_eight_bytes() -> None:
    with pytest.raises(ScsiDataError):
        decode_lun(b"\x00" * 7)


def test_more_luns_than_the_buffer_holds() -> None:
    raw = bytes.fromhex("0000001800000000") + encode_lun(0) + encode_lun(1)
    with pytest.raises(ScsiTruncatedError) as caught:
        parse_report_luns(raw)
    assert (caught.value.needed, caught.value.got) == (32, 24)


@pytest.mark.parametrize(
    "raw",
    [b"", b"\x00" * 7, bytes.fromhex("0000000c00000000") + bytes(12)],
    ids=["empty", "short-header", "length-not-multiple-of-8"],
)
def test_malformed_report_luns(raw: bytes) -> None:
    with pytest.raises(ScsiDataError):
        parse_report_luns(raw)


def test_empty_list_and_extra_bytes() -> None:
    assert parse_report_luns(bytes(8)) == ()
    assert parse_report_luns(REPORT_LUNS + b"\xff" * 8) == (0, 1)  # past the list: ignored


@given(st.binary(max_size=64))
def test_arbitrary_bytes_parse_or_raise_a_data_error(raw: bytes) -> None:
    try:
        luns = parse_report_luns(raw)
    except ScsiDataError:
        return
    assert all(lun >= 0 for lun in luns)
