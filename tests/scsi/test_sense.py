"""Sense data decoding: both formats, real tgt bytes, and hostile buffers."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mpath.scsi.pyscsi_adapter import reference_decode_fixed_sense
from mpath.scsi.sense import Sense, SenseKey, decode_sense, encode_sense
from tests.scsi.canned import (
    SENSE_INVALID_FIELD_IN_CDB,
    SENSE_INVALID_OPCODE,
    SENSE_LBA_OUT_OF_RANGE,
)


@pytest.mark.parametrize(
    ("raw", "asc"),
    [
        (SENSE_INVALID_FIELD_IN_CDB, 0x24),
        (SENSE_LBA_OUT_OF_RANGE, 0x21),
        (SENSE_INVALID_OPCODE, 0x20),
    ],
    ids=["24-00", "21-00", "20-00"],
)
def test_decodes_the_fixed_sense_tgt_returns(raw: bytes, asc: int) -> None:
    sense = decode_sense(raw)
    assert sense == Sense(
        key=SenseKey.ILLEGAL_REQUEST,
        asc=asc,
        ascq=0,
        command_specific=0,
        descriptor_format=False,
    )
    assert sense is not None
    assert sense.code == f"05/{asc:02x}/00"
    assert sense.response_code == 0x70


def test_fixed_format_fields() -> None:
    # Fixed, deferred, VALID: MEDIUM ERROR 11/00 at LBA 0x00abcdef, ILI, FRU 7,
    # SKS (actual retry count) 0x80 00 05.
    raw = bytes.fromhex("f1002300abcdef0a01020304110007800005")
    sense = decode_sense(raw)
    assert sense == Sense(
        key=SenseKey.MEDIUM_ERROR,
        asc=0x11,
        ascq=0x00,
        deferred=True,
        information=0x00ABCDEF,
        descriptor_format=False,
        command_specific=0x01020304,
        sense_key_specific=bytes.fromhex("800005"),
        fru=7,
        ili=True,
    )


def test_fixed_information_is_none_unless_marked_valid() -> None:
    raw = bytearray(encode_sense(SenseKey.MEDIUM_ERROR, 0x11, 0, information=42))
    assert decode_sense(raw) is not None
    assert decode_sense(bytes(raw)).information == 42  # type: ignore[union-attr]
    raw[0] &= 0x7F  # clear VALID
    assert decode_sense(bytes(raw)).information is None  # type: ignore[union-attr]


def test_descriptor_format_with_descriptors() -> None:
    raw = bytes.fromhex(
        "72"
        "03"
        "11"
        "00"
        "000000"
        "28"  # 40 bytes of descriptors follow
        "000a"
        "80"
        "00"
        "0000000123456789"  # information, VALID
        "010a"
        "0000"
        "00000000000000ff"  # command-specific information
        "0206"
        "0000"
        "80"
        "0010"
        "00"  # sense key specific, SKSV
        "0302"
        "00"
        "09"  # field replaceable unit
        "0502"
        "00"
        "20"  # block commands: ILI
    )
    assert decode_sense(raw) == Sense(
        key=SenseKey.MEDIUM_ERROR,
        asc=0x11,
        ascq=0x00,
        information=0x123456789,
        descriptor_format=True,
        command_specific=0xFF,
        sense_key_specific=bytes.fromhex("800010"),
        fru=9,
        ili=True,
    )


def test_descriptor_format_deferred_without_descriptors() -> None:
    sense = decode_sense(bytes.fromhex("7306000000000000"))
    assert sense == Sense(
        key=SenseKey.UNIT_ATTENTION, asc=0, ascq=0, deferred=True, descriptor_format=True
    )
    assert sense is not None
    assert sense.response_code == 0x73


def test_descriptor_information_ignored_without_valid_bit() -> None:
    raw = bytes.fromhex("720311000000000c000a00000000000000000005")
    sense = decode_sense(raw)
    assert sense is not None
    assert sense.information is None


def test_descriptor_cut_short_is_ignored_not_misread() -> None:
    # Additional length claims 12 bytes of descriptors, the information descriptor needs
    # 12, but only 6 are present: the descriptor is dropped, key/ASC/ASCQ still read.
    raw = bytes.fromhex("720525000000000c000a80000000")
    sense = decode_sense(raw)
    assert sense is not None
    assert (sense.key, sense.asc, sense.ascq, sense.information) == (
        SenseKey.ILLEGAL_REQUEST,
        0x25,
        0x00,
        None,
    )


def test_additional_length_bounds_the_fixed_sense() -> None:
    # Additional length 4: bytes 8..11 only; ASC/ASCQ at 12/13 are past the announced end
    # (the 0x29 there is left-over buffer content, not sense data).
    raw = bytes.fromhex("70000600000000040000000029000000000000")
    sense = decode_sense(raw)
    assert sense is not None
    assert (sense.key, sense.asc, sense.ascq, sense.truncated) == (
        SenseKey.UNIT_ATTENTION,
        0,
        0,
        True,
    )


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"\x70\x00\x02", (SenseKey.NOT_READY, 0, 0)),
        (bytes.fromhex("7000020000000006000000000401"), (SenseKey.NOT_READY, 0x04, 0x01)),
        (bytes.fromhex("720204"), (SenseKey.NOT_READY, 0x04, 0x00)),
    ],
    ids=["fixed-3-bytes", "fixed-14-bytes", "descriptor-3-bytes"],
)
def test_short_buffers_keep_what_is_there(raw: bytes, expected: tuple[SenseKey, int, int]) -> None:
    sense = decode_sense(raw)
    assert sense is not None
    assert (sense.key, sense.asc, sense.ascq) == expected
    assert sense.truncated is (len(raw) < 14 if raw[0] == 0x70 else len(raw) < 4)


@pytest.mark.parametrize(
    "raw",
    [b"", b"\x70", b"\x70\x00", b"\x72", b"\x00" * 18, b"\x7f" + b"\x00" * 17, b"\x06\x29\x00"],
    ids=["empty", "fixed-1", "fixed-2", "descriptor-1", "zeros", "vendor-format", "not-sense"],
)
def test_non_sense_buffers_give_none(raw: bytes) -> None:
    assert decode_sense(raw) is None


def test_accepts_bytearray_and_memoryview() -> None:
    raw = encode_sense(SenseKey.UNIT_ATTENTION, 0x29, 0x00)
    assert decode_sense(bytearray(raw)) == decode_sense(memoryview(raw)) == decode_sense(raw)


def test_str_names_key_asc_and_flags() -> None:
    sense = decode_sense(encode_sense(SenseKey.NOT_READY, 0x04, 0x0B, deferred=True))
    assert str(sense) == (
        "NOT READY 04/0b (LOGICAL UNIT NOT ACCESSIBLE, TARGET PORT IN STANDBY STATE) "
        "[deferred error]"
    )
    unknown = decode_sense(encode_sense(SenseKey.UNIT_ATTENTION, 0x7E, 0x7E))
    assert str(unknown) == "UNIT ATTENTION 7e/7e"


def test_every_sense_key_has_a_label() -> None:
    assert [key.value for key in SenseKey] == list(range(16))
    assert SenseKey.ABORTED_COMMAND.label == "ABORTED COMMAND"


@given(st.binary(max_size=300))
def test_decoder_never_raises_on_arbitrary_bytes(raw: bytes) -> None:
    sense = decode_sense(raw)
    if sense is not None:
        assert 0 <= sense.asc <= 0xFF
        assert 0 <= sense.ascq <= 0xFF
        str(sense)  # rendering must not raise either


@given(st.binary(min_size=1, max_size=300))
def test_decoder_never_raises_on_sense_like_bytes(tail: bytes) -> None:
    for code in (0x70, 0x71, 0x72, 0x73, 0xF0, 0xF3):
        decode_sense(bytes([code]) + tail)


SENSE_FIELDS = st.tuples(
    st.sampled_from(list(SenseKey)),
    st.integers(0, 0xFF),
    st.integers(0, 0xFF),
    st.booleans(),
)


@given(fields=SENSE_FIELDS, information=st.none() | st.integers(0, 2**32 - 1))
def test_fixed_round_trip(fields: tuple[SenseKey, int, int, bool], information: int | None) -> None:
    key, asc, ascq, deferred = fields
    sense = decode_sense(encode_sense(key, asc, ascq, deferred=deferred, information=information))
    assert sense is not None
    assert (sense.key, sense.asc, sense.ascq, sense.deferred, sense.information) == (
        key,
        asc,
        ascq,
        deferred,
        information,
    )
    assert not sense.descriptor_format


@given(fields=SENSE_FIELDS, information=st.none() | st.integers(0, 2**64 - 1))
def test_descriptor_round_trip(
    fields: tuple[SenseKey, int, int, bool], information: int | None
) -> None:
    key, asc, ascq, deferred = fields
    raw = encode_sense(key, asc, ascq, descriptor=True, deferred=deferred, information=information)
    sense = decode_sense(raw)
    assert sense is not None
    assert (sense.key, sense.asc, sense.ascq, sense.deferred, sense.information) == (
        key,
        asc,
        ascq,
        deferred,
        information,
    )
    assert sense.descriptor_format


@given(raw=st.binary(min_size=18, max_size=18))
def test_fixed_decoding_agrees_with_pyscsi(raw: bytes) -> None:
    fixed = bytes([0x70 | (raw[0] & 0x80)]) + raw[1:7] + b"\x0a" + raw[8:]
    ours = decode_sense(fixed)
    theirs = reference_decode_fixed_sense(fixed)
    assert ours is not None
    assert ours.key == theirs["sense_key"]
    assert ours.asc == theirs["additional_sense_code"]
    assert ours.ascq == theirs["additional_sense_code_qualifier"]
    assert ours.fru == theirs["field_replaceable_unit_code"]
    assert ours.ili == bool(theirs["ili"])
    assert ours.information == (theirs["information"] if theirs["valid"] else None)
