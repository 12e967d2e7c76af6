"""A LUN that is not a disk is refused saying what it is (tgt's LUN 0, unmapped LUNs)."""

from __future__ import annotations

from mpath.scsi.inquiry import parse_standard_inquiry
from mpath.scsi.probe import not_a_disk

VENDOR, PRODUCT = b"IET     ", b"Controller      "


def _inquiry(byte0: int, vendor: bytes = VENDOR, product: bytes = PRODUCT) -> bytes:
    return bytes([byte0, 0, 5, 2, 91, 0, 0, 2]) + vendor + product + b"0001" + bytes(60)


def test_a_disk_is_accepted() -> None:
    assert not_a_disk(parse_standard_inquiry(_inquiry(0x00))) is None


def test_tgts_controller_lun_says_what_it_is() -> None:
    assert not_a_disk(parse_standard_inquiry(_inquiry(0x0C))) == (
        "not a disk: the LUN is a storage array controller (IET Controller), SCSI device "
        "type 0x0c; 'mpath discover PORTAL' lists the target's disks"
    )


def test_an_unknown_type_and_an_unmapped_lun() -> None:
    assert "the LUN is a device (IET Controller), SCSI device type 0x13" in str(
        not_a_disk(parse_standard_inquiry(_inquiry(0x13)))
    )
    unmapped = not_a_disk(parse_standard_inquiry(_inquiry(0x7F, b" " * 8, b" " * 16)))
    assert unmapped is not None
    assert unmapped.startswith("no logical unit at this LUN (peripheral qualifier 3)")
