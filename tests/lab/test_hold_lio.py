"""``rig fault N hold``/``release`` on a LIO rig (lab), and mpath's fence against LIO.

The hold is the same tc mechanism on either backend; what differs is the target. On
this rig each LIO path is its own target portal group (per-path ALUA needs that), and
an iSCSI session is named by initiator, ISID, target *and* portal group: a login
through path 2's portal cannot reinstate (end) path 1's session. Judged by reading the
backing file:

* without a fence, a held write lands after release;
* a fencing login through the other group is refused, not counted as a fence;
* without a ``reservation_key`` nothing can fence path 1: by default
  (``unfenceable_writes = reissue``) the write is reissued at once, with a warning and
  a count, as an unfenced stack would; with ``fail`` it is not reissued and fails
  with FenceTimeoutError naming the portal group;
* with a ``reservation_key``, mpath fences by preempting path 1's registration
  through path 2, and the held writes never land (tgt: test_fencing_reservation_rig).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from mpath.errors import FenceTimeoutError
from mpath.filter import DeviceSettings, MultipathDevice
from mpath.rig import Rig, RigManager
from mpath.transports.base import FenceError
from tests.filter.test_fencing_reservation_rig import check_held_writes_never_land
from tests.filter.test_fencing_rig import (
    CHUNK,
    SMALL,
    SPAN,
    _held_write,
    backing,
    target_connections,
    wait_for_change,
    wait_target_quiet,
)

pytestmark = pytest.mark.lab


@pytest.fixture
def clean_lio(lio_rig: Rig) -> Iterator[Rig]:
    """The module's LIO rig with a zeroed span, every fault undone afterwards."""
    with open(lio_rig.lun.backing_file, "r+b") as file:
        file.write(bytes(SPAN))
    yield lio_rig
    for index in (1, 2):
        RigManager().fault(lio_rig.name, index, "clear")


def test_hold_keeps_a_write_and_release_delivers_it_to_lio(clean_lio: Rig) -> None:
    asyncio.run(asyncio.wait_for(_held_write(clean_lio, fence=False), 60))
    assert RigManager().status(clean_lio.name)[1][0].describe()["fault"] == "held"
    RigManager().fault(clean_lio.name, 1, "release")
    landed = wait_for_change(clean_lio, bytes(SPAN))
    assert landed[:4096] == b"\xab" * 4096  # the held write reached the LUN, late


def test_a_fencing_login_through_another_tpg_is_refused_on_lio(clean_lio: Rig) -> None:
    """The login that would only open a new session is not made, and says why."""
    with pytest.raises(FenceError, match="target portal group 2, this path in 1") as refused:
        asyncio.run(asyncio.wait_for(_held_write(clean_lio, fence=True), 60))
    assert "leaves the old one running" in str(refused.value)
    states = [line.split()[0] for line in target_connections(clean_lio, 1)]
    assert "ESTAB" in states, states  # the target still has the held session
    RigManager().fault(clean_lio.name, 1, "release")  # (its write lands: nothing fenced it)
    wait_target_quiet(clean_lio, 1)


async def _unfenceable(rig: Rig) -> BaseException | None:
    """Path 1 (failover's first) holds a write; no reservation_key: nothing can fence."""
    settings = DeviceSettings(policy="failover", fence_timeout=1.0, unfenceable_writes="fail")
    device = await MultipathDevice.open(rig.urls, settings)
    manager = RigManager()
    try:
        await device.write(0, b"\1" * CHUNK)
        await asyncio.to_thread(manager.fault, rig.name, 1, "hold")
        try:
            await asyncio.wait_for(device.write(CHUNK, b"\2" * CHUNK), 30)
        except FenceTimeoutError as exc:
            info = device.fence_info(device.path_objects[0])
            assert info["scope"] == "target portal group 1", info
            assert info["last_failure"] and "no reservation_key" in info["last_failure"]
            return exc
        return None
    finally:
        await device.close()


async def _reissued_unfenced(rig: Rig) -> tuple[int, int]:
    """The default: path 1 holds a write that nothing can fence; it is reissued now."""
    device = await MultipathDevice.open(rig.urls, DeviceSettings(policy="failover"))
    manager = RigManager()
    try:
        await device.write(0, b"\1" * CHUNK)
        await asyncio.to_thread(manager.fault, rig.name, 1, "hold")
        await asyncio.wait_for(device.write(CHUNK, b"\2" * CHUNK), 30)
        return device.stats.unfenced_reissues, device.stats.errors
    finally:
        await device.close()


def test_by_default_an_unfenceable_write_is_reissued_and_counted_on_lio(clean_lio: Rig) -> None:
    reissued, errors = asyncio.run(asyncio.wait_for(_reissued_unfenced(clean_lio), 60))
    assert (reissued, errors) == (1, 0)
    assert backing(clean_lio, 2 * CHUNK)[CHUNK:] == b"\2" * CHUNK
    RigManager().fault(clean_lio.name, 1, "release")
    wait_target_quiet(clean_lio, 1)


def test_without_a_reservation_key_a_held_write_fails_clearly_on_lio(clean_lio: Rig) -> None:
    error = asyncio.run(asyncio.wait_for(_unfenceable(clean_lio), 60))
    assert isinstance(error, FenceTimeoutError), error
    assert "no portal in target portal group 1 reachable and no reservation_key" in str(error)
    assert backing(clean_lio, 2 * CHUNK)[CHUNK:] == bytes(CHUNK)  # never reissued
    RigManager().fault(clean_lio.name, 1, "release")
    wait_target_quiet(clean_lio, 1)


@pytest.mark.parametrize("policy", ["round-robin", "share"])
def test_held_writes_never_land_after_failover_on_lio_with_a_reservation_key(
    clean_lio: Rig, policy: str
) -> None:
    # Under the lab's emulated CPU fewer writes reach path 1 before it is failed than
    # on the host's tgt rig (13,592 bytes held in one run): more than one whole 4 KiB
    # write is what makes the run a test.
    result = check_held_writes_never_land(clean_lio, policy, "auto", min_held_bytes=SMALL)
    assert int(str(result["fences"])) >= 1
