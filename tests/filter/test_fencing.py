"""Fencing before reissue, over fake paths (on the real rig: test_fencing_rig.py).

A write whose path fails while it is in flight may still be executed by the target
later; it is reissued elsewhere only after that path is fenced, and never when no fence
can be made (then it fails, naming the path and the reason).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

import pytest

from mpath.errors import DeviceError, FenceTimeoutError, UsageError
from mpath.filter import DeviceSettings, MultipathDevice
from mpath.scsi import cdb
from mpath.scsi.reservations import FENCING_TYPE
from mpath.transports.base import ScsiStatus
from tests.filter.fakes import BLOCK, FakeLun, FakeTransport

T = TypeVar("T")
FAST = DeviceSettings(policy="round-robin", io_timeout_min=0.05, reconnect_interval=0.02)


def bounded(awaitable: Awaitable[T], seconds: float = 5.0) -> Awaitable[T]:
    return asyncio.wait_for(awaitable, seconds)


def run(coro_fn: Callable[[], Awaitable[None]]) -> None:
    async def bounded_body() -> None:
        await bounded(coro_fn(), 20)

    asyncio.run(bounded_body())


def two_paths(lun: FakeLun) -> tuple[FakeTransport, FakeTransport]:
    return FakeTransport("fake://path1", lun), FakeTransport("fake://path2", lun)


async def in_flight_on(transport: FakeTransport, count: int) -> None:
    """Wait until ``count`` commands are outstanding on ``transport``."""
    while len(transport._pending) < count:
        await asyncio.sleep(0)


@pytest.mark.parametrize("policy", ["round-robin", "share", "quota"])
def test_writes_lost_with_a_path_are_reissued_only_after_one_fence(policy: str) -> None:
    async def body() -> None:
        lun = FakeLun()
        first, second = two_paths(lun)
        settings = DeviceSettings(policy=policy, io_timeout_min=0.05, reconnect_interval=0.02)
        async with await MultipathDevice.open([first, second], settings) as device:
            first.hang = True
            second.hang = True
            writes = [
                asyncio.ensure_future(device.write(i * BLOCK, b"w" * BLOCK)) for i in range(8)
            ]
            await bounded(in_flight_on(first, 1))
            second.release()
            lost = len(first._pending)
            first.disconnect()
            await bounded(asyncio.gather(*writes))
            assert lun.data[: 8 * BLOCK] == b"w" * (8 * BLOCK)
            assert first.fences == ["through fake://path2"]  # one fence for every lost write
            assert device.stats.fences == 1 and device.stats.errors == 0
            fenced = lun.log.index("fake://path1 fenced through fake://path2")
            reissued = [
                i for i, entry in enumerate(lun.log) if entry == "fake://path2 write" and i > fenced
            ]
            assert len(reissued) >= lost > 0
            # No write went to path 2 between the failure and the fence.
            closed = lun.log.index("fake://path1 close")
            assert "fake://path2 write" not in lun.log[closed:fenced]

    run(body)


def test_reads_lost_with_a_path_need_no_fence() -> None:
    async def body() -> None:
        lun = FakeLun()
        lun.data[:BLOCK] = b"r" * BLOCK
        first, second = two_paths(lun)
        async with await MultipathDevice.open([first, second], FAST) as device:
            first.hang = True
            reads = [asyncio.ensure_future(device.read(0, BLOCK)) for _ in range(4)]
            await bounded(in_flight_on(first, 1))
            first.refuse_login = True  # stays down: only a fence could end its session
            first.disconnect()
            assert all(r == b"r" * BLOCK for r in await bounded(asyncio.gather(*reads)))
            assert first.fences == [] and device.stats.fences == 0

    run(body)


def test_a_refused_fence_fails_the_write_after_fence_timeout_and_never_reissues_it() -> None:
    async def body() -> None:
        lun = FakeLun()
        first, second = two_paths(lun)
        settings = DeviceSettings(
            policy="failover", io_timeout_min=0.05, reconnect_interval=0.02, fence_timeout=0.3
        )
        async with await MultipathDevice.open([first, second], settings) as device:
            first.hang = True
            first.refuse_login = True  # the path does not come back either
            first.fence_refused = "no session reinstatement on this target (fake)"
            write = asyncio.ensure_future(device.write(0, b"x" * BLOCK))
            await bounded(in_flight_on(first, 1))
            first.disconnect()
            loop = asyncio.get_running_loop()
            started = loop.time()
            with pytest.raises(FenceTimeoutError) as caught:
                await bounded(write)
            waited = loop.time() - started
            assert 0.3 <= waited < 2.0
            message = str(caught.value)
            assert "fake://path1" in message and "no session reinstatement" in message
            assert "fence_timeout=0.3" in message
            assert "fake://path2 write" not in lun.log  # never reissued
            assert lun.data[:BLOCK] == bytes(BLOCK)
            assert device.stats.errors == 1
            # The device still serves: a new write goes to the working path at once.
            await bounded(device.write(BLOCK, b"y" * BLOCK))
            assert lun.data[BLOCK : 2 * BLOCK] == b"y" * BLOCK

    run(body)


def test_a_fence_refused_for_its_portal_group_says_so_in_the_error_and_in_fence_info() -> None:
    """unfenceable_writes = fail: the write is never reissued unfenced."""

    async def body() -> None:
        lun = FakeLun()
        first, second = two_paths(lun)
        settings = DeviceSettings(
            policy="failover",
            io_timeout_min=0.05,
            reconnect_interval=0.02,
            fence_timeout=0.3,
            unfenceable_writes="fail",
        )
        async with await MultipathDevice.open([first, second], settings) as device:
            assert device.fence_info(device.path_objects[0])["reservation"] is None
            first.hang = True
            first.refuse_login = True
            first.scope = "target portal group 1"
            first.fence_refused = "fake://path2 is in target portal group 2, this path in 1"
            first.fence_impossible = True
            write = asyncio.ensure_future(device.write(0, b"x" * BLOCK))
            await bounded(in_flight_on(first, 1))
            first.disconnect()
            with pytest.raises(FenceTimeoutError) as caught:
                await bounded(write)
            why = "no portal in target portal group 1 reachable and no reservation_key"
            assert why in str(caught.value)
            assert "in target portal group 2, this path in 1" in str(caught.value)
            info = device.fence_info(device.path_objects[0])
            assert info["scope"] == "target portal group 1"
            assert info["last_failure"] is not None and why in info["last_failure"]
            assert lun.data[:BLOCK] == bytes(BLOCK)  # never reissued

    run(body)


def test_a_path_no_method_can_fence_has_its_writes_reissued_at_once_by_default() -> None:
    """Alone in its portal group, no reservation_key: reissued now, counted, warned."""

    async def body() -> None:
        lun = FakeLun()
        first, second = two_paths(lun)
        settings = DeviceSettings(
            policy="failover", io_timeout_min=0.05, reconnect_interval=0.02, fence_timeout=5.0
        )
        assert settings.unfenceable_writes == "reissue"
        async with await MultipathDevice.open([first, second], settings) as device:
            first.hang = True
            first.refuse_login = True
            first.scope = "target portal group 1"
            first.fence_refused = "fake://path2 is in target portal group 2, this path in 1"
            first.fence_impossible = True
            write = asyncio.ensure_future(device.write(0, b"x" * BLOCK))
            await bounded(in_flight_on(first, 1))
            first.disconnect()
            loop = asyncio.get_running_loop()
            started = loop.time()
            await bounded(write)
            assert loop.time() - started < 1.0  # not fence_timeout (5 s)
            assert lun.data[:BLOCK] == b"x" * BLOCK
            assert device.stats.unfenced_reissues == 1
            assert device.stats.fences == 0 and device.stats.errors == 0
            info = device.fence_info(device.path_objects[0])
            assert info["last_failure"] is not None
            assert "no reservation_key" in info["last_failure"]

    run(body)


def test_a_transient_fence_refusal_is_not_taken_as_unfenceable() -> None:
    """A plain FenceError (may work later) never leads to an unfenced reissue."""

    async def body() -> None:
        lun = FakeLun()
        first, second = two_paths(lun)
        settings = DeviceSettings(
            policy="failover", io_timeout_min=0.05, reconnect_interval=0.02, fence_timeout=0.3
        )
        async with await MultipathDevice.open([first, second], settings) as device:
            first.hang = True
            first.refuse_login = True
            first.fence_refused = "fencing login through portal x failed: timed out (fake)"
            write = asyncio.ensure_future(device.write(0, b"x" * BLOCK))
            await bounded(in_flight_on(first, 1))
            first.disconnect()
            with pytest.raises(FenceTimeoutError):
                await bounded(write)
            assert device.stats.unfenced_reissues == 0
            assert lun.data[:BLOCK] == bytes(BLOCK)

    run(body)


def test_unfenceable_writes_is_checked() -> None:
    with pytest.raises(UsageError, match="unfenceable_writes must be one of reissue, fail"):
        DeviceSettings(unfenceable_writes="maybe")


def test_the_paths_own_relogin_is_a_fence_when_no_other_path_can_carry_one() -> None:
    async def body() -> None:
        lun = FakeLun()
        first, second = two_paths(lun)
        async with await MultipathDevice.open([first, second], FAST) as device:
            second.refuse_login = True
            second.disconnect()  # path 2 is gone: nothing can carry a fence
            await bounded(device.write(0, b"a" * BLOCK))  # noticed; I/O on path 1
            first.hang = True
            write = asyncio.ensure_future(device.write(BLOCK, b"b" * BLOCK))
            await bounded(in_flight_on(first, 1))
            first.disconnect()  # the monitor logs path 1 in again at once
            first.hang = False
            await bounded(write)
            assert lun.data[BLOCK : 2 * BLOCK] == b"b" * BLOCK
            assert first.fences == []  # no separate fence login was needed
            assert device.stats.fences == 1

    run(body)


def test_a_reservation_key_registers_each_path_and_fences_by_preempting() -> None:
    """With fence_method = reservation: each path registers its own key at open, the
    failed path's key is preempted through the working one (no fencing login), the
    reissued write lands, the old nexus's writes are refused, and close leaves nothing."""

    async def body() -> None:
        lun = FakeLun()
        first, second = two_paths(lun)
        base = 0x6D70617468000000
        settings = DeviceSettings(
            policy="failover", io_timeout_min=0.05, reconnect_interval=0.02,
            reservation_key=base, fence_method="reservation",
        )  # fmt: skip
        async with await MultipathDevice.open([first, second], settings) as device:
            keys = sorted(lun.registrations.values())
            assert [k & ~0xFF00 for k in keys] == [base | 1, base | 2]
            assert lun.reservation == (first.nexus, FENCING_TYPE)
            old_nexus = first.nexus
            first.hang = True
            first.refuse_login = True
            first.fence_refused = "unreachable (fake)"  # nor can its session be reinstated
            write = asyncio.ensure_future(device.write(0, b"n" * BLOCK))
            await bounded(in_flight_on(first, 1))
            first.disconnect()
            await bounded(write)
            assert lun.data[:BLOCK] == b"n" * BLOCK  # reissued on path 2 after the fence
            assert first.fences == []  # no fencing login was counted
            assert old_nexus not in lun.registrations
            # The reservation moved to path 2 with the preempt of the holder's key.
            assert lun.reservation == (second.nexus, FENCING_TYPE)
            assert device.stats.fences == 1
            info = device.fence_info(device.path_objects[0])
            assert info["methods"] == ["persistent-reservation"]
            assert info["reservation"]["registered"] is False
        # Path 1's old session was never ended (it cannot log in): close keeps the
        # reservation and path 2's registration, which refuse its late writes.
        assert list(lun.registrations) == [second.nexus] and lun.reservation is not None
        first.nexus = old_nexus  # a write that was held in the network arrives late
        first._connected, first.hang = True, False
        late = await first.execute(cdb.write16(0, 1), data_out=b"s" * BLOCK)
        assert late.status == ScsiStatus.RESERVATION_CONFLICT
        assert lun.data[:BLOCK] == b"n" * BLOCK

    run(body)


def test_close_removes_every_registration_when_no_preempted_session_can_deliver() -> None:
    async def body() -> None:
        lun = FakeLun()
        first, second = two_paths(lun)
        settings = DeviceSettings(reservation_key=0x6D70617468000000)
        async with await MultipathDevice.open([first, second], settings) as device:
            await bounded(device.write(0, b"a" * BLOCK))
            assert len(lun.registrations) == 2
        assert lun.registrations == {} and lun.reservation is None

    run(body)


def test_a_lun_reserved_by_another_initiator_is_not_taken_over() -> None:
    async def body() -> None:
        lun = FakeLun()
        lun.registrations[99] = 0x0BAD000000000000
        lun.reservation = (99, FENCING_TYPE)
        first, second = two_paths(lun)
        settings = DeviceSettings(reservation_key=0x6D70617468000000)
        with pytest.raises(DeviceError, match="reserved by another initiator"):
            await MultipathDevice.open([first, second], settings)
        assert lun.registrations == {99: 0x0BAD000000000000}

    run(body)
