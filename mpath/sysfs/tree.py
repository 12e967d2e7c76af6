"""What the kernel's sysfs says about block devices and iSCSI sessions: the one reader.

Every sysfs attribute mpath reads goes through :func:`sysfs_reader` (bounded, tolerant:
a missing or odd attribute reads as None), whether for ``mpath prio`` (health from
``device/state``, speed from the I/O counters in ``stat``, peers by ``device/wwid``),
``mpath dm-config`` (a path's ``sdX`` name and SCSI ``H:C:T:L``, found through
``/sys/class/iscsi_session``), block identity (:mod:`mpath.sysfs.identity`) or the block
transport's queue limits. Where a pyudev ``Device`` is already in hand,
:func:`udev_reader` reads the same attributes through it instead.

The root is a parameter (default ``$MPATH_SYSFS_ROOT``, else ``/sys``) so all of this
is tested against a fake tree: the build machines' kernel has no SCSI layer. Only
names already checked by :func:`valid_block_name` are ever joined to the root.

This sits below the transports (which read queue limits and identities through it),
so it knows nothing of them: an iSCSI path is anything with a host, port, target and
LUN (:class:`IscsiAddress`).

The layout relied upon (as on any Linux host with open-iscsi)::

    block/sdb -> ../devices/platform/host3/session1/target3:0:0/3:0:0:1/block/sdb
    block/sdb/{dev,stat}            "8:16", I/O counters
    block/sdb/device -> ../../../3:0:0:1   (state, wwid, vendor, model)
    dev/block/8:16 -> ../../devices/.../block/sdb
    class/iscsi_session/session1/{targetname,device -> .../host3/session1}
    class/iscsi_connection/connection1:0/{persistent_address,persistent_port}
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

SYSFS_ENV = "MPATH_SYSFS_ROOT"
#: Where the kernel mounts sysfs.
DEFAULT_ROOT = Path("/sys")
SECTOR = 512
#: Below this many bytes moved, the counters say too little about a path's speed.
MIN_STAT_BYTES = 1024 * 1024
_BLOCK_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+!-]{0,63}")
_HBTL = re.compile(r"\d+:\d+:\d+:\d+")
_DEVNUM = re.compile(r"(\d{1,5}):(\d{1,8})")
_MAX_ATTRIBUTE = 4096

#: Reads one attribute relative to a device's sysfs folder; None when absent or empty.
AttributeReader = Callable[[str], str | None]


class IscsiAddress(Protocol):
    """Where an iSCSI path goes (``mpath.transports.urls.IscsiUrl`` is one)."""

    @property
    def host(self) -> str: ...
    @property
    def port(self) -> int: ...
    @property
    def target(self) -> str: ...
    @property
    def lun(self) -> int: ...


def read_attribute(path: Path) -> str | None:
    """One sysfs attribute, stripped: at most a page, undecodable bytes replaced, None
    when it is missing, unreadable or empty (sysfs reads fail in odd ways: EIO from a
    gone device, EINVAL from a write-only attribute)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            text = handle.read(_MAX_ATTRIBUTE).strip()
    except OSError:
        return None
    return text or None


def sysfs_reader(folder: Path) -> AttributeReader:
    """Attributes of one device, by name relative to its sysfs ``folder``."""

    def read(name: str) -> str | None:
        return read_attribute(folder / name)

    return read


def udev_reader(device: Any) -> AttributeReader:
    """Attributes of a pyudev ``Device`` already in hand (enumeration, uevents).

    libudev reads the same files, relative to the device's own sysfs path, and caches
    them for the device's lifetime; going through it avoids a second path to the same
    attribute and keeps the value the rest of that device's record was read with.
    """
    attributes = device.attributes

    def read(name: str) -> str | None:
        try:
            raw = attributes.get(name)
        except (OSError, KeyError, ValueError):
            return None
        if raw is None:
            return None
        text = (raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)).strip()
        return text[:_MAX_ATTRIBUTE] or None

    return read


def valid_block_name(name: str) -> bool:
    """A kernel block-device name: no '/', no '..', nothing a path could escape with."""
    return bool(_BLOCK_NAME.fullmatch(name)) and ".." not in name


def parse_devnum(text: str) -> tuple[int, int] | None:
    match = _DEVNUM.fullmatch(text)
    return (int(match.group(1)), int(match.group(2))) if match else None


def multipath_wwid(sysfs_wwid: str) -> str:
    """The kernel's ``device/wwid`` in multipath-tools' spelling.

    The kernel writes the VPD 0x83 designator as ``naa.6001405...``, ``eui.…`` or
    ``t10.…``; multipath (through udev's scsi_id) and mpath write the designator type
    digit first: ``36001405...``, ``2…``, ``1…``.
    """
    text = sysfs_wwid.strip()
    for prefix, digit in (("naa.", "3"), ("eui.", "2"), ("t10.", "1")):
        if text.lower().startswith(prefix):
            body = text[len(prefix) :]
            return digit + (body.lower() if digit != "1" else body)
    return text


@dataclass(frozen=True, slots=True)
class BlockStat:
    """The I/O counters of ``/sys/block/NAME/stat`` that matter for speed."""

    ios: int
    sectors: int
    ticks_ms: int
    io_ticks_ms: int

    @property
    def mb_per_s(self) -> float | None:
        """Throughput while busy: bytes moved / time the device had I/O in flight."""
        moved = self.sectors * SECTOR
        if self.io_ticks_ms <= 0 or moved < MIN_STAT_BYTES:
            return None
        return moved / (self.io_ticks_ms / 1000) / 1e6

    @property
    def latency_ms(self) -> float | None:
        """Mean time an I/O spent queued and in service."""
        return self.ticks_ms / self.ios if self.ios > 0 and self.ticks_ms > 0 else None


def parse_stat(text: str) -> BlockStat | None:
    """``/sys/block/NAME/stat`` (11, 15 or 17 fields; see the kernel's
    Documentation/block/stat.rst), or None when it is not that."""
    fields = text.split()
    if len(fields) < 11 or not all(f.isdigit() for f in fields):
        return None
    numbers = [int(f) for f in fields]
    return BlockStat(
        ios=numbers[0] + numbers[4],
        sectors=numbers[2] + numbers[6],
        ticks_ms=numbers[3] + numbers[7],
        io_ticks_ms=numbers[9],
    )


_SESSION = re.compile(r"session(\d+)")


@dataclass(frozen=True, slots=True)
class IscsiSession:
    """The open-iscsi session a SCSI disk belongs to, as the kernel names it.

    ``name`` is the kernel's (``session3``, what ``iscsiadm -m session -r 3`` takes);
    ``address`` and ``port`` are the first connection's persistent portal (the one
    open-iscsi logged in to, kept across reconnects), None when it has none yet.
    """

    name: str
    target: str | None
    address: str | None
    port: int | None

    def describe(self) -> dict[str, Any]:
        """JSON-able form (``mpath show --json``'s ``iscsi_session``)."""
        return {"name": self.name, "target": self.target, "address": self.address,
                "port": self.port}  # fmt: skip

    def __str__(self) -> str:
        portal = f"{self.address}:{self.port}" if self.address else "no portal"
        return f"{self.name} {self.target or '?'} {portal}"


class Sysfs:
    """Reads one sysfs tree (the real one, or a fake one in tests)."""

    def __init__(
        self, root: Path | str | None = None, environ: Mapping[str, str] | None = None
    ) -> None:
        env = os.environ if environ is None else environ
        self.root = Path(root if root is not None else env.get(SYSFS_ENV) or DEFAULT_ROOT)

    def _block(self, name: str) -> Path:
        if not valid_block_name(name):
            raise ValueError(f"not a block device name: {name!r}")
        return self.root / "block" / name

    # -- block devices -------------------------------------------------------------------

    def exists(self, name: str) -> bool:
        return valid_block_name(name) and self._block(name).is_dir()

    def block_devices(self) -> list[str]:
        try:
            names = os.listdir(self.root / "block")
        except OSError:
            return []
        return sorted(n for n in names if valid_block_name(n))

    def name_of_devnum(self, major: int, minor: int) -> str | None:
        """The block device with this number (``/sys/dev/block/MAJ:MIN``)."""
        link = self.root / "dev" / "block" / f"{major}:{minor}"
        try:
            name = Path(os.path.realpath(link)).name if link.exists() else None
        except OSError:
            return None
        return name if name and self.exists(name) else None

    def devnum(self, name: str) -> str | None:
        text = read_attribute(self._block(name) / "dev")
        return text if text and parse_devnum(text) else None

    def state(self, name: str) -> str | None:
        """The SCSI device state (``running``, ``offline``, ``blocked``...), if SCSI."""
        return read_attribute(self._block(name) / "device" / "state")

    def wwid(self, name: str) -> str | None:
        text = read_attribute(self._block(name) / "device" / "wwid")
        return multipath_wwid(text) if text else None

    def inquiry(self, name: str) -> tuple[str | None, str | None]:
        """INQUIRY vendor and model as the kernel cached them."""
        device = self._block(name) / "device"
        return read_attribute(device / "vendor"), read_attribute(device / "model")

    def stat(self, name: str) -> BlockStat | None:
        text = read_attribute(self._block(name) / "stat")
        return parse_stat(text) if text else None

    def io_error_ratio(self, name: str) -> float | None:
        """Failed commands over all commands the SCSI midlayer sent (``ioerr_cnt`` /
        ``iorequest_cnt``, both hexadecimal), or None when not SCSI."""
        device = self._block(name) / "device"
        counts = []
        for attribute in ("ioerr_cnt", "iorequest_cnt"):
            text = read_attribute(device / attribute)
            try:
                counts.append(int(text, 0) if text else None)
            except ValueError:
                counts.append(None)
        errors, requests = counts
        if errors is None or not requests:
            return None
        return min(1.0, errors / requests)

    def hbtl(self, name: str) -> str | None:
        """The SCSI address ``host:channel:target:lun`` (what weightedpath calls hbtl)."""
        device = self._block(name) / "device"
        try:
            target = Path(os.path.realpath(device)).name if device.exists() else ""
        except OSError:
            return None
        return target if _HBTL.fullmatch(target) else None

    def peers(self, name: str) -> list[str]:
        """Block devices with the same WWID as ``name`` (itself included), or just it."""
        wwid = self.wwid(name)
        if not wwid:
            return [name]
        found = [other for other in self.block_devices() if self.wwid(other) == wwid]
        return found if name in found else [name, *found]

    # -- iSCSI sessions ------------------------------------------------------------------

    def iscsi_disk(self, url: IscsiAddress) -> str | None:
        """The kernel's block device for ``url`` when open-iscsi is logged in to it.

        A session matches when its target name equals the URL's and one of its
        connections goes to the URL's portal (address and port); the disk is the
        session's SCSI device whose LUN is the URL's.
        """
        sessions = self.root / "class" / "iscsi_session"
        try:
            names = sorted(os.listdir(sessions))
        except OSError:
            return None
        for session in names:
            number = session.removeprefix("session")
            if not number.isdigit():
                continue
            if read_attribute(sessions / session / "targetname") != url.target:
                continue
            if not self._session_has_portal(number, url):
                continue
            disk = self._session_disk(sessions / session / "device", url.lun)
            if disk is not None:
                return disk
        return None

    def iscsi_session(self, name: str) -> IscsiSession | None:
        """The open-iscsi session behind block device ``name`` (None: not iSCSI).

        The disk's device directory lies under its session's
        (``.../host2/session1/target2:0:0/2:0:0:0``); the session's target name and its
        connections' portals are in the iscsi_session and iscsi_connection classes.
        """
        device = self._block(name) / "device"
        try:
            parts = Path(os.path.realpath(device)).parts if device.exists() else ()
        except OSError:
            return None
        number = next((m.group(1) for p in reversed(parts) if (m := _SESSION.fullmatch(p))), None)
        if number is None:
            return None
        session = f"session{number}"
        target = read_attribute(self.root / "class" / "iscsi_session" / session / "targetname")
        address, port = self._session_portal(number)
        return IscsiSession(session, target, address, port)

    def _session_portal(self, number: str) -> tuple[str | None, int | None]:
        connections = self.root / "class" / "iscsi_connection"
        try:
            prefix = f"connection{number}:"
            names = sorted(n for n in os.listdir(connections) if n.startswith(prefix))
        except OSError:
            return None, None
        for connection in names:
            for address_attr, port_attr in (
                ("persistent_address", "persistent_port"),
                ("address", "port"),
            ):
                address = read_attribute(connections / connection / address_attr)
                port = read_attribute(connections / connection / port_attr)
                if address and port and port.isdigit():
                    return address, int(port)
        return None, None

    def _session_has_portal(self, number: str, url: IscsiAddress) -> bool:
        connections = self.root / "class" / "iscsi_connection"
        try:
            names = os.listdir(connections)
        except OSError:
            return False
        for connection in names:
            if not connection.startswith(f"connection{number}:"):
                continue
            for address_attr, port_attr in (
                ("persistent_address", "persistent_port"),
                ("address", "port"),
            ):
                address = read_attribute(connections / connection / address_attr)
                port = read_attribute(connections / connection / port_attr)
                if address and port and _same_host(address, url.host) and port == str(url.port):
                    return True
        return False

    def _session_disk(self, session_device: Path, lun: int) -> str | None:
        try:
            base = Path(os.path.realpath(session_device))
            targets = sorted(base.glob("target*"))
        except OSError:
            return None
        for target in targets:
            for scsi in sorted(target.glob("*:*:*:*")):
                if not _HBTL.fullmatch(scsi.name) or int(scsi.name.rsplit(":", 1)[1]) != lun:
                    continue
                try:
                    blocks = sorted(os.listdir(scsi / "block"))
                except OSError:
                    continue
                for block in blocks:
                    if valid_block_name(block):
                        return block
        return None


def _same_host(address: str, host: str) -> bool:
    try:
        return ipaddress.ip_address(address) == ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return address.lower().rstrip(".") == host.lower().rstrip(".")
