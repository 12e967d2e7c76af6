"""Who a block device is: its LUN identity from udev, sysfs or a loop device's backing file.

A block device (``/dev/sdb``, ``/dev/nvme0n1``, ``/dev/loop0``) is one path to a LUN.
mpath groups such paths exactly as it groups iSCSI paths: by the LUN's identity, a WWID
spelled as :mod:`mpath.scsi.identity` spells VPD 0x83 designators. The kernel has
already read that identity for real SCSI and NVMe devices, so it is taken from udev and
sysfs (through the one reader, :mod:`mpath.sysfs.tree`) rather than asked again; the
block transport (:mod:`mpath.transports.block`) then answers INQUIRY with a designator
built from it, and the filter layer's usual identity check applies unchanged.

Where the identity comes from, first match wins:

=====================================  ==========================================
source                                 example
=====================================  ==========================================
udev ``ID_WWN_WITH_EXTENSION``         ``0x600140512345678...`` (NAA 6, SCSI)
udev ``ID_WWN``                        ``0x5000c500a1b2c3d4`` (NAA 5, ATA/SAS)
udev ``ID_SERIAL`` of a SCSI disk      ``3600140512345678...`` (scsi_id's WWID)
sysfs ``device/wwid`` (SCSI)           ``naa.600140512345678...``
sysfs ``wwid`` (NVMe namespace)        ``eui.0025385b71b01234``
sysfs ``dm/uuid`` (device-mapper)      ``LVM-abc...``
udev ``ID_SERIAL`` (others)            ``QEMU_HARDDISK_QM00001``
sysfs ``serial`` (virtio)              ``BHYVE-1234``
loop device: its backing file          device 8:3, inode 1234567, offset 0
=====================================  ==========================================

Hex identities become NAA or EUI-64 designators, so a SCSI disk gets the same WWID
under mpath as under multipathd. Anything else becomes a T10 vendor ID designator
(vendor ``LINUX``) holding the text, which identity renders as ``1LINUX_<text>``.

**Loop devices** have no identity of their own: what makes two of them the same "LUN"
is the file behind them. The kernel records that file's device and inode
(``LOOP_GET_STATUS64``), which stay right even if the file is renamed or was opened
through another path; the offset and size limit are part of the identity too (two
windows on one file hold different data). Two loop devices over one file therefore
share an identity (``1MPATH_loopfile-8:3-12d687``), and over different files they
differ. Partitions are refused: a partition is not a LUN, and all partitions of a disk
would share the disk's identity.
"""

from __future__ import annotations

import fcntl
import os
import re
import stat
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from mpath.errors import MpathError, UsageError
from mpath.scsi.identity import lun_identity
from mpath.scsi.vpd import Association, CodeSet, Designator, DesignatorType
from mpath.sysfs.tree import DEFAULT_ROOT, AttributeReader, sysfs_reader, udev_reader

#: ``LOOP_GET_STATUS64`` (linux/loop.h) and the head of ``struct loop_info64``:
#: lo_device, lo_inode, lo_rdevice, lo_offset, lo_sizelimit (all __u64), lo_number.
LOOP_GET_STATUS64: Final = 0x4C05
_LOOP_INFO64: Final = struct.Struct("=QQQQQI")
_LOOP_INFO64_SIZE: Final = 232
#: The T10 vendor field (8 bytes) of the designators synthesised here.
VENDOR_LINUX: Final = "LINUX"
VENDOR_MPATH: Final = "MPATH"
_HEX: Final = re.compile(r"^[0-9a-fA-F]+$")
_NAA_LENGTHS: Final = {2: 8, 3: 8, 5: 8, 6: 16}
_EUI64_LENGTHS: Final = frozenset({8, 12, 16})


class BlockIdentityError(MpathError):
    """A block device has no identity mpath can trust (exit 1: the device, not the
    command line, is the problem)."""

    def __init__(self, node: str, reason: str) -> None:
        super().__init__(f"{node}: no usable identity: {reason}")
        self.node = node
        self.reason = reason


class NotABlockDeviceError(UsageError):
    """The path given is not a block device node (exit 2)."""

    def __init__(self, node: str, reason: str) -> None:
        super().__init__(f"{node}: {reason}")
        self.node = node


@dataclass(frozen=True, slots=True)
class LoopBacking:
    """What the kernel says is behind a loop device."""

    file: str
    device: int
    inode: int
    offset: int = 0
    size_limit: int = 0

    def describe(self) -> str:
        text = (
            f"{self.file} (device {os.major(self.device)}:"
            f"{os.minor(self.device)}, inode {self.inode}"
        )
        if self.offset:
            text += f", offset {self.offset}"
        if self.size_limit:
            text += f", size limit {self.size_limit}"
        return text + ")"

    def identifier(self) -> str:
        """The stable text of the identity: the file's device and inode (hex), plus
        the window on it when not the whole file."""
        text = f"loopfile-{os.major(self.device):x}:{os.minor(self.device):x}-{self.inode:x}"
        if self.offset:
            text += f"+{self.offset:x}"
        if self.size_limit:
            text += f"/{self.size_limit:x}"
        return text


@dataclass(frozen=True, slots=True)
class BlockIdentity:
    """Who a block device says it is, in the form the block transport reports.

    ``wwid`` is what :func:`mpath.scsi.identity.lun_identity` makes of ``designator``
    (so it equals what ``probe_lun`` reads back through the transport); ``source``
    names where it came from; ``detail`` says it in words for error messages.
    """

    wwid: str
    source: str
    designator: Designator
    vendor: str
    product: str
    serial: str
    detail: str

    def describe(self) -> str:
        return f"{self.wwid} ({self.detail})"


def _designator(kind: DesignatorType, value: bytes, code_set: CodeSet) -> Designator:
    return Designator(
        code_set=int(code_set),
        association=int(Association.LOGICAL_UNIT),
        designator_type=int(kind),
        value=value,
    )


def t10_designator(vendor: str, text: str) -> Designator:
    """A T10 vendor ID designator: 8 bytes of vendor, then the identifying text."""
    raw = vendor.encode("ascii", "replace")[:8].ljust(8) + text.encode("ascii", "replace")
    return _designator(DesignatorType.T10_VENDOR_ID, raw[:251], CodeSet.ASCII)


def designator_from_text(text: str) -> Designator:
    """The VPD 0x83 designator a textual identity stands for.

    ``0x``/``naa.``-prefixed or bare hex of an NAA's length and type becomes an NAA
    designator; ``eui.`` hex an EUI-64 one; ``t10.`` text a T10 vendor ID; anything
    else a T10 vendor ID of vendor ``LINUX`` holding the text as is.
    """
    raw = text.strip()
    lowered = raw.lower()
    for prefix in ("0x", "naa."):
        if lowered.startswith(prefix):
            naa = _naa(raw[len(prefix) :])
            if naa is not None:
                return naa
    if lowered.startswith("eui."):
        digits = raw[4:]
        if _HEX.match(digits) and len(digits) % 2 == 0 and len(digits) // 2 in _EUI64_LENGTHS:
            return _designator(DesignatorType.EUI64, bytes.fromhex(digits), CodeSet.BINARY)
    if lowered.startswith("t10.") and len(raw) > 4 + 8:
        return t10_designator(raw[4:12], raw[12:])
    naa = _naa(raw)
    if naa is not None:
        return naa
    return t10_designator(VENDOR_LINUX, raw)


def _naa(digits: str) -> Designator | None:
    if not digits or not _HEX.match(digits) or len(digits) % 2:
        return None
    value = bytes.fromhex(digits)
    if _NAA_LENGTHS.get(value[0] >> 4) != len(value):
        return None
    return _designator(DesignatorType.NAA, value, CodeSet.BINARY)


def _scsi_id_designator(serial: str) -> Designator | None:
    """udev's ``ID_SERIAL`` of a SCSI disk is scsi_id's WWID: a type digit + value."""
    if len(serial) < 2:
        return None
    kind, rest = serial[0], serial[1:]
    if kind == "3":
        return _naa(rest)
    if kind == "2" and _HEX.match(rest) and len(rest) // 2 in _EUI64_LENGTHS:
        return _designator(DesignatorType.EUI64, bytes.fromhex(rest), CodeSet.BINARY)
    return None


def identity_from_sources(
    name: str,
    *,
    udev: Mapping[str, str],
    attribute: AttributeReader,
    loop: LoopBacking | None = None,
) -> BlockIdentity:
    """Choose a device's identity from what udev and sysfs say (the table above).

    ``udev`` holds the device's udev properties (empty without udevd), ``attribute``
    reads a sysfs attribute relative to the device's folder (None when absent), and
    ``loop`` is the backing file of a loop device. Raises :class:`BlockIdentityError`.
    """
    node = udev.get("DEVNAME") or f"/dev/{name}"
    vendor = (udev.get("ID_VENDOR") or attribute("device/vendor") or "").strip()
    product = (udev.get("ID_MODEL") or attribute("device/model") or "").strip()
    serial = (
        udev.get("ID_SCSI_SERIAL")
        or udev.get("ID_SERIAL_SHORT")
        or attribute("device/serial")
        or attribute("serial")
        or ""
    ).strip()
    found: tuple[str, Designator, str] | None = None
    for key in ("ID_WWN_WITH_EXTENSION", "ID_WWN"):
        value = udev.get(key)
        if value:
            designator = designator_from_text(value)
            if designator.designator_type != DesignatorType.T10_VENDOR_ID:
                found = (f"udev {key}", designator, f"{key}={value}")
                break
    if found is None and udev.get("ID_BUS") == "scsi" and udev.get("ID_SERIAL"):
        scsi = _scsi_id_designator(udev["ID_SERIAL"])
        if scsi is not None:
            found = ("udev ID_SERIAL", scsi, f"ID_SERIAL={udev['ID_SERIAL']}")
    if found is None:
        for attr in ("device/wwid", "wwid", "dm/uuid"):
            value = attribute(attr)
            if value:
                found = (f"sysfs {attr}", designator_from_text(value), f"{attr} {value}")
                break
    if found is None and loop is not None:
        found = (
            "loop backing file",
            t10_designator(VENDOR_MPATH, loop.identifier()),
            loop.describe(),
        )
        vendor, product = vendor or VENDOR_LINUX, product or "LOOP"
        serial = serial or loop.identifier()
    if found is None and udev.get("ID_SERIAL"):
        value = udev["ID_SERIAL"]
        found = ("udev ID_SERIAL", t10_designator(VENDOR_LINUX, value), f"ID_SERIAL={value}")
    if found is None and serial:
        found = ("sysfs serial", t10_designator(VENDOR_LINUX, serial), f"serial {serial}")
    if found is None:
        reason = (
            "a loop device with no backing file"
            if name.startswith("loop")
            else "udev and sysfs give no WWN, WWID or serial number"
        )
        raise BlockIdentityError(node, reason)
    source, designator, detail = found
    try:
        wwid = lun_identity([designator]).wwid
    except MpathError as exc:
        raise BlockIdentityError(node, f"{detail}: {exc}") from None
    return BlockIdentity(
        wwid=wwid,
        source=source,
        designator=designator,
        vendor=vendor or VENDOR_LINUX,
        product=product or re.sub(r"\d+$", "", name).upper() or "BLOCK",
        serial=serial or wwid,
        detail=f"{source}: {detail}",
    )


# -- the real system ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DeviceNumber:
    """A block device node resolved to its kernel device."""

    node: str
    major: int
    minor: int

    @property
    def sys_path(self) -> Path:
        return DEFAULT_ROOT / "dev" / "block" / f"{self.major}:{self.minor}"


def resolve_node(node: str) -> DeviceNumber:
    """``node`` as a kernel block device; :class:`NotABlockDeviceError` otherwise."""
    try:
        info = os.stat(node)
    except FileNotFoundError:
        raise NotABlockDeviceError(node, "no such device node") from None
    except OSError as exc:
        raise NotABlockDeviceError(node, f"cannot stat: {exc.strerror}") from None
    if not stat.S_ISBLK(info.st_mode):
        raise NotABlockDeviceError(node, "not a block device")
    return DeviceNumber(node, os.major(info.st_rdev), os.minor(info.st_rdev))


def udev_device(device: DeviceNumber) -> Any | None:
    """pyudev's ``Device`` for this device number; None when udev cannot give one."""
    import pyudev

    try:
        context = pyudev.Context()
        return pyudev.Devices.from_device_number(
            context, "block", os.makedev(device.major, device.minor)
        )
    except (pyudev.DeviceNotFoundError, OSError, ValueError):
        return None


def udev_properties(found: Any) -> dict[str, str]:
    """udev's properties of a pyudev ``Device`` (from its database when udevd runs)."""
    return {str(k): str(v) for k, v in found.properties.items()}


def read_loop_backing(node: str, attribute: AttributeReader) -> LoopBacking | None:
    """The loop device's backing file, device, inode and window; None when unbound.

    The kernel's record (``LOOP_GET_STATUS64``) is preferred; without access to the
    node, the sysfs ``loop/backing_file`` is stat'ed instead.
    """
    file = attribute("loop/backing_file")
    if not file:
        return None
    offset = int(attribute("loop/offset") or 0)
    size_limit = int(attribute("loop/sizelimit") or 0)
    try:
        fd = os.open(node, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError:
        fd = -1
    if fd >= 0:
        try:
            raw = fcntl.ioctl(fd, LOOP_GET_STATUS64, bytes(_LOOP_INFO64_SIZE))
            device, inode, _rdev, offset, size_limit, _number = _LOOP_INFO64.unpack_from(raw)
            return LoopBacking(file, device, inode, offset, size_limit)
        except OSError:
            pass  # unbound meanwhile, or no permission: fall back to the path
        finally:
            os.close(fd)
    path = file.removesuffix(" (deleted)")
    try:
        info = os.stat(path)
    except OSError:
        return None
    return LoopBacking(file, info.st_dev, info.st_ino, offset, size_limit)


def identify(node: str) -> BlockIdentity:
    """The identity of the block device at ``node`` (udev, sysfs, loop backing file).

    Raises :class:`NotABlockDeviceError` (exit 2) for something that is not a whole
    block device, :class:`BlockIdentityError` (exit 1) when it has no identity.
    """
    device = resolve_node(node)
    found = udev_device(device)
    attribute = udev_reader(found) if found is not None else sysfs_reader(device.sys_path)
    if attribute("partition") is not None:
        raise NotABlockDeviceError(
            node, "is a partition; give the whole device (a partition is not a LUN)"
        )
    if found is not None:
        name = str(found.sys_name)
    else:
        try:
            name = device.sys_path.resolve().name
        except OSError:
            name = os.path.basename(node)
    loop = read_loop_backing(node, attribute) if name.startswith("loop") else None
    udev = udev_properties(found) if found is not None else {}
    udev.setdefault("DEVNAME", node)
    return identity_from_sources(name, udev=udev, attribute=attribute, loop=loop)
