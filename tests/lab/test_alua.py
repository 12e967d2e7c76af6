"""mpath's device on the real ALUA states of a LIO rig (lab).

Each rig path is its own target port group; ``rig fault N alua STATE`` puts it in a
state, and the kernel target then answers that port's commands as SPC-4 says (04/0b
standby, 04/0c unavailable, 04/0a transitioning, REPORT TARGET PORT GROUPS). The device
must follow: no I/O on standby, waits during a transition, failover on unavailable, and
use the path again once it is back. Data is judged from outside: the LUN's backing file
after the device is closed.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Iterator

import pytest
from click.testing import CliRunner

from mpath.checkers.monitor import CheckerMonitor
from mpath.cli import main
from mpath.filter import DeviceSettings, MultipathDevice
from mpath.rig import Rig, RigManager

pytestmark = pytest.mark.lab

BLOCK = 4096
#: Generous stall limits: the lab runs under TCG, where a command takes milliseconds.
SETTINGS = DeviceSettings(
    io_timeout_min=1.0, io_timeout_max=5.0, no_path_retry=10.0, alua_poll_interval=0.5
)


def set_alua(rig: Rig, index: int, state: str) -> None:
    RigManager().fault(rig.name, index, "alua", alua_state=state)


@pytest.fixture
def rig(lio_rig: Rig) -> Iterator[Rig]:
    """The module's LIO rig, every path active/optimized again after each test."""
    yield lio_rig
    for index in (1, 2):
        set_alua(lio_rig, index, "active-optimized")


async def open_device(rig: Rig) -> MultipathDevice:
    return await MultipathDevice.open(rig.urls, SETTINGS, monitor=CheckerMonitor.factory())


def block(number: int, generation: int) -> bytes:
    return f"block {number:06d} generation {generation:04d} ".encode().ljust(BLOCK, b".")


class Load:
    """Writes blocks in turn and reads each back at once (write + verify)."""

    def __init__(self, device: MultipathDevice, blocks: int) -> None:
        self.device = device
        self.blocks = blocks
        self.expected: dict[int, bytes] = {}
        self.errors: list[str] = []
        self.mismatches = 0
        self.writes = 0
        self.stop = asyncio.Event()

    async def run(self) -> None:
        generation = 0
        while not self.stop.is_set():
            generation += 1
            for number in range(self.blocks):
                data = block(number, generation)
                try:
                    await self.device.write(number * BLOCK, data)
                    self.expected[number] = data
                    self.writes += 1
                    if await self.device.read(number * BLOCK, BLOCK) != data:
                        self.mismatches += 1
                except Exception as exc:  # every failure is reported by the test
                    self.errors.append(f"{type(exc).__name__}: {exc}")
                if self.stop.is_set():
                    return


def backing_blocks(rig: Rig, numbers: dict[int, bytes]) -> dict[int, bytes]:
    """The blocks as the LUN's backing file holds them (read after the device closed)."""
    fd = os.open(rig.lun.backing_file, os.O_RDONLY)
    try:
        return {n: os.pread(fd, BLOCK, n * BLOCK) for n in numbers}
    finally:
        os.close(fd)


async def until(predicate: object, timeout: float = 20.0) -> None:
    """Poll ``predicate`` (a callable) until true; the state under test has no event."""
    assert callable(predicate)
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.1)  # polling a device's state from outside


def test_standby_path_carries_no_io_and_shows_its_state(rig: Rig) -> None:
    set_alua(rig, 1, "standby")

    async def body() -> tuple[list[dict[str, object]], int]:
        device = await open_device(rig)
        try:
            for number in range(32):
                await device.write(number * BLOCK, block(number, 1))
            return device.paths, device.stats.errors
        finally:
            await device.close()

    paths, errors = asyncio.run(body())
    print("MUST-SHOW standby ios per path:", [p["ios"] for p in paths], "errors:", errors)
    assert [(p["alua_group"], p["alua_state"]) for p in paths] == [
        (1, "standby"),
        (2, "active-optimized"),
    ]
    assert [p["state"] for p in paths] == ["active", "active"]
    assert [p["ios"] for p in paths] == [0, 32], paths
    assert errors == 0


def test_transition_on_the_only_optimized_path_is_waited_out_without_errors(rig: Rig) -> None:
    set_alua(rig, 2, "standby")

    async def body() -> tuple[MultipathDevice, Load, float]:
        device = await open_device(rig)
        load = Load(device, 16)
        try:
            task = asyncio.ensure_future(load.run())
            await until(lambda: load.writes >= 8)
            await asyncio.to_thread(set_alua, rig, 1, "transitioning")
            await until(lambda: device.paths[0]["alua_state"] == "transitioning")
            stalled_at = load.writes
            await asyncio.sleep(2.0)  # the transition lasts 2 s
            writes_during = load.writes - stalled_at
            await asyncio.to_thread(set_alua, rig, 1, "active-optimized")
            await until(lambda: load.writes >= stalled_at + 8)
            load.stop.set()
            await task
        finally:
            await device.close()
        return device, load, writes_during

    device, load, writes_during = asyncio.run(body())
    print(
        "MUST-SHOW transition:", f"writes={load.writes} during={writes_during}",
        f"errors={len(load.errors)} mismatches={load.mismatches}", device.stats.describe(),
    )  # fmt: skip
    assert load.errors == [] and load.mismatches == 0
    assert writes_during <= 1, "I/O went on during the transition with no usable port"
    assert [p["failures"] for p in device.paths] == [0, 0]
    assert device.stats.errors == 0
    assert backing_blocks(rig, load.expected) == load.expected


def test_unavailable_group_fails_over_and_comes_back_with_data_intact(rig: Rig) -> None:
    async def body() -> tuple[MultipathDevice, Load, list[int], list[int]]:
        device = await open_device(rig)
        load = Load(device, 64)
        try:
            task = asyncio.ensure_future(load.run())
            await until(lambda: all(p["ios"] >= 4 for p in device.paths))
            await asyncio.to_thread(set_alua, rig, 1, "unavailable")
            await until(lambda: device.paths[0]["alua_state"] == "unavailable")
            before = [int(p["ios"]) for p in device.paths]
            written = load.writes
            await until(lambda: load.writes >= written + 32)
            during = [int(p["ios"]) for p in device.paths]
            await asyncio.to_thread(set_alua, rig, 1, "active-optimized")
            await until(lambda: device.paths[0]["alua_state"] == "active-optimized")
            back = int(device.paths[0]["ios"])
            await until(lambda: int(device.paths[0]["ios"]) >= back + 8)
            load.stop.set()
            await task
        finally:
            await device.close()
        return device, load, before, during

    device, load, before, during = asyncio.run(body())
    print(
        "MUST-SHOW unavailable:", f"ios before={before} during={during}",
        f"final={[p['ios'] for p in device.paths]} writes={load.writes}",
        f"errors={len(load.errors)} mismatches={load.mismatches}", device.stats.describe(),
    )  # fmt: skip
    assert load.errors == [] and load.mismatches == 0
    # While unavailable, path 1 carried at most the command that met 04/0c.
    assert during[0] - before[0] <= 1 and during[1] - before[1] >= 32
    assert device.stats.errors == 0
    assert backing_blocks(rig, load.expected) == load.expected


def test_show_prints_each_paths_alua_group_and_state(rig: Rig) -> None:
    set_alua(rig, 2, "active-nonoptimized")
    result = CliRunner().invoke(main, ["show", *rig.urls, "--json"])
    assert result.exit_code == 0, (result.stdout, result.stderr)
    doc = json.loads(result.stdout)
    paths = [path for group in doc["groups"] for path in group["paths"]]
    assert [(p["alua_group"], p["alua_state"]) for p in paths] == [
        (1, "active-optimized"),
        (2, "active-nonoptimized"),
    ]
    text = CliRunner().invoke(main, ["show", *rig.urls])
    assert text.exit_code == 0, text.stderr
    assert "alua group 2 active-nonoptimized" in text.stdout, text.stdout
    print("MUST-SHOW show:", text.stdout)
