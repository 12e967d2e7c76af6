"""Standard INQUIRY parsing, against tgt's bytes and pyscsi's reading of them."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mpath.scsi.errors import ScsiDataError, ScsiTruncatedError
from mpath.scsi.inquiry import DeviceType, PeripheralQualifier, Tpgs, parse_standard_inquiry
from mpath.scsi.pyscsi_adapter import reference_decode_inquiry
from tests.scsi.canned import STANDARD_INQUIRY


def test_parses_what_iscsi_inq_printed_for_the_rig() -> None:
    inq = parse_standard_inquiry(STANDARD_INQUIRY)
    assert inq.peripheral_qualifier == PeripheralQualifier.CONNECTED
    assert inq.device_type == DeviceType.DIRECT_ACCESS
    assert inq.lu_present and inq.is_disk
    assert not inq.removable
    assert inq.version == 5  # SPC-3
    assert inq.hisup and not inq.normaca
    assert inq.response_data_format == 2
    assert inq.tpgs is Tpgs.NONE and not inq.alua
    assert inq.cmdque
    assert not inq.multiport and not inq.protect and not inq.third_party_copy
    assert (inq.vendor, inq.product, inq.revision) == ("MPATH", "RIG-LUN", "0001")


def test_agrees_with_pyscsi_on_the_rig_bytes() -> None:
    ours = parse_standard_inquiry(STANDARD_INQUIRY)
    theirs = reference_decode_inquiry(STANDARD_INQUIRY, evpd=False)
    assert ours.peripheral_qualifier == theirs["peripheral_qualifier"]
    assert ours.device_type == theirs["peripheral_device_type"]
    assert ours.version == theirs["version"]
    assert ours.tpgs == theirs["tpgs"]
    assert ours.cmdque == bool(theirs["cmdque"])
    assert ours.hisup == bool(theirs["hisup"])
    assert ours.vendor == bytes(theirs["t10_vendor_identification"]).decode().rstrip()  # type: ignore[call-overload]
    assert ours.product == bytes(theirs["product_identification"]).decode().rstrip()  # type: ignore[call-overload]


@pytest.mark.parametrize(
    ("byte5", "tpgs"),
    [(0x00, Tpgs.NONE), (0x10, Tpgs.IMPLICIT), (0x20, Tpgs.EXPLICIT), (0x30, Tpgs.BOTH)],
)
def test_tpgs_bits(byte5: int, tpgs: Tpgs) -> None:
    raw = bytearray(STANDARD_INQUIRY)
    raw[5] = byte5 | 0x08  # 3PC set as well, must not leak into TPGS
    inq = parse_standard_inquiry(bytes(raw))
    assert inq.tpgs is tpgs
    assert inq.alua is (tpgs is not Tpgs.NONE)
    assert inq.third_party_copy


def test_lu_not_present_at_this_lun() -> None:
    raw = bytearray(STANDARD_INQUIRY)
    raw[0] = 0x7F  # qualifier 011b, type 1fh: what targets return for an unmapped LUN
    inq = parse_standard_inquiry(bytes(raw))
    assert inq.peripheral_qualifier == PeripheralQualifier.NOT_SUPPORTED
    assert inq.device_type == DeviceType.UNKNOWN
    assert not inq.lu_present


def test_thirty_six_bytes_are_enough() -> None:
    inq = parse_standard_inquiry(STANDARD_INQUIRY[:36])
    assert inq.revision == "0001"


def test_short_data_announcing_more_is_truncated() -> None:
    with pytest.raises(ScsiTruncatedError) as caught:
        parse_standard_inquiry(STANDARD_INQUIRY[:20])
    assert caught.value.needed == 66
    assert caught.value.got == 20


@pytest.mark.parametrize(
    "raw",
    [b"", b"\x00\x00\x05\x12", bytes([0, 0, 5, 0x12, 10]) + bytes(10)],
    ids=["empty", "4-bytes", "complete-but-below-36"],
)
def test_too_short_raises_a_data_error(raw: bytes) -> None:
    with pytest.raises(ScsiDataError, match="standard INQUIRY"):
        parse_standard_inquiry(raw)


@given(st.binary(max_size=100))
def test_arbitrary_bytes_parse_or_raise_a_data_error(raw: bytes) -> None:
    try:
        inq = parse_standard_inquiry(raw)
    except ScsiDataError:
        return
    assert len(inq.vendor) <= 8
    assert len(inq.product) <= 16
