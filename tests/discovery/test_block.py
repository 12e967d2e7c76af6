"""Block device enumeration, grouping and watching on real loop devices (root)."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from mpath.discovery.block import (
    BlockEvent,
    BlockWatcher,
    group_by_identity,
    list_block_devices,
)
from mpath.sysfs.identity import identify
from tests.discovery.loops import LoopFactory, make_image


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


def test_udev_and_sysfs_readers_read_the_same_attributes(
    loop_devices: LoopFactory, tmp_path: Path
) -> None:
    """A pyudev Device in hand is read through udev_reader; it must agree with the
    plain sysfs reader on every attribute identity and enumeration use."""
    import pyudev

    from mpath.sysfs.identity import resolve_node
    from mpath.sysfs.tree import sysfs_reader, udev_reader

    node = loop_devices(make_image(tmp_path, "same.img", 4 * 1024 * 1024))
    number = resolve_node(node)
    device = pyudev.Devices.from_device_number(
        pyudev.Context(), "block", os.makedev(number.major, number.minor)
    )
    through_udev, through_sysfs = udev_reader(device), sysfs_reader(number.sys_path)
    for name in ("size", "loop/backing_file", "loop/offset", "partition", "device/wwid"):
        assert through_udev(name) == through_sysfs(name), name
    assert through_udev("size") == str(4 * 1024 * 1024 // 512)
    assert through_udev("partition") is None
