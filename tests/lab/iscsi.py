"""open-iscsi sessions to a LIO rig, for the lab tests that need /dev/sdX paths."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from mpath.rig import Rig, RigManager
from mpath.units import Rate

BY_PATH = Path("/dev/disk/by-path")


def sh(*argv: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    if check:
        assert result.returncode == 0, f"{argv}: {result.stdout}{result.stderr}"
    return result


@dataclass(frozen=True)
class Sessions:
    rig: Rig
    #: /dev/sdX of each rig path, in path order.
    disks: tuple[str, ...]


def disk_of(rig: Rig, index: int) -> str:
    portal = rig.portals[index - 1]
    link = BY_PATH / f"ip-{portal}-iscsi-{rig.target.iqn}-lun-{rig.lun.number}"
    deadline = time.monotonic() + 60
    while not link.exists():  # udev makes the link after the disk appears: no event here
        assert time.monotonic() < deadline, f"{link} never appeared"
        time.sleep(0.2)
    return str(link.resolve())


@contextlib.contextmanager
def logged_in(name: str, rates: list[Rate | None] | None = None) -> Iterator[Sessions]:
    """A LIO rig, iscsid, and one open-iscsi session per path; all undone afterwards."""
    manager = RigManager()
    iscsid = None
    try:
        rig = manager.up(name=name, paths=2, size=64 * 1024**2, backend="lio", rates=rates)
        # Its own session: iscsid signals its whole process group when it stops.
        iscsid = subprocess.Popen(["iscsid", "-f"], stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
        sh("iscsiadm", "-m", "discovery", "-t", "st", "-p", str(rig.portals[0]))
        sh("iscsiadm", "-m", "node", "-T", rig.target.iqn, "-L", "all", timeout=180)
        yield Sessions(rig, tuple(disk_of(rig, i) for i in (1, 2)))
    finally:
        sh("iscsiadm", "-m", "node", "-U", "all", check=False)
        sh("iscsiadm", "-m", "node", "-o", "delete", check=False)
        if iscsid is not None:
            iscsid.send_signal(signal.SIGTERM)
            iscsid.wait(timeout=30)
        manager.down(name)
