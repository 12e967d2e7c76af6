"""Block device identity, enumeration and watching: the table on fake udev/sysfs data,
then real loop devices (root)."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from mpath.discovery.block import (
    BlockEvent,
    BlockIdentityError,
    BlockWatcher,
    LoopBacking,
    NotABlockDeviceError,
    designator_from_text,
    group_by_identity,
    identify,
    identity_from_sources,
    list_block_devices,
)
from mpath.scsi.identity import lun_identity
from mpath.scsi.vpd import DesignatorType
from tests.discovery.loops import LoopFactory, make_image

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


def test_two_loop_devices_over_one_file_share_an_identity_and_group_as_one_device(
    loop_devices: LoopFactory, tmp_path: Path
) -> None:
    image = make_image(tmp_path, "lun.img")
    other_image = make_image(tmp_path, "other.img")
    first, second = loop_devices(image), loop_devices(image)
    third = loop_devices(other_image)
    one, two, three = identify(first), identify(second), identify(third)
    assert one.wwid == two.wwid
    assert three.wwid != one.wwid
    info = os.stat(image)
    assert one.wwid == f"1MPATH_loopfile-{os.major(info.st_dev):x}:" + (
        f"{os.minor(info.st_dev):x}-{info.st_ino:x}"
    )
    assert str(image) in one.describe()
    groups = {g.identity.wwid: [d.node for d in g.devices] for g in group_by_identity(
        list_block_devices()
    )}  # fmt: skip
    assert groups[one.wwid] == sorted([first, second], key=lambda n: int(n[9:]))
    assert groups[three.wwid] == [third]


def test_a_window_at_another_offset_of_the_same_file_is_another_identity(
    loop_devices: LoopFactory, tmp_path: Path
) -> None:
    image = make_image(tmp_path, "lun.img")
    whole = loop_devices(image)
    window = loop_devices(image, "--offset", str(1024 * 1024))
    assert identify(whole).wwid != identify(window).wwid
    assert identify(window).wwid.endswith("+100000")


def test_watching_sees_a_loop_device_being_bound(loop_devices: LoopFactory, tmp_path: Path) -> None:
    image = make_image(tmp_path, "lun.img")

    async def scenario() -> BlockEvent:
        with BlockWatcher() as watcher:
            node = await asyncio.to_thread(loop_devices, image)
            event = await asyncio.wait_for(watcher.next_event(), 10)
            while event.node != node:
                event = await asyncio.wait_for(watcher.next_event(), 10)
            return event

    event = asyncio.run(scenario())
    assert event.action in ("add", "change")
    assert event.devtype == "disk"
