"""Persistent-reservation fencing on the real rig (tgt): hold, failover, release.

With ``fence_method = "reservation"`` the device may not fence by session
reinstatement (tgt's portals share one target portal group, so reinstatement would
otherwise do it): the failed path's key is preempted through the working path, and
the held writes, delivered after the run on the old I_T nexus, get RESERVATION
CONFLICT. Judged from outside: the backing file after close and release, and the
LU's registrations read through a fresh session.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from mpath.errors import DeviceError
from mpath.filter import DeviceSettings, MultipathDevice
from mpath.rig import Rig, RigManager
from mpath.scsi import cdb
from mpath.scsi.reservations import (
    FENCING_TYPE,
    PR_IN_ALLOC_LEN,
    PrIn,
    PrOut,
    parse_read_keys,
    parse_read_reservation,
)
from mpath.transports.base import ScsiStatus
from mpath.transports.iscsi import IscsiTransport
from mpath.workload import pattern
from mpath.workload.bench import BenchRun, BenchSpec
from tests.conftest import unique_rig_name
from tests.filter.test_fencing_rig import (
    SIZE,
    SMALL,
    SPAN,
    backing,
    digest,
    held_bytes,
    wait_target_quiet,
)

pytestmark = pytest.mark.rig

KEY = 0x6D70617468000000
OTHER_HOST_KEY = 0x0BAD0000000000


@pytest.fixture(scope="module")
def rig() -> Iterator[Rig]:
    manager = RigManager()
    name = unique_rig_name("fpr")
    try:
        yield manager.up(name=name, paths=2, size=SIZE)
    finally:
        manager.down(name)


@pytest.fixture
def clean_rig(rig: Rig) -> Iterator[Rig]:
    with open(rig.lun.backing_file, "r+b") as file:
        file.write(bytes(SPAN))
    yield rig
    for index in (1, 2):
        RigManager().fault(rig.name, index, "clear")


async def registrations(url: str) -> tuple[list[int], int | None]:
    """(registered keys, reservation type or None) through a fresh session on ``url``."""
    transport = IscsiTransport(url)
    await transport.connect()
    try:
        command = cdb.persistent_reserve_in(PrIn.READ_KEYS, PR_IN_ALLOC_LEN)
        keys = await transport.execute(command, data_in_length=PR_IN_ALLOC_LEN)
        command = cdb.persistent_reserve_in(PrIn.READ_RESERVATION, PR_IN_ALLOC_LEN)
        held = await transport.execute(command, data_in_length=PR_IN_ALLOC_LEN)
        reservation = parse_read_reservation(held.data)
        return parse_read_keys(keys.data)[1], None if reservation is None else reservation.pr_type
    finally:
        await transport.logout()


async def _bench_with_hold(
    rig: Rig, policy: str, fence_method: str
) -> tuple[dict[str, object], list[int], int, int]:
    """4 KiB random writes with path 1 held from the start (see test_fencing_rig)."""
    settings = DeviceSettings(policy=policy, reservation_key=KEY, fence_method=fence_method)
    device = await MultipathDevice.open(rig.urls, settings)
    try:
        info = [device.fence_info(p)["reservation"] for p in device.path_objects]
        keys = [int(i["key"], 16) for i in info]
        assert [k & ~0xFF00 for k in keys] == [KEY | 1, KEY | 2], info
        assert all(i["registered"] for i in info), info
        assert await registrations(rig.urls[1]) == (keys, FENCING_TYPE)
        await asyncio.to_thread(RigManager().fault, rig.name, 1, "hold")
        spec = BenchSpec(
            rw="randwrite", block_size=SMALL, queue_depth=16, seconds=3.0, span=SPAN,
            verify=True, seed=12,
        )  # fmt: skip
        run = BenchRun(device, spec)
        result = (await run.run()).describe()
        assert device.fence_info(device.path_objects[0])["reservation"]["registered"] is False
        return result, list(run.generations), run.run_id, keys[1]
    finally:
        await device.close()


def check_held_writes_never_land(
    rig: Rig, policy: str, fence_method: str, min_held_bytes: int = 4 * SMALL
) -> dict[str, object]:
    """Hold -> failover -> close -> release; the LU is judged from outside. Returns the
    bench result.

    ``min_held_bytes``: how much must wait in the hold for the run to test anything
    (whole write commands, not only their headers).
    """
    run = asyncio.run(asyncio.wait_for(_bench_with_hold(rig, policy, fence_method), 90))
    result, generations, run_id, second_key = run
    assert result["errors"] == 0, result["first_error"]
    assert result["verify_mismatches"] == 0, result["mismatch_examples"]
    assert int(str(result["fences"])) >= 1, result["paths"]
    latency = result["latency_ms"]
    assert isinstance(latency, dict) and latency["max"] < 1000, latency
    assert held_bytes(rig, 1) > min_held_bytes  # whole write commands wait in the network
    # Path 1's key was preempted; its old session may still deliver (it is held), so
    # close kept path 2's registration and the reservation that refuses those writes.
    assert asyncio.run(registrations(rig.urls[1])) == ([second_key], FENCING_TYPE)
    before = digest(rig)
    RigManager().fault(rig.name, 1, "release")
    wait_target_quiet(rig, 1)
    assert digest(rig) == before, "a held write changed the LUN after the run"
    on_disk = backing(rig)
    sectors = SMALL // pattern.SECTOR
    for chunk, generation in enumerate(generations):
        if generation:
            data = on_disk[chunk * SMALL : (chunk + 1) * SMALL]
            assert not pattern.check(data, chunk * sectors, generation, run_id), chunk
    # Opened again with the key once every path works, and closed: nothing is left.
    asyncio.run(_open_and_close(rig))
    assert asyncio.run(registrations(rig.urls[1])) == ([], None)
    return result


@pytest.mark.parametrize("policy", ["round-robin", "share"])
def test_held_writes_never_land_after_a_reservation_fence(clean_rig: Rig, policy: str) -> None:
    check_held_writes_never_land(clean_rig, policy, "reservation")


async def _open_and_close(rig: Rig) -> None:
    device = await MultipathDevice.open(rig.urls, DeviceSettings(reservation_key=KEY))
    await device.close()


async def _reserved_by_another_host(rig: Rig) -> str:
    other = IscsiTransport(rig.urls[0])
    await other.connect()
    try:
        for action, key, sa_key in (
            (PrOut.REGISTER, 0, OTHER_HOST_KEY),
            (PrOut.RESERVE, OTHER_HOST_KEY, 0),
        ):
            pr_type = FENCING_TYPE if action is PrOut.RESERVE else 0
            answer = await other.execute(
                cdb.persistent_reserve_out(action, pr_type),
                data_out=cdb.pr_out_parameters(key, sa_key),
            )
            assert answer.status == ScsiStatus.GOOD, answer
        settings = DeviceSettings(reservation_key=KEY)
        with pytest.raises(DeviceError) as refused:
            await MultipathDevice.open(rig.urls, settings)
        keys, _ = await registrations(rig.urls[1])
        assert keys == [OTHER_HOST_KEY]  # nothing of ours was registered
        return str(refused.value)
    finally:
        await other.execute(
            cdb.persistent_reserve_out(PrOut.REGISTER),
            data_out=cdb.pr_out_parameters(OTHER_HOST_KEY, 0),
        )
        await other.logout()


def test_a_lun_reserved_by_another_initiator_is_refused_not_taken_over(clean_rig: Rig) -> None:
    message = asyncio.run(asyncio.wait_for(_reserved_by_another_host(clean_rig), 60))
    assert "another initiator" in message and "does not take over" in message, message
