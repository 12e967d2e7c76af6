"""fio's nbd engine writes and verifies through the export while a rig path is cut and
restored mid-run: 0 errors, verify passes (real rig, real fio).

The server runs in this process so the test can see the device: the cut is made once
a fifth of the data is written (so it lands among writes in flight), the path is
restored once the device has failed it, and writes past the halfway mark wait until
the device has reinstated the path. The gate only orders events (fio sees a slower
write, never an error); it makes "restored mid-run" certain instead of a race with
fio's speed, and the writes after it run over both paths again.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from mpath.filter import DeviceSettings, MultipathDevice
from mpath.filter.monitor import ReconnectMonitor
from mpath.filter.path import Path as DevicePath
from mpath.nbd import ListenAddress, NbdServer
from mpath.rig import Rig, RigManager
from tests.conftest import unique_rig_name
from tests.nbd.client import bounded
from tests.nbd.test_clients import fio_json, run_tool

pytestmark = pytest.mark.rig

SIZE = 64 * 1024 * 1024


@pytest.fixture(scope="module")
def rig() -> Iterator[Rig]:
    manager = RigManager()
    name = unique_rig_name("nbd")
    try:
        yield manager.up(name=name, paths=2, size=SIZE)
    finally:
        manager.down(name)


class FaultScript:
    """Watches the writes through the export and the device's path events."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.written = 0
        self.cut_now = asyncio.Event()
        self.path_failed = asyncio.Event()
        self.reinstated = asyncio.Event()
        self.restored = asyncio.Event()
        self.events: list[str] = []


class GatedDevice:
    """The MultipathDevice, with the write accounting and the halfway gate."""

    def __init__(self, device: MultipathDevice, script: FaultScript) -> None:
        self.device = device
        self.script = script

    @property
    def block_size(self) -> int:
        return self.device.block_size

    @property
    def size_bytes(self) -> int:
        return self.device.size_bytes

    async def read(self, offset: int, length: int) -> bytes:
        return await self.device.read(offset, length)

    async def write(
        self, offset: int, data: bytes | bytearray | memoryview, *, fua: bool = False
    ) -> None:
        script = self.script
        if script.written >= script.size // 2 and not script.restored.is_set():
            await asyncio.wait_for(script.restored.wait(), 30)
        await self.device.write(offset, data, fua=fua)
        script.written += len(data)
        if script.written >= script.size // 5:
            script.cut_now.set()

    async def flush(self) -> None:
        await self.device.flush()


async def _cut_and_restore(rig: Rig, device: MultipathDevice, script: FaultScript) -> int:
    """The fault sequence; returns path 1's I/O count when it was reinstated."""
    manager = RigManager()
    cut, restore = script.events[0], script.events[1]
    try:
        await bounded(script.cut_now.wait(), 30)
        await asyncio.to_thread(manager.fault, rig.name, 1, cut)
        script.events.append(f"{cut} at {script.written} bytes")
        await bounded(script.path_failed.wait(), 30)
        await asyncio.to_thread(manager.fault, rig.name, 1, restore)
        script.events.append(f"{restore} at {script.written} bytes")
        await bounded(script.reinstated.wait(), 30)
        ios: int = device.paths[0]["ios"]
        return ios
    finally:
        script.restored.set()


@dataclass
class Outcome:
    write_pass: tuple[int, str, str]
    verify_pass: tuple[int, str, str]
    events: list[str]
    failovers: int
    path1_ios_at_restore: int
    path1_ios_after_writes: int
    paths: list[dict[str, Any]]
    server_errors: int


async def _fio_through_export(rig: Rig, sock: str, cut: str, restore: str) -> Outcome:
    script = FaultScript(SIZE)
    script.events += [cut, restore]

    class SignallingMonitor(ReconnectMonitor):
        def path_failed(self, path: DevicePath) -> None:
            script.path_failed.set()
            super().path_failed(path)

    device = await MultipathDevice.open(
        rig.urls, DeviceSettings(policy="round-robin"), monitor=SignallingMonitor
    )
    reinstate = device.reinstate

    def spy(path: DevicePath) -> None:
        reinstate(path)
        script.reinstated.set()

    device.reinstate = spy  # type: ignore[method-assign]
    server = NbdServer(GatedDevice(device, script))
    try:
        await server.start(ListenAddress.parse(f"unix:{sock}"))
        common = [
            "--name=nbd-verify", "--ioengine=nbd", f"--uri={server.uri}", "--rw=randwrite",
            "--bs=4k", f"--size={SIZE}", "--iodepth=32", "--verify=crc32c",
            "--verify_fatal=1", "--verify_state_save=0", "--output-format=json",
        ]  # fmt: skip
        faults = asyncio.ensure_future(_cut_and_restore(rig, device, script))
        try:
            write_pass = await run_tool("fio", *common, "--do_verify=1", timeout=90)
        finally:
            script.restored.set()
            path1_ios_at_restore = await bounded(faults, 60)
        path1_ios_after_writes = device.paths[0]["ios"]
        # A second, read-only pass verifies everything again, with both paths up.
        verify_pass = await run_tool("fio", *common, "--verify_only", timeout=90)
        return Outcome(
            write_pass=write_pass,
            verify_pass=verify_pass,
            events=script.events[2:],
            failovers=device.stats.failovers,
            path1_ios_at_restore=path1_ios_at_restore,
            path1_ios_after_writes=path1_ios_after_writes,
            paths=device.paths,
            server_errors=server.stats.errors,
        )
    finally:
        try:
            await bounded(server.shutdown(), 60)
        finally:
            await device.close()
            await asyncio.to_thread(RigManager().fault, rig.name, 1, "clear")


@pytest.mark.skipif(shutil.which("fio") is None, reason="fio not installed (make setup)")
@pytest.mark.parametrize(("cut", "restore"), [("down", "up"), ("drop", "clear")])
def test_fio_verify_through_the_export_survives_a_path_cut_and_restore(
    rig: Rig, sock_dir: Path, cut: str, restore: str
) -> None:
    result = asyncio.run(
        asyncio.wait_for(_fio_through_export(rig, str(sock_dir / "s"), cut, restore), 150)
    )
    for name, (code, out, err) in (("write", result.write_pass), ("verify", result.verify_pass)):
        assert code == 0, f"{name} pass: fio exit {code}: {err}{out[-3000:]}"
        job = fio_json(out)["jobs"][0]
        assert job["error"] == 0, f"{name} pass: {job}"
        assert job["read"]["io_bytes"] == SIZE, f"{name} pass verified {job['read']['io_bytes']}"
        if name == "write":
            assert job["write"]["io_bytes"] == SIZE
    assert result.server_errors == 0
    assert len(result.events) == 2, result.events  # cut, then restore, while fio wrote
    assert result.failovers >= 1, result.paths
    # Path 1 came back while fio was still writing, and carried writes again.
    assert result.path1_ios_after_writes > result.path1_ios_at_restore, result.paths
