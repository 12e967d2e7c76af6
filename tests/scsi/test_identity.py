"""LU identity: multipath-tools' designator ranking and WWID rendering."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mpath.scsi.errors import NoIdentityError
from mpath.scsi.identity import Identity, designator_wwid, lun_identity, serial_wwid
from mpath.scsi.inquiry import parse_standard_inquiry
from mpath.scsi.vpd import Association, CodeSet, Designator, DesignatorType, parse_designators
from tests.scsi.canned import (
    RIG_SERIAL,
    RIG_WWID,
    STANDARD_INQUIRY,
    VPD_DEVICE_IDENTIFICATION,
)

LU = Association.LOGICAL_UNIT


def naa(hex_value: str, association: int = LU) -> Designator:
    return Designator(CodeSet.BINARY, association, DesignatorType.NAA, bytes.fromhex(hex_value))


def eui64(hex_value: str) -> Designator:
    return Designator(CodeSet.BINARY, LU, DesignatorType.EUI64, bytes.fromhex(hex_value))


def t10(text: bytes) -> Designator:
    return Designator(CodeSet.ASCII, LU, DesignatorType.T10_VENDOR_ID, text)


def scsi_name(text: bytes) -> Designator:
    return Designator(CodeSet.UTF8, LU, DesignatorType.SCSI_NAME_STRING, text)


NAA6 = naa("6001405" + "0" * 24 + "1")
NAA5 = naa("5000c50015ea71ac")
NAA2 = naa("2000001234567890")
NAA3 = naa("3000000100000001")
EUI = eui64("0011223344556677")
T10 = t10(b"LIO-ORG block1          ")
NAME = scsi_name(b"iqn.2026-11.org.example:lun1\x00\x00\x00\x00")


def test_the_rig_lu_is_named_by_its_naa6_designator() -> None:
    identity = lun_identity(parse_designators(VPD_DEVICE_IDENTIFICATION))
    assert identity == Identity(RIG_WWID, "vpd83-naa6")
    assert identity.source == "vpd83-naa6"
    assert str(identity) == "362f461bbfdc43634f4f288adff22bcdd"
    assert len(identity.wwid) == 33 and identity.wwid.startswith("36")


@pytest.mark.parametrize(
    ("designators", "expected_source"),
    [
        ([NAA3, T10, NAA5, NAA6], "vpd83-naa6"),
        ([NAA3, EUI, NAA2, NAA5], "vpd83-naa5"),
        ([NAA3, EUI, NAA2], "vpd83-naa2"),
        ([NAA3, T10, NAME, EUI], "vpd83-eui64"),
        ([NAA3, T10, NAME], "vpd83-scsi-name"),
        ([NAA3, T10], "vpd83-t10"),
        ([NAA3], "vpd83-naa3"),
    ],
    ids=["naa6", "naa5", "naa2", "eui64", "scsi-name", "t10-over-local-naa", "naa3-last"],
)
def test_ranking_follows_multipath_tools(
    designators: list[Designator], expected_source: str
) -> None:
    assert lun_identity(designators).source == expected_source


def test_first_of_equal_rank_wins() -> None:
    first, second = naa("6" + "1" * 31), naa("6" + "2" * 31)
    assert lun_identity([first, second]).wwid == "36" + "1" * 31
    assert lun_identity([second, first]).wwid == "36" + "2" * 31


def test_port_and_device_designators_are_never_the_lu_identity() -> None:
    port_naa = naa("6" + "a" * 31, association=Association.TARGET_PORT)
    device_naa = naa("6" + "b" * 31, association=Association.TARGET_DEVICE)
    assert lun_identity([port_naa, device_naa, NAA5]).source == "vpd83-naa5"


@pytest.mark.parametrize(
    "bad",
    [
        naa("6000"),  # NAA 6 must be 16 bytes
        naa("5000c50015ea71ac00"),  # NAA 5 must be 8
        naa("1000000000000000"),  # NAA 1: no rank
        eui64("00112233"),  # EUI-64 must be 8, 12 or 16
        t10(b"SHORT"),  # T10 vendor ID needs at least the 8-byte vendor
        scsi_name(b"foo.bar"),  # not eui./naa./iqn.
        Designator(CodeSet.BINARY, LU, DesignatorType.MD5_LOGICAL_UNIT, bytes(16)),
        Designator(CodeSet.ASCII, LU, DesignatorType.VENDOR_SPECIFIC, b"anything"),
    ],
    ids=[
        "naa6-short",
        "naa5-long",
        "naa1",
        "eui-short",
        "t10-short",
        "name-prefix",
        "md5",
        "vendor",
    ],
)
def test_malformed_or_unranked_designators_are_skipped(bad: Designator) -> None:
    assert designator_wwid(bad) is None
    assert lun_identity([bad, NAA3]).source == "vpd83-naa3"


@pytest.mark.parametrize(
    ("designator", "wwid"),
    [
        (NAA5, "35000c50015ea71ac"),
        (EUI, "20011223344556677"),
        (t10(b"LIO-ORG block1          "), "1LIO-ORG_block1"),
        (t10(b"VENDOR  PRODUCT   SERIAL  X"), "1VENDOR_PRODUCT_SERIAL_X"),
        (t10(b"  LEADING SPACES"), "1_LEADING_SPACES"),
        (
            t10(b"62f461bbfdc43634f4f288adff22bcdd\x00\x00\x00\x00"),
            "162f461bbfdc43634f4f288adff22bcdd",
        ),
        (
            scsi_name(b"naa.6001405ABCDEF0123456789ABCDEF012\x00\x00"),
            "36001405abcdef0123456789abcdef012",
        ),
        (scsi_name(b"eui.0011223344556677\x00\x00\x00\x00"), "20011223344556677"),
        (NAME, "82026-11.org.example:lun1"),
    ],
    ids=[
        "naa5",
        "eui64",
        "t10",
        "t10-runs",
        "t10-leading",
        "t10-nul",
        "name-naa",
        "name-eui",
        "name-iqn",
    ],
)
def test_wwid_rendering(designator: Designator, wwid: str) -> None:
    rendered = designator_wwid(designator)
    assert rendered is not None
    assert rendered[0] == wwid


def test_scsi_name_naa_matches_the_binary_naa_of_the_same_lu() -> None:
    binary = naa("6001405abcdef0123456789abcdef012")
    named = scsi_name(b"naa.6001405ABCDEF0123456789ABCDEF012")
    assert lun_identity([binary]) == lun_identity([named])


def test_serial_fallback_renders_like_scsi_id() -> None:
    inq = parse_standard_inquiry(STANDARD_INQUIRY)
    identity = lun_identity([], unit_serial=RIG_SERIAL, vendor=inq.vendor, product=inq.product)
    assert identity == Identity("SMPATH_RIG-LUN_MPATH1F2C7DDDCD4F", "vpd80-serial")
    assert identity.source == "vpd80-serial"


def test_serial_fallback_only_when_no_designator_ranks() -> None:
    identity = lun_identity([NAA3], unit_serial="XYZ", vendor="V", product="P")
    assert identity.source == "vpd83-naa3"


def test_serial_wwid_pads_and_cuts_vendor_and_product() -> None:
    assert serial_wwid("S1", "A", "B") == "SA_B_S1"
    assert serial_wwid("S1", "VENDORXYZ", "P" * 20) == "SVENDORXY" + "P" * 16 + "S1"
    assert serial_wwid("  ", "V", "P") is None


def test_no_identity_at_all_is_an_error() -> None:
    with pytest.raises(NoIdentityError, match="no serial given"):
        lun_identity([])
    with pytest.raises(NoIdentityError, match="serial number is blank"):
        vendor_only = Designator(CodeSet.ASCII, LU, DesignatorType.VENDOR_SPECIFIC, b"x")
        lun_identity([vendor_only], unit_serial="")


def test_identity_equality_ignores_the_source() -> None:
    assert Identity("3600", "vpd83-naa6") == Identity("3600", "vpd83-scsi-name")
    assert Identity("3600", "x") != Identity("3601", "x")
    assert sorted([Identity("3b", "a"), Identity("3a", "b")]) == [
        Identity("3a", "b"),
        Identity("3b", "a"),
    ]
    assert len({Identity("3600", "a"), Identity("3600", "b")}) == 1


@given(st.lists(st.sampled_from([NAA6, NAA5, NAA2, NAA3, EUI, T10, NAME]), min_size=1))
def test_choice_is_the_best_ranked_whatever_the_order(designators: list[Designator]) -> None:
    order = [NAA6, NAA5, NAA2, EUI, NAME, T10, NAA3]
    best = min(designators, key=order.index)
    assert lun_identity(designators) == lun_identity([best])
