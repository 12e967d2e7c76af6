"""``MultipathDevice.start_read`` and ``start_write``: I/O without a task, over fake paths.

What they must keep: the data and counters of :meth:`read` and :meth:`write`, the LUN's
cap on commands, and the one command engine's failover, fencing and retries for
anything but a plain GOOD answer. Each case runs over a transport with a direct
``submit`` and over one without (``execute`` in a task). Virtual time, as in
test_device.py.
"""

from __future__ import annotations

import asyncio

import pytest

from mpath.errors import DeviceError, NoPathError, TargetIOError, UsageError
from mpath.filter import DeviceSettings
from mpath.transports.base import ScsiResult, ScsiStatus
from tests.filter.fakes import BLOCK, DirectFakeTransport, FakeLun, FakeTransport, check_condition
from tests.filter.test_device import FAST, open_device
from tests.vtime import bounded, elapse, run

KINDS = [FakeTransport, DirectFakeTransport]


def fill(lun: FakeLun) -> None:
    """Every block of the LUN holds a pattern of its own number."""
    for block in range(lun.blocks):
        lun.data[block * BLOCK : (block + 1) * BLOCK] = block.to_bytes(4, "big") * (BLOCK // 4)


def two(lun: FakeLun, kind: type[FakeTransport]) -> list[FakeTransport]:
    return [kind(f"fake://path{i + 1}", lun) for i in range(2)]


@pytest.mark.parametrize("kind", KINDS)
def test_direct_reads_return_what_read_returns_and_count_alike(kind: type[FakeTransport]) -> None:
    async def body() -> None:
        lun = FakeLun()
        fill(lun)
        async with await open_device(two(lun, kind), FAST) as device:

            async def not_this_way(offset: int, length: int) -> bytes:
                raise AssertionError("start_read fell back to read()")

            device.read = not_this_way  # type: ignore[method-assign]
            reads = [device.start_read(i * 4096, 4096) for i in range(32)]
            got = await bounded(asyncio.gather(*reads))
            assert got == [bytes(lun.data[i * 4096 : (i + 1) * 4096]) for i in range(32)]
            assert device.stats.ios == 32 and device.stats.bytes_read == 32 * 4096
            assert sum(p["reads"] for p in device.paths) == 32
            assert all(p["reads"] == 16 and p["in_flight"] == 0 for p in device.paths)
            assert device._slots.free == device.max_commands  # every slot given back

    run(body)


@pytest.mark.parametrize("kind", KINDS)
def test_direct_reads_beyond_the_cap_wait_for_a_slot(kind: type[FakeTransport]) -> None:
    async def body() -> None:
        lun = FakeLun()
        fill(lun)
        settings = DeviceSettings(policy="round-robin", max_commands=4)
        async with await open_device(two(lun, kind), settings) as device:
            reads = [device.start_read(i * BLOCK, BLOCK) for i in range(64)]
            got = await bounded(asyncio.gather(*reads))
            assert got == [bytes(lun.data[i * BLOCK : (i + 1) * BLOCK]) for i in range(64)]
            assert lun.max_in_flight == 4
            assert device._slots.free == 4

    run(body)


@pytest.mark.parametrize("kind", KINDS)
def test_a_direct_read_whose_path_breaks_is_read_again_on_the_other(
    kind: type[FakeTransport],
) -> None:
    async def body() -> None:
        lun = FakeLun()
        fill(lun)
        first, second = two(lun, kind)
        async with await open_device([first, second], FAST) as device:
            first.hang = True
            reads = [device.start_read(i * BLOCK, BLOCK) for i in range(8)]
            await elapse(0.001)
            first.disconnect()
            got = await bounded(asyncio.gather(*reads))
            assert got == [bytes(lun.data[i * BLOCK : (i + 1) * BLOCK]) for i in range(8)]
            assert device.paths[0]["state"] == "failed" and device.stats.failovers == 1
            assert device.stats.errors == 0 and device.stats.retries == 4
            # A direct read sent on the failed path before it is noticed (the session is
            # down, so submit refuses it at once) goes to the engine as well.
            again = await bounded(asyncio.gather(*(device.start_read(0, BLOCK) for _ in range(4))))
            assert again == [bytes(lun.data[:BLOCK])] * 4
            assert device._slots.free == device.max_commands

    run(body)


@pytest.mark.parametrize("kind", KINDS)
def test_sense_data_on_a_direct_read_is_handled_by_the_engine(kind: type[FakeTransport]) -> None:
    async def body() -> None:
        lun = FakeLun()
        fill(lun)
        transports = [kind("fake://path1", lun)]
        async with await open_device(transports, FAST) as device:
            # A unit attention: retried on the same path.
            transports[0].injected.append(check_condition(0x06, 0x29, 0x00))
            assert await bounded(device.start_read(BLOCK, BLOCK)) == bytes(lun.data[BLOCK:1024])
            assert device.stats.retries == 1 and device.stats.failovers == 0
            # A medium error: the target's answer, raised as read() raises it.
            transports[0].injected.append(check_condition(0x03, 0x11, 0x00))
            with pytest.raises(TargetIOError, match="read failed on the target"):
                await bounded(device.start_read(0, BLOCK))
            # A GOOD answer short of what was asked: an error, never short data.
            transports[0].injected.append(ScsiResult(ScsiStatus.GOOD, data=bytes(BLOCK // 2)))
            with pytest.raises(DeviceError, match="returned 256 of 512 bytes"):
                await bounded(device.start_read(0, BLOCK))
            assert device._slots.free == device.max_commands

    run(body)


@pytest.mark.parametrize("kind", KINDS)
def test_a_direct_read_with_no_path_waits_then_fails_as_read_does(
    kind: type[FakeTransport],
) -> None:
    async def body() -> None:
        lun = FakeLun()
        transports = two(lun, kind)
        settings = DeviceSettings(
            policy="round-robin", no_path_retry=0.5, reconnect_interval=10, io_timeout_min=0.05
        )
        async with await open_device(transports, settings) as device:
            for t in transports:
                t.refuse_login = True
                t.disconnect()
            with pytest.raises(NoPathError):
                await bounded(device.start_read(0, BLOCK))
            assert device._slots.free == device.max_commands

    run(body)


def test_a_direct_read_of_a_closed_device_or_a_bad_range_raises() -> None:
    async def body() -> None:
        device = await open_device(two(FakeLun(), DirectFakeTransport), FAST)
        with pytest.raises(UsageError, match="beyond the end"):
            await device.start_read(device.size_bytes, BLOCK)
        assert device._slots.free == device.max_commands
        await device.close()
        with pytest.raises(DeviceError, match="device is closed"):
            await bounded(device.start_read(0, BLOCK))

    run(body)


@pytest.mark.parametrize("kind", KINDS)
def test_direct_writes_land_and_count_as_write_does(kind: type[FakeTransport]) -> None:
    async def body() -> None:
        lun = FakeLun()
        async with await open_device(two(lun, kind), FAST) as device:

            async def not_this_way(*_: object, **__: object) -> None:
                raise AssertionError("start_write fell back to write()")

            device.write = not_this_way  # type: ignore[method-assign]
            payloads = [bytes([i]) * 4096 for i in range(16)]
            writes = [device.start_write(i * 4096, p) for i, p in enumerate(payloads)]
            assert await bounded(asyncio.gather(*writes)) == [None] * 16
            assert bytes(lun.data[: 16 * 4096]) == b"".join(payloads)
            assert device.stats.ios == 16 and device.stats.bytes_written == 16 * 4096
            assert [p["writes"] for p in device.paths] == [8, 8]
            assert device._slots.free == device.max_commands

    run(body)


@pytest.mark.parametrize("kind", KINDS)
def test_a_direct_write_whose_path_breaks_is_reissued_only_after_the_path_is_closed(
    kind: type[FakeTransport],
) -> None:
    async def body() -> None:
        lun = FakeLun()
        first, second = two(lun, kind)
        async with await open_device([first, second], FAST) as device:
            first.hang = True
            writes = [device.start_write(i * BLOCK, b"w" * BLOCK) for i in range(4)]
            await elapse(0.001)  # the writes reach the paths (well before any timeout)
            first.disconnect()
            await bounded(asyncio.gather(*writes))
            assert lun.data[: 4 * BLOCK] == b"w" * (4 * BLOCK)
            assert device.paths[0]["state"] == "failed" and device.stats.failovers == 1
            # The failed path's session was closed (fenced) before its two writes went
            # down the other path.
            assert lun.log.count("fake://path2 write") == 4
            after_close = lun.log[lun.log.index("fake://path1 close") + 1 :]
            assert after_close.count("fake://path2 write") == 2
            assert device._slots.free == device.max_commands

    run(body)


@pytest.mark.parametrize("kind", KINDS)
def test_sense_data_on_a_direct_write_is_handled_by_the_engine(kind: type[FakeTransport]) -> None:
    async def body() -> None:
        lun = FakeLun()
        transports = [kind("fake://path1", lun)]
        async with await open_device(transports, FAST) as device:
            transports[0].injected.extend([check_condition(0x06, 0x29, 0x00)] * 2)
            await bounded(device.start_write(0, b"u" * BLOCK))
            assert lun.data[:BLOCK] == b"u" * BLOCK
            assert device.stats.retries == 2 and device.stats.failovers == 0
            transports[0].injected.append(check_condition(0x05, 0x24, 0x00))  # bad CDB field
            with pytest.raises(TargetIOError, match="write failed on the target"):
                await bounded(device.start_write(BLOCK, b"x" * BLOCK))
            assert lun.data[BLOCK : 2 * BLOCK] == bytes(BLOCK)
            assert device._slots.free == device.max_commands

    run(body)
