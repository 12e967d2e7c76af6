"""Block devices as paths: enumeration, grouping and hot-plug watching (pyudev).

A block device (``/dev/sdb``, ``/dev/nvme0n1``, ``/dev/loop0``) is one path to a LUN.
mpath groups such paths exactly as it groups iSCSI paths: by the LUN's identity. Who a
device is (udev's WWN, sysfs, a loop device's backing file) is decided in
:mod:`mpath.sysfs.identity`, below the transports, because the block transport answers
INQUIRY with it; this module lists the host's devices with their identities, groups
them, and follows uevents.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from typing import Any

from mpath.errors import MpathError
from mpath.sysfs.identity import (
    BlockIdentity,
    identity_from_sources,
    read_loop_backing,
    udev_properties,
)
from mpath.sysfs.tree import udev_reader


@dataclass(frozen=True, slots=True)
class BlockDevice:
    """One whole block device of the host, with its identity or why it has none."""

    node: str
    name: str
    size_bytes: int
    identity: BlockIdentity | None
    problem: str | None = None

    def describe(self) -> dict[str, Any]:
        ident = self.identity
        return {
            "node": self.node,
            "name": self.name,
            "size_bytes": self.size_bytes,
            "wwid": ident.wwid if ident else None,
            "source": ident.source if ident else None,
            "vendor": ident.vendor if ident else None,
            "product": ident.product if ident else None,
            "detail": ident.detail if ident else None,
            "problem": self.problem,
        }


def list_block_devices(*, include_empty: bool = False) -> list[BlockDevice]:
    """Every whole block device udev knows (partitions left out), with identities.

    Only sysfs and udev's database are read, and loop devices' status asked: no device
    is opened for I/O. Devices of size 0 (unbound loop devices, empty drives) are
    skipped unless ``include_empty``.
    """
    import pyudev

    found: list[BlockDevice] = []
    context = pyudev.Context()
    for device in context.list_devices(subsystem="block", DEVTYPE="disk"):
        node = device.device_node
        if not node:
            continue
        attribute = udev_reader(device)
        size = int(attribute("size") or 0) * 512
        if size == 0 and not include_empty:
            continue
        name = str(device.sys_name)
        try:
            loop = read_loop_backing(node, attribute) if name.startswith("loop") else None
            udev = udev_properties(device)
            identity = identity_from_sources(name, udev=udev, attribute=attribute, loop=loop)
        except MpathError as exc:
            found.append(BlockDevice(node, name, size, None, str(exc)))
            continue
        found.append(BlockDevice(node, name, size, identity))
    return found


@dataclass(slots=True)
class BlockGroup:
    """Block devices that share one identity: the paths of one multipath device."""

    identity: BlockIdentity
    devices: list[BlockDevice] = field(default_factory=list)


def group_by_identity(devices: Iterable[BlockDevice]) -> list[BlockGroup]:
    """Devices with an identity, grouped by WWID, in the order first seen."""
    groups: dict[str, BlockGroup] = {}
    for device in devices:
        if device.identity is None:
            continue
        group = groups.setdefault(device.identity.wwid, BlockGroup(device.identity))
        group.devices.append(device)
    return list(groups.values())


# -- hot plug ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BlockEvent:
    """One uevent of a block device: ``add``, ``remove``, ``change`` (a loop device
    bound or unbound, a medium changed), ``move``."""

    action: str
    name: str
    node: str | None
    devtype: str | None


def udev_running() -> bool:
    """udevd is running: its (processed) events are the ones to follow."""
    return os.path.exists("/run/udev/control")


class BlockWatcher:
    """Block device uevents as they happen, on the running event loop.

    Subscribes at construction (so nothing that happens afterwards is missed), then
    yields :class:`BlockEvent` s: ``async for event in watcher``. It follows udevd's
    events when udevd runs (device nodes and properties are ready by then), else the
    kernel's own (containers and minimal hosts have no udevd). The netlink socket is
    watched with ``add_reader``: no thread, no polling. Close it (or use it as a
    context manager) to stop.
    """

    def __init__(self) -> None:
        import pyudev

        self._loop = asyncio.get_running_loop()
        context = pyudev.Context()
        self.source = "udev" if udev_running() else "kernel"
        self._monitor = pyudev.Monitor.from_netlink(context, source=self.source)
        self._monitor.filter_by("block")
        self._monitor.start()
        self._queue: asyncio.Queue[BlockEvent] = asyncio.Queue()
        self._fd = self._monitor.fileno()
        self._loop.add_reader(self._fd, self._readable)
        self._closed = False

    def _readable(self) -> None:
        while True:
            device = self._monitor.poll(0)
            if device is None:
                return
            self._queue.put_nowait(
                BlockEvent(
                    action=str(device.action),
                    name=str(device.sys_name),
                    node=device.device_node,
                    devtype=device.device_type,
                )
            )

    async def next_event(self) -> BlockEvent:
        """The next event (unbounded: bound it with ``asyncio.wait_for``)."""
        return await self._queue.get()

    def __aiter__(self) -> AsyncIterator[BlockEvent]:
        return self

    async def __anext__(self) -> BlockEvent:
        if self._closed:
            raise StopAsyncIteration
        return await self.next_event()

    def close(self) -> None:
        """Stop watching; safe twice."""
        if not self._closed:
            self._closed = True
            self._loop.remove_reader(self._fd)

    def __enter__(self) -> BlockWatcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
