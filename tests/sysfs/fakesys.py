"""A fake sysfs tree with SCSI disks and open-iscsi sessions, laid out like the kernel's.

The build machines' kernel has no SCSI layer, so the sysfs branches of ``mpath prio``
and ``mpath dm-config`` are tested against this: the same directories, attribute files
and relative symlinks a host with open-iscsi logged in shows.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


def _link(link: Path, target: Path) -> None:
    link.parent.mkdir(parents=True, exist_ok=True)
    os.symlink(os.path.relpath(target, link.parent), link)


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text + "\n")


def stat_line(
    *, read_ios: int = 0, read_sectors: int = 0, read_ticks: int = 0, io_ticks: int = 0
) -> str:
    """A /sys/block/X/stat line (11 fields) with reads only."""
    fields = [read_ios, 0, read_sectors, read_ticks, 0, 0, 0, 0, 0, io_ticks, read_ticks]
    return " ".join(f"{f:8d}" for f in fields)


@dataclass
class FakeSysfs:
    root: Path

    def add_session(
        self, number: int, host: int, target: str, address: str, port: int = 3260
    ) -> Path:
        """An open-iscsi session (its SCSI host dir is returned, for add_disk)."""
        session = self.root / "devices" / "platform" / f"host{host}" / f"session{number}"
        iscsi_session = session / "iscsi_session" / f"session{number}"
        _write(iscsi_session / "targetname", target)
        _link(iscsi_session / "device", session)
        _link(self.root / "class" / "iscsi_session" / f"session{number}", iscsi_session)
        connection = (
            session / f"connection{number}:0" / "iscsi_connection" / f"connection{number}:0"
        )
        _write(connection / "persistent_address", address)
        _write(connection / "persistent_port", str(port))
        _write(connection / "address", address)
        _write(connection / "port", str(port))
        _link(self.root / "class" / "iscsi_connection" / f"connection{number}:0", connection)
        return session

    def add_disk(
        self,
        name: str,
        hbtl: str,
        devnum: str,
        *,
        wwid: str = "naa.6001405aaaaaaaaaaaaaaaaaaaaaaaaa",
        state: str | None = "running",
        stat: str | None = None,
        vendor: str = "MPATH   ",
        model: str = "RIG-LUN         ",
        parent: Path | None = None,
        errors: tuple[int, int] | None = None,
    ) -> None:
        """A SCSI disk ``name`` at ``hbtl``, under ``parent`` (a session) or a PCI host."""
        host, channel, target, _ = hbtl.split(":")
        base = parent or self.root / "devices" / "pci0000:00" / f"host{host}"
        device = base / f"target{host}:{channel}:{target}" / hbtl
        device.mkdir(parents=True, exist_ok=True)
        if state is not None:
            _write(device / "state", state)
        _write(device / "wwid", wwid)
        _write(device / "vendor", vendor)
        _write(device / "model", model)
        if errors is not None:
            _write(device / "ioerr_cnt", hex(errors[0]))
            _write(device / "iorequest_cnt", hex(errors[1]))
        block = device / "block" / name
        _write(block / "dev", devnum)
        _write(block / "stat", stat if stat is not None else stat_line())
        _link(block / "device", device)
        _link(self.root / "block" / name, block)
        _link(self.root / "dev" / "block" / devnum, block)
