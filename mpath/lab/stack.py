"""The Linux storage stack in the lab guest: open-iscsi sessions, multipathd, kernel NBD.

The pieces the lab tests and the head-to-head benchmark (benchmarks/vs_dm_multipath.py)
set up the way an administrator does: ``iscsiadm`` discovery and login (with the
node settings given, before the login), ``multipathd`` on a ``multipath.conf`` written
whole, and ``nbd-client`` attaching ``/dev/nbd0`` to an NBD export. Each undoes what
it did, also on failure. They run as root inside the lab VM only: the build host's
kernel has no SCSI layer, dm-multipath or NBD.
"""

from __future__ import annotations

import contextlib
import re
import signal
import subprocess
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from mpath.lab.vm import LabError
from mpath.rig import Rig

BY_PATH = Path("/dev/disk/by-path")
MULTIPATH_CONF = Path("/etc/multipath.conf")
NBD = "/dev/nbd0"
#: How long a device node, a map or a connection may take to appear.
APPEAR_TIMEOUT = 60.0


def sh(*argv: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run a tool; with ``check``, a failure raises LabError with its output."""
    result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        output = result.stdout + result.stderr
        raise LabError(f"{' '.join(argv)}: exit {result.returncode}: {output}")
    return result


def _wait(what: str, done: object, timeout: float = APPEAR_TIMEOUT, every: float = 0.2) -> None:
    """Poll ``done()`` until true (udev, multipathd and the kernel send no event to
    await for these), or raise LabError naming ``what``."""
    assert callable(done)
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise LabError(f"{what} within {timeout:g} s")
        time.sleep(every)


# -- open-iscsi -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Sessions:
    rig: Rig
    #: /dev/sdX of each rig path, in path order.
    disks: tuple[str, ...]


def disk_of(rig: Rig, index: int) -> str:
    """The /dev/sdX open-iscsi made for rig path ``index`` (1-based)."""
    portal = rig.portals[index - 1]
    link = BY_PATH / f"ip-{portal}-iscsi-{rig.target.iqn}-lun-{rig.lun.number}"
    _wait(f"{link} did not appear", link.exists)
    return str(link.resolve())


@contextlib.contextmanager
def iscsi_sessions(rig: Rig, node_settings: Mapping[str, str] | None = None) -> Iterator[Sessions]:
    """iscsid, and one open-iscsi session per path of ``rig``; all undone afterwards.

    ``node_settings`` (``node.session.timeo.replacement_timeout`` = ``5``, ...) are
    written into the node records after discovery and before the login, as
    ``iscsiadm -m node -o update`` does for an administrator.
    """
    # Its own session: iscsid signals its whole process group when it stops.
    iscsid = subprocess.Popen(["iscsid", "-f"], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
    try:
        sh("iscsiadm", "-m", "discovery", "-t", "st", "-p", str(rig.portals[0]))
        for name, value in (node_settings or {}).items():
            sh("iscsiadm", "-m", "node", "-T", rig.target.iqn, "-o", "update",
               "-n", name, "-v", value)  # fmt: skip
        sh("iscsiadm", "-m", "node", "-T", rig.target.iqn, "-L", "all", timeout=180)
        yield Sessions(rig, tuple(disk_of(rig, i) for i in range(1, len(rig.portals) + 1)))
    finally:
        sh("iscsiadm", "-m", "node", "-U", "all", check=False)
        sh("iscsiadm", "-m", "node", "-o", "delete", check=False)
        iscsid.send_signal(signal.SIGTERM)
        try:
            iscsid.wait(timeout=30)
        except subprocess.TimeoutExpired:
            iscsid.kill()
            iscsid.wait()


# -- multipathd ---------------------------------------------------------------------------


def map_table(wwid: str) -> str:
    """The map's device-mapper table (``dmsetup table``), empty when there is none."""
    return sh("dmsetup", "table", wwid, check=False).stdout.strip()


def active_paths(wwid: str) -> int:
    """Paths the kernel's map counts usable (``A`` in ``dmsetup status``)."""
    status = sh("dmsetup", "status", wwid, check=False).stdout
    return len(re.findall(r" \d+:\d+ A ", status))


def wait_for_map(wwid: str, selector: str, paths: int) -> str:
    """Wait until the map's table uses ``selector`` and ``paths`` paths are usable;
    returns the table."""
    _wait(
        f"map {wwid}: no table with {selector!r} and {paths} usable paths",
        lambda: selector in map_table(wwid) and active_paths(wwid) >= paths,
    )
    node = Path("/dev/mapper") / wwid
    _wait(f"{node} did not appear", node.exists)
    return map_table(wwid)


@contextlib.contextmanager
def multipathd(config: str) -> Iterator[subprocess.Popen[bytes]]:
    """multipathd running on ``config`` as the whole /etc/multipath.conf; stopped, the
    maps flushed and the file removed afterwards. Change the file and call
    :func:`reconfigure` to move to another configuration."""
    MULTIPATH_CONF.write_text(config)
    daemon = subprocess.Popen(["multipathd", "-d", "-s"], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
    try:
        yield daemon
    finally:
        sh("multipathd", "shutdown", check=False)
        try:
            daemon.wait(timeout=30)
        except subprocess.TimeoutExpired:
            daemon.kill()
            daemon.wait()
        sh("multipath", "-F", check=False)  # remove the maps so the sessions can log out
        MULTIPATH_CONF.unlink(missing_ok=True)


def reconfigure(config: str) -> None:
    """Replace /etc/multipath.conf and have multipathd reload it (``reconfigure``)."""
    MULTIPATH_CONF.write_text(config)
    _wait("multipathd does not answer", lambda: sh("multipathd", "show", "daemon",
                                                    check=False).returncode == 0)  # fmt: skip
    sh("multipathd", "reconfigure")


# -- kernel NBD -------------------------------------------------------------------------------


def kernel_log_tail() -> str:
    """The kernel's last messages: nbd-client only says "check dmesg" when it fails."""
    return subprocess.run(["dmesg"], capture_output=True, text=True).stdout[-1500:]


def nbd_attach(port: int, export_name: str = "", connections: int = 1) -> str:
    """Connect /dev/nbd0 to the export on 127.0.0.1:``port``; returns the node.

    The kernel refuses a netlink connect ("nbd0 already in use") while anyone holds the
    unconfigured device open, and udev's blkid opens it for every change event (the
    capacity change of the last disconnect, the close of a device written by mkfs or
    e2fsck). So udev's queue is settled first; a connect refused by a probe that began
    after the settle is tried again, at most twice, each after another settle.
    """
    name = ["-N", export_name] if export_name else []
    argv = ["nbd-client", *name, "127.0.0.1", str(port), NBD, "-C", str(connections), "-b", "4096"]
    for _attempt in range(3):
        subprocess.run(["udevadm", "settle", "--timeout=60"], capture_output=True, timeout=90)
        result = subprocess.run(argv, capture_output=True, text=True, timeout=300)
        if result.returncode == 0 or "already in use" not in kernel_log_tail():
            break
    if result.returncode != 0:
        raise LabError(f"{argv}: {result.returncode}\n{result.stdout}{result.stderr}"
                       f"{kernel_log_tail()}")  # fmt: skip
    if int(Path("/sys/block/nbd0/size").read_text()) <= 0:
        raise LabError(f"{NBD} attached with size 0")
    return NBD


def nbd_detach() -> None:
    """Disconnect /dev/nbd0 and wait until the kernel has let go of it.

    ``nbd-client -d`` returns once the disconnect is sent; the device is free again only
    when its ``pid`` attribute is gone (polled: the kernel sends no event for it).
    """
    subprocess.run(["nbd-client", "-d", NBD], capture_output=True, timeout=120)
    _wait(f"{NBD} still connected after -d", lambda: not Path("/sys/block/nbd0/pid").exists(),
          every=0.1)  # fmt: skip


__all__ = [
    "NBD",
    "Sessions",
    "active_paths",
    "disk_of",
    "iscsi_sessions",
    "map_table",
    "multipathd",
    "nbd_attach",
    "nbd_detach",
    "reconfigure",
    "sh",
    "wait_for_map",
]
