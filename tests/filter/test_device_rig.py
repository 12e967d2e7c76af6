"""The filter layer over real iSCSI paths: failover with no data lost (real rig).

Failover is checked under every balancing policy that spreads I/O over both paths
(round-robin, share, quota): each keeps its own path state (shares from measured speeds,
quotas of bytes), and a path failing and coming back must not lose or corrupt a write
under any of them.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Iterator

import pytest

from mpath.errors import IdentityMismatchError, NoPathError
from mpath.filter import DeviceSettings, MultipathDevice
from mpath.rig import Rig, RigManager
from mpath.workload import pattern
from mpath.workload.bench import BenchRun, BenchSpec, FaultStep
from tests.conftest import RigFactory, unique_rig_name

pytestmark = pytest.mark.rig

SPAN = 32 * 1024**2


@pytest.fixture(scope="module")
def rig() -> Iterator[Rig]:
    manager = RigManager()
    name = unique_rig_name("flt")
    try:
        yield manager.up(name=name, paths=2, size=64 * 1024**2)
    finally:
        manager.down(name)


async def _apply(rig: Rig, step: FaultStep) -> None:
    await asyncio.to_thread(RigManager().fault, rig.name, step.index, step.action, None)


async def _write_verify_with_fault(
    rig: Rig, policy: str, cut: str, restore: str
) -> dict[str, object]:
    device = await MultipathDevice.open(rig.urls, DeviceSettings(policy=policy))
    try:
        spec = BenchSpec(
            rw="randwrite",
            block_size=64 * 1024,
            queue_depth=16,
            seconds=5,
            span=SPAN,
            verify=True,
            faults=(FaultStep(1.5, 1, cut), FaultStep(3.0, 1, restore)),
            seed=7,
        )
        run = BenchRun(device, spec)
        result = (await run.run(apply_fault=lambda step: _apply(rig, step))).describe()
        # What the device reads now must be what sits in the backing file, byte for byte.
        through_mpath = await device.read(0, SPAN)
        result["generations"] = list(run.generations)
        result["run_id"] = run.run_id
        result["through_mpath"] = through_mpath
        return result
    finally:
        await device.close()


@pytest.mark.parametrize("policy", ["round-robin", "share", "quota"])
@pytest.mark.parametrize(("cut", "restore"), [("down", "up"), ("drop", "clear")])
def test_write_verify_survives_a_path_cut_with_nothing_lost(
    rig: Rig, policy: str, cut: str, restore: str
) -> None:
    result = asyncio.run(_write_verify_with_fault(rig, policy, cut, restore))
    assert result["errors"] == 0, result["first_error"]
    assert result["verify_mismatches"] == 0, result["mismatch_examples"]
    assert int(str(result["failovers"])) >= 1, f"the cut path was never failed: {result['paths']}"
    latency = result["latency_ms"]
    assert isinstance(latency, dict)
    assert latency["max"] < 1000, f"failover stall {latency['max']} ms"
    with open(rig.lun.backing_file, "rb") as backing:
        on_disk = backing.read(SPAN)
    assert on_disk == result["through_mpath"]
    # Every chunk in the file holds the newest generation written through mpath.
    generations = result["generations"]
    assert isinstance(generations, list)
    sectors = 64 * 1024 // pattern.SECTOR
    chunk_bytes = 64 * 1024
    for chunk, generation in enumerate(generations):
        if generation:
            data = on_disk[chunk * chunk_bytes : (chunk + 1) * chunk_bytes]
            assert not pattern.check(data, chunk * sectors, generation, int(str(result["run_id"])))


async def _all_paths_down(
    rig: Rig, restore_after: float | None
) -> tuple[float, Exception | None, list[str]]:
    settings = DeviceSettings(policy="round-robin", no_path_retry=2.0, reconnect_interval=0.2)
    device = await MultipathDevice.open(rig.urls, settings)
    manager = RigManager()
    try:
        await device.write(0, b"\1" * 4096)
        for index in (1, 2):
            await asyncio.to_thread(manager.fault, rig.name, index, "down")
        restore: asyncio.Future[None] | None = None
        if restore_after is not None:

            async def bring_back() -> None:
                await asyncio.sleep(restore_after)  # the path returns at a chosen time
                await asyncio.to_thread(manager.fault, rig.name, 2, "up")

            restore = asyncio.ensure_future(bring_back())
        started = time.monotonic()
        error: Exception | None = None
        try:
            await asyncio.wait_for(device.write(0, b"\2" * 4096), 30)
        except NoPathError as exc:
            error = exc
        elapsed = time.monotonic() - started
        if restore is not None:
            await restore
        return elapsed, error, [str(p["last_failure"]) for p in device.paths]
    finally:
        for index in (1, 2):
            await asyncio.to_thread(manager.fault, rig.name, index, "up")
        await device.close()


def test_all_paths_down_fails_after_no_path_retry(rig: Rig) -> None:
    elapsed, error, failures = asyncio.run(_all_paths_down(rig, None))
    assert isinstance(error, NoPathError), error
    assert "no_path_retry=2" in str(error)
    # Every path silent at once may be a slow LUN, so the paths are failed only after
    # io_timeout_max; here each path's TCP connection times its bytes out (the links
    # are down), so the LUN's recent stalls are not waited for (mpath/filter/stall.py).
    # Then the 2 s window runs.
    assert all("its network acknowledges nothing" in failure for failure in failures), failures
    limit = DeviceSettings().io_timeout_max
    assert limit + 2.0 <= elapsed < limit + 2.0 + 1.0, elapsed


def test_all_paths_down_completes_when_a_path_returns_in_time(rig: Rig) -> None:
    elapsed, error, _ = asyncio.run(_all_paths_down(rig, 1.0))
    assert error is None
    assert elapsed < 4.0
    with open(rig.lun.backing_file, "rb") as backing:
        assert backing.read(4096) == b"\2" * 4096


async def _stopped_then_cut(rig: Rig) -> tuple[float, float, int, Exception | None]:
    """Stop the target daemon (its kernel still acknowledges), let every path sit
    silent past io_timeout_max, then cut every link; how long until the write fails."""
    settings = DeviceSettings(policy="round-robin", no_path_retry=0.0, reconnect_interval=0.2)
    device = await MultipathDevice.open(rig.urls, settings)
    manager = RigManager()
    assert rig.daemon_pid is not None
    try:
        await device.write(0, b"\1" * 4096)
        os.kill(rig.daemon_pid, signal.SIGSTOP)
        write = asyncio.ensure_future(device.write(0, b"\2" * 4096))
        await asyncio.sleep(settings.io_timeout_max + 1.0)  # silent past the floor
        carried = device.stall_judge.carried_stalls
        silent_for = 0.0 if write.done() else settings.io_timeout_max + 1.0
        cut = time.monotonic()
        for index in (1, 2):
            await asyncio.to_thread(manager.fault, rig.name, index, "down")
        error: Exception | None = None
        try:
            await asyncio.wait_for(write, 30)
        except NoPathError as exc:
            error = exc
        return silent_for, time.monotonic() - cut, carried, error
    finally:
        os.kill(rig.daemon_pid, signal.SIGCONT)
        for index in (1, 2):
            await asyncio.to_thread(manager.fault, rig.name, index, "up")
        await device.close()


def test_a_stopped_target_is_waited_for_until_its_network_goes_too(rig: Rig) -> None:
    # While the target's kernel acknowledges the watchdog's pings, every path silent is
    # a slow LUN (kept up to lun_stall_timeout, 10 s); once the links are cut the next
    # ping (within a second) goes unacknowledged through two retransmission timeouts,
    # and the paths are failed then, not at lun_stall_timeout.
    silent_for, after_cut, carried, error = asyncio.run(_stopped_then_cut(rig))
    assert silent_for > DeviceSettings().io_timeout_max, "failed while the kernel answered"
    assert carried >= 1
    assert isinstance(error, NoPathError), error
    assert "its network acknowledges nothing" in str(error), error
    assert after_cut < 3.0, after_cut


def test_paths_to_different_luns_are_refused_and_nothing_is_written(make_rig: RigFactory) -> None:
    one, other = make_rig(paths=1, size=8 * 1024**2), make_rig(paths=1, size=8 * 1024**2)

    async def body() -> None:
        await MultipathDevice.open([one.urls[0], other.urls[0]])

    with pytest.raises(IdentityMismatchError) as caught:
        asyncio.run(body())
    assert one.lun.wwid in str(caught.value) and other.lun.wwid in str(caught.value)
    for built in (one, other):
        with open(built.lun.backing_file, "rb") as backing:
            assert backing.read() == bytes(8 * 1024**2)
