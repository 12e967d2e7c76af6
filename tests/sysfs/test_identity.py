"""Block device identity: the table of sources on fake udev/sysfs data, and what is
not a block device."""

from __future__ import annotations

import os

import pytest

from mpath.scsi.identity import lun_identity
from mpath.scsi.vpd import DesignatorType
from mpath.sysfs.identity import (
    BlockIdentityError,
    LoopBacking,
    NotABlockDeviceError,
    designator_from_text,
    identify,
    identity_from_sources,
)

NAA6 = "600140512345678901234567890abcde"


def _nothing(name: str) -> str | None:
    """A sysfs folder without the attribute asked for."""
    return None


def _wwid(text: str) -> str:
    return lun_identity([designator_from_text(text)]).wwid


@pytest.mark.parametrize(
    ("text", "wwid", "kind"),
    [
        (f"0x{NAA6}", f"3{NAA6}", DesignatorType.NAA),
        ("naa.5000C500A1B2C3D4", "35000c500a1b2c3d4", DesignatorType.NAA),
        (NAA6, f"3{NAA6}", DesignatorType.NAA),
        ("eui.0025385b71b01234", "20025385b71b01234", DesignatorType.EUI64),
        ("t10.ATA     QEMU HARDDISK                           QM00001", None, None),
        ("BHYVE-1234 5678", "1LINUX_BHYVE-1234_5678", DesignatorType.T10_VENDOR_ID),
        # hex of the wrong length for its NAA type is not an NAA
        ("0x6001405123", "1LINUX_0x6001405123", DesignatorType.T10_VENDOR_ID),
    ],
)
def test_textual_identities_become_the_designators_multipath_would_read(
    text: str, wwid: str | None, kind: DesignatorType | None
) -> None:
    designator = designator_from_text(text)
    if kind is not None:
        assert designator.designator_type == kind
    if wwid is not None:
        assert _wwid(text) == wwid
    else:  # t10.: vendor field, then the rest, spaces folded as multipath-tools does
        assert _wwid(text) == "1ATA_QEMU_HARDDISK_QM00001"


def test_udev_wwn_with_extension_wins_over_the_short_wwn_and_the_serial() -> None:
    identity = identity_from_sources(
        "sdb",
        udev={
            "ID_WWN": "0x6001405123456789",
            "ID_WWN_WITH_EXTENSION": f"0x{NAA6}",
            "ID_SERIAL": "something-else",
            "ID_VENDOR": "LIO-ORG",
            "ID_MODEL": "disk",
        },
        attribute={"device/wwid": "naa.5000c500a1b2c3d4"}.get,
    )
    assert identity.wwid == f"3{NAA6}"
    assert identity.source == "udev ID_WWN_WITH_EXTENSION"
    assert (identity.vendor, identity.product) == ("LIO-ORG", "disk")


def test_a_scsi_disks_udev_serial_is_scsi_ids_wwid() -> None:
    identity = identity_from_sources(
        "sdc", udev={"ID_BUS": "scsi", "ID_SERIAL": f"3{NAA6}"}, attribute=_nothing
    )
    assert identity.wwid == f"3{NAA6}"
    assert identity.source == "udev ID_SERIAL"


def test_without_udev_sysfs_wwid_gives_the_identity_and_device_names_vendor() -> None:
    identity = identity_from_sources(
        "sdd",
        udev={},
        attribute={
            "device/wwid": "naa.5000c500a1b2c3d4",
            "device/vendor": "SEAGATE ",
            "device/model": "ST4000NM0023    ",
        }.get,
    )
    assert identity.wwid == "35000c500a1b2c3d4"
    assert identity.source == "sysfs device/wwid"
    assert (identity.vendor, identity.product) == ("SEAGATE", "ST4000NM0023")


def test_nvme_namespace_wwid() -> None:
    identity = identity_from_sources(
        "nvme0n1", udev={}, attribute={"wwid": "eui.0025385b71b01234"}.get
    )
    assert identity.wwid == "20025385b71b01234"


def test_a_loop_device_is_its_backing_files_device_inode_and_window() -> None:
    whole = LoopBacking("/srv/a.img", os.makedev(8, 3), 0x12D687)
    window = LoopBacking("/srv/a.img", os.makedev(8, 3), 0x12D687, offset=1 << 20)
    first = identity_from_sources("loop0", udev={}, attribute=_nothing, loop=whole)
    again = identity_from_sources("loop5", udev={}, attribute=_nothing, loop=whole)
    other = identity_from_sources("loop1", udev={}, attribute=_nothing, loop=window)
    assert first.wwid == again.wwid == "1MPATH_loopfile-8:3-12d687"
    assert other.wwid == "1MPATH_loopfile-8:3-12d687+100000"
    assert first.source == "loop backing file"
    assert "/srv/a.img (device 8:3, inode 1234567)" in first.describe()
    assert (first.vendor, first.product) == ("LINUX", "LOOP")


def test_a_device_without_any_identity_is_refused() -> None:
    with pytest.raises(BlockIdentityError, match="no usable identity"):
        identity_from_sources("ram0", udev={}, attribute=_nothing)
    with pytest.raises(BlockIdentityError, match="loop device with no backing file"):
        identity_from_sources("loop3", udev={}, attribute=_nothing)


def test_things_that_are_not_block_devices_are_bad_input() -> None:
    with pytest.raises(NotABlockDeviceError, match="not a block device"):
        identify("/dev/null")
    with pytest.raises(NotABlockDeviceError, match="no such device node"):
        identify("/dev/mpath-test-no-such-node")


# -- real loop devices -------------------------------------------------------------------
