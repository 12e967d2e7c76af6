"""The filter layer's logic over fake paths (real-rig behaviour: test_device_rig.py).

Every test runs in virtual time (tests/vtime.py): the device's clock is the loop's,
timers fire at their exact virtual times, and spans such as "failed within one I/O
timeout" are asserted exactly, whatever the machine's load.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Sequence

import pytest

from mpath.errors import DeviceError, IdentityMismatchError, NoPathError, TargetIOError, UsageError
from mpath.filter import DeviceSettings, MultipathDevice
from mpath.filter.device import WATCHDOG_TICK
from mpath.filter.path import PathState
from mpath.transports.base import Transport
from tests import vtime
from tests.filter.fakes import BLOCK, FakeLun, FakeTransport, check_condition
from tests.vtime import bounded, elapse, run

FAST = DeviceSettings(policy="round-robin", io_timeout_min=0.05, reconnect_interval=0.02)


def paths(lun: FakeLun, count: int = 2, **kwargs: int | None) -> list[FakeTransport]:
    return [FakeTransport(f"fake://path{i + 1}", lun, **kwargs) for i in range(count)]


async def open_device(
    transports: Sequence[Transport], settings: DeviceSettings | None = None
) -> MultipathDevice:
    """``MultipathDevice.open`` on the virtual clock."""
    return await MultipathDevice.open(transports, settings, clock=vtime.loop().time)


async def reinstated(device: MultipathDevice, index: int) -> None:
    """Wait until path ``index`` (from 1) is active again."""
    changed = asyncio.Event()
    original = device.reinstate

    def spy(path: object) -> None:
        original(path)  # type: ignore[arg-type]
        changed.set()

    device.reinstate = spy  # type: ignore[method-assign]
    while device.paths[index - 1]["state"] != "active":
        await bounded(changed.wait())
        changed.clear()


def test_write_then_read_round_trips_and_reports_the_lun() -> None:
    async def body() -> None:
        lun = FakeLun()
        async with await open_device(paths(lun), FAST) as device:
            assert device.lun is not None and device.lun.wwid == lun.wwid
            assert device.block_size == BLOCK and device.size_bytes == len(lun.data)
            await device.write(4096, b"abcd" * 1024)
            assert await device.read(4096, 4096) == b"abcd" * 1024
            assert lun.data[4096:8192] == b"abcd" * 1024
            await device.flush()

    run(body)


def test_large_requests_are_split_at_the_transfer_limit() -> None:
    async def body() -> None:
        lun = FakeLun()
        transports = paths(lun)
        settings = DeviceSettings(policy="round-robin", max_io_bytes=8192)
        async with await open_device(transports, settings) as device:
            before = sum(t.executed for t in transports)
            payload = bytes(range(256)) * 256  # 64 KiB
            await device.write(0, payload)
            assert sum(t.executed for t in transports) - before == 8
            assert await device.read(0, len(payload)) == payload

    run(body)


def test_misaligned_or_out_of_range_requests_are_usage_errors() -> None:
    async def body() -> None:
        async with await open_device(paths(FakeLun()), FAST) as device:
            with pytest.raises(UsageError, match="multiples"):
                await device.read(100, 512)
            with pytest.raises(UsageError, match="beyond the end"):
                await device.read(device.size_bytes, 512)

    run(body)


def test_commands_in_flight_never_exceed_the_lun_cap() -> None:
    async def body() -> None:
        lun = FakeLun()
        settings = DeviceSettings(policy="round-robin", max_commands=4)
        async with await open_device(paths(lun, 3), settings) as device:
            await asyncio.gather(*(device.write(i * BLOCK, b"x" * BLOCK) for i in range(64)))
        assert lun.max_in_flight == 4

    run(body)


def test_lun_cap_comes_from_the_transport_window_when_not_configured() -> None:
    async def body() -> None:
        async with await open_device(paths(FakeLun(), window=7), FAST) as device:
            assert device.max_commands == 7

    run(body)


def test_connection_loss_fails_the_path_and_reissues_after_close() -> None:
    async def body() -> None:
        lun = FakeLun()
        first, second = paths(lun)
        async with await open_device([first, second], FAST) as device:
            first.hang = True
            writes = [
                asyncio.ensure_future(device.write(i * BLOCK, b"w" * BLOCK)) for i in range(4)
            ]
            await elapse(0.001)  # the writes reach the paths (well before any timeout)
            first.disconnect()
            for w in writes:
                await bounded(w)
            assert lun.data[: 4 * BLOCK] == b"w" * (4 * BLOCK)
            assert device.paths[0]["state"] == "failed"
            assert device.stats.errors == 0 and device.stats.failovers == 1
            # The failed path's session was closed before its writes were reissued.
            assert lun.log.count("fake://path2 write") == 4
            after_close = lun.log[lun.log.index("fake://path1 close") + 1 :]
            assert after_close.count("fake://path2 write") >= 2  # the two reissued writes

    run(body)


def test_a_stalled_path_is_failed_by_the_watchdog_and_its_writes_reissued() -> None:
    async def body() -> None:
        lun = FakeLun()
        first, second = paths(lun)
        async with await open_device([first, second], FAST) as device:
            first.hang = True
            started = vtime.clock()
            await bounded(
                asyncio.gather(*(device.write(i * BLOCK, b"s" * BLOCK) for i in range(8)))
            )
            # Noticed at the first watchdog tick after the I/O timeout, then reissued.
            assert vtime.clock() - started <= FAST.io_timeout_min + WATCHDOG_TICK
            assert device.paths[0]["state"] == "failed"
            assert "no answer" in str(device.paths[0]["last_failure"])
            assert first.closes >= 1
            assert lun.data[: 8 * BLOCK] == b"s" * (8 * BLOCK)

    run(body)


def test_path_error_sense_fails_over_and_target_error_is_returned() -> None:
    async def body() -> None:
        lun = FakeLun()
        first, second = paths(lun)
        async with await open_device([first, second], FAST) as device:
            # 05/25/00: LU not supported on this path (unmapped): a path error.
            first.injected.append(check_condition(0x05, 0x25, 0x00))
            second.injected.append(check_condition(0x05, 0x25, 0x00))
            await device.write(0, b"p" * BLOCK)
            assert lun.data[:BLOCK] == b"p" * BLOCK
            assert device.stats.failovers >= 1
            # 03/11/00: unrecovered read error (medium): returned, path kept.
            active = [t for t in (first, second) if t.connected]
            for t in active:
                t.injected.append(check_condition(0x03, 0x11, 0x00))
            with pytest.raises(TargetIOError, match="read failed on the target"):
                await device.read(0, BLOCK)
            assert any(p["state"] == "active" for p in device.paths)

    run(body)


def test_unit_attention_is_retried_on_the_same_path() -> None:
    async def body() -> None:
        lun = FakeLun()
        transports = paths(lun, 1)
        async with await open_device(transports, FAST) as device:
            transports[0].injected.extend([check_condition(0x06, 0x29, 0x00)] * 2)
            await device.write(0, b"u" * BLOCK)
            assert lun.data[:BLOCK] == b"u" * BLOCK
            assert device.stats.failovers == 0 and device.stats.retries == 2

    run(body)


def test_no_path_retry_zero_fails_at_once_with_a_clear_error() -> None:
    async def body() -> None:
        lun = FakeLun()
        transports = paths(lun)
        settings = DeviceSettings(policy="round-robin", no_path_retry=0, reconnect_interval=10)
        async with await open_device(transports, settings) as device:
            for t in transports:
                t.refuse_login = True
                t.disconnect()
            with pytest.raises(NoPathError, match="no_path_retry=0"):
                await device.write(0, b"n" * BLOCK)

    run(body)


def test_io_waits_for_a_path_that_comes_back_within_no_path_retry() -> None:
    async def body() -> None:
        lun = FakeLun()
        transports = paths(lun)
        settings = DeviceSettings(policy="round-robin", no_path_retry=5, reconnect_interval=0.05)
        async with await open_device(transports, settings) as device:
            for t in transports:
                t.refuse_login = True
                t.disconnect()
            write = asyncio.ensure_future(device.write(0, b"b" * BLOCK))
            await elapse(0.2)  # every path failed and logins refused for 0.2 s
            assert not write.done()
            transports[1].refuse_login = False
            await bounded(write)
            assert lun.data[:BLOCK] == b"b" * BLOCK

    run(body)


def test_failed_path_is_reinstated_after_it_logs_in_again() -> None:
    async def body() -> None:
        lun = FakeLun()
        first, second = paths(lun)
        async with await open_device([first, second], FAST) as device:
            first.disconnect()
            await device.write(0, b"r" * BLOCK)
            await device.write(0, b"r" * BLOCK)
            assert device.paths[0]["state"] == "failed"
            await reinstated(device, 1)
            assert device.paths[0]["failures"] == 1

    run(body)


def test_a_path_whose_identity_changed_is_not_reinstated() -> None:
    async def body() -> None:
        lun = FakeLun()
        first, second = paths(lun)
        async with await open_device([first, second], FAST) as device:
            first.lun = FakeLun(designator=bytes.fromhex("6" + "2" * 31))
            first.disconnect()
            await device.write(0, b"i" * BLOCK)
            await device.write(0, b"i" * BLOCK)
            await elapse(5 * FAST.reconnect_interval)  # recovery tries, and gives up
            assert device.paths[0]["state"] == "failed"
            assert "identity changed" in str(device.paths[0]["last_failure"])

    run(body)


def test_paths_to_different_luns_are_refused_before_any_write() -> None:
    async def body() -> None:
        one, other = FakeLun(), FakeLun(designator=bytes.fromhex("6" + "3" * 31))
        transports = [FakeTransport("fake://a", one), FakeTransport("fake://b", other)]
        with pytest.raises(IdentityMismatchError) as caught:
            await open_device(transports, FAST)
        message = str(caught.value)
        assert one.wwid in message and other.wwid in message
        assert "fake://a" in message and "fake://b" in message
        assert one.data == bytearray(len(one.data)) and other.data == bytearray(len(other.data))
        assert all(not t.connected for t in transports)

    run(body)


def test_open_fails_clearly_when_no_path_logs_in() -> None:
    async def body() -> None:
        transports = paths(FakeLun())
        for t in transports:
            t.refuse_login = True
        with pytest.raises(DeviceError, match="no path could be opened"):
            await open_device(transports, FAST)

    run(body)


def test_a_path_that_cannot_log_in_at_open_starts_failed() -> None:
    async def body() -> None:
        lun = FakeLun()
        first, second = paths(lun)
        first.refuse_login = True
        async with await open_device([first, second], FAST) as device:
            assert [p["state"] for p in device.paths] == ["failed", "active"]
            await device.write(0, b"o" * BLOCK)
            first.refuse_login = False
            await reinstated(device, 1)
            assert PathState(device.paths[0]["state"]) is PathState.ACTIVE

    run(body)


def test_sync_wrapper_reads_writes_and_closes() -> None:
    from mpath.filter.sync import SyncMultipathDevice

    lun = FakeLun()
    transports = paths(lun)
    with SyncMultipathDevice.open(transports, FAST) as device:
        device.write(0, b"z" * BLOCK)
        assert device.read(0, BLOCK) == b"z" * BLOCK
        device.flush()
        assert device.stats["bytes_written"] == BLOCK
    assert all(not t.connected for t in transports)


@pytest.mark.parametrize("policy", ["round-robin", "share", "quota", "failover"])
def test_alua_transition_goes_to_another_path_without_failing_this_one(policy: str) -> None:
    async def body() -> None:
        lun = FakeLun()
        first, second = paths(lun)
        settings = dataclasses.replace(FAST, policy=policy)
        async with await open_device([first, second], settings) as device:
            # NOT READY 04/0a (asymmetric access state transition) on path 1 only.
            first.injected.append(check_condition(0x02, 0x04, 0x0A))
            for i in range(4):
                pending = bool(first.injected)
                await device.write(i * BLOCK, b"t" * BLOCK)
                if pending and not first.injected:  # this write met the transition
                    assert lun.log[-1] == "fake://path2 write", lun.log
            assert not first.injected
            assert lun.data[: 4 * BLOCK] == b"t" * (4 * BLOCK)
            assert [p["state"] for p in device.paths] == ["active", "active"]
            assert device.stats.failovers == 0

    run(body)


def test_priority_groups_use_the_highest_group_with_a_usable_path() -> None:
    async def body() -> None:
        lun = FakeLun()
        low, high = paths(lun)
        settings = DeviceSettings(policy="round-robin", priorities=(1, 50), reconnect_interval=10)
        async with await open_device([low, high], settings) as device:
            for i in range(4):
                await device.write(i * BLOCK, b"g" * BLOCK)
            assert [p["priority"] for p in device.paths] == [1, 50]
            assert [p["ios"] for p in device.paths] == [0, 4]
            high.disconnect()
            await device.write(0, b"h" * BLOCK)
            assert device.paths[0]["ios"] == 1  # the standby group took over

    run(body)


def test_priorities_must_match_the_paths() -> None:
    with pytest.raises(UsageError, match="3 priorities given for 2 paths"):
        MultipathDevice(paths(FakeLun()), DeviceSettings(priorities=(1, 2, 3)))


def test_per_path_arguments_reach_the_policy() -> None:
    """quota with weights 1 and 3: the bytes split 1:3, as the kernel table's args do."""

    async def body() -> None:
        lun = FakeLun()
        settings = DeviceSettings(
            policy="quota", policy_args=("quantum=512",), path_args=(("1",), ("3",))
        )
        async with await open_device(paths(lun), settings) as device:
            for i in range(8):
                await device.write(i * BLOCK, b"q" * BLOCK)
            assert [p["ios"] for p in device.paths] == [2, 6]

    run(body)


def test_share_fill_bdp_reaches_the_device_as_a_selector_argument() -> None:
    """share's opt-in variant is chosen by its argument, like any selector argument."""

    async def body() -> None:
        lun = FakeLun()
        settings = dataclasses.replace(FAST, policy="share", policy_args=("fill=bdp",))
        async with await open_device(paths(lun), settings) as device:
            assert device.selector_status()["fill"] == "bdp"
            for i in range(8):
                await device.write(i * BLOCK, b"f" * BLOCK)
            assert await device.read(0, 8 * BLOCK) == b"f" * (8 * BLOCK)
            assert sum(p["ios"] for p in device.paths) == 9

    run(body)


def test_per_path_arguments_must_match_the_paths() -> None:
    with pytest.raises(UsageError, match="per-path arguments given for 1 paths"):
        MultipathDevice(paths(FakeLun()), DeviceSettings(path_args=(("1",),)))


def test_time_the_event_loop_was_blocked_does_not_count_as_a_stall() -> None:
    async def body() -> None:
        lun = FakeLun()
        first, second = paths(lun)
        async with await open_device([first, second], FAST) as device:
            first.hang = True
            second.hang = True
            writes = asyncio.gather(*(device.write(i * BLOCK, b"l" * BLOCK) for i in range(2)))
            await elapse(0.01)  # both commands are out, on both paths
            # The answers arrive after the watchdog's next tick is due, and the loop
            # does not run for 6x io_timeout_min (like a CPU stall) meanwhile: the tick
            # runs first and sees no progress for 0.3 s.
            loop = vtime.loop()
            loop.call_later(0.08, first.release)
            loop.call_later(0.08, second.release)
            loop.stall(0.3)
            await bounded(writes)
            assert [p["state"] for p in device.paths] == ["active", "active"]
            assert device.stats.failovers == 0

    run(body)


def test_a_long_cache_flush_is_not_taken_for_a_dead_path() -> None:
    async def body() -> None:
        lun = FakeLun()
        first, second = paths(lun)
        async with await open_device([first, second], FAST) as device:
            first.hang = second.hang = True
            flush = asyncio.ensure_future(device.flush())
            await elapse(0.3)  # the flush runs 6x io_timeout_min (the scenario)
            assert not flush.done()
            first.release()
            second.release()
            await bounded(flush)
            assert device.stats.failovers == 0
            assert [p["state"] for p in device.paths] == ["active", "active"]

    run(body)


def test_refresh_capacity_takes_a_grown_lun_and_serves_its_new_end() -> None:
    async def body() -> None:
        lun = FakeLun(blocks=2048)
        async with await open_device(paths(lun), FAST) as device:
            with pytest.raises(UsageError, match="beyond the end"):
                await device.write(2048 * BLOCK, b"n" * BLOCK)
            lun.grow(4096)
            assert device.size_bytes == 2048 * BLOCK  # nobody re-read it yet
            change = await device.refresh_capacity()
            assert (change.old_bytes, change.new_bytes, change.grown) == (
                2048 * BLOCK,
                4096 * BLOCK,
                True,
            )
            assert change.reports == {"fake://path1": 4096 * BLOCK, "fake://path2": 4096 * BLOCK}
            assert device.size_bytes == 4096 * BLOCK
            await device.write(4095 * BLOCK, b"n" * BLOCK)
            assert lun.data[-BLOCK:] == b"n" * BLOCK
            again = await device.refresh_capacity()
            assert not again.grown and again.new_bytes == 4096 * BLOCK

    run(body)


def test_refresh_capacity_refuses_a_shrink_and_disagreeing_paths() -> None:
    async def body() -> None:
        lun = FakeLun(blocks=2048)
        first, second = paths(lun)
        async with await open_device([first, second], FAST) as device:
            first.reported_blocks = second.reported_blocks = 1024
            with pytest.raises(DeviceError, match="shrank from 1048576 to 524288 bytes: refused"):
                await device.refresh_capacity()
            assert device.size_bytes == 2048 * BLOCK
            first.reported_blocks = 4096
            second.reported_blocks = None
            with pytest.raises(DeviceError, match="paths disagree on the capacity"):
                await device.refresh_capacity()
            assert device.size_bytes == 2048 * BLOCK


def test_every_path_silent_at_once_is_a_slow_lun_and_fails_none() -> None:
    """The LUN stalls on every path for 1 s (20x io_timeout_min), then answers."""

    async def body() -> None:
        lun = FakeLun()
        first, second = paths(lun)
        async with await open_device([first, second], FAST) as device:
            first.hang = second.hang = True
            writes = asyncio.gather(*(device.write(i * BLOCK, b"w" * BLOCK) for i in range(8)))
            await elapse(1.0)
            first.release()
            second.release()
            await bounded(writes)
            assert [p["state"] for p in device.paths] == ["active", "active"]
            assert device.stats.failovers == 0
            assert device.stats.lun_stalls == 1

    run(body)


def test_refresh_capacity_leaves_out_failed_paths() -> None:
    async def body() -> None:
        lun = FakeLun(blocks=2048)
        first, second = paths(lun)
        settings = dataclasses.replace(FAST, reconnect_interval=100)
        async with await open_device([first, second], settings) as device:
            second.reported_blocks = 1  # stale, but it is failed: not asked
            second.refuse_login = True
            second.disconnect()
            await device.write(0, b"f" * BLOCK)
            await device.write(BLOCK, b"f" * BLOCK)
            assert [p["state"] for p in device.paths] == ["active", "failed"]
            lun.grow(3072)
            change = await device.refresh_capacity()
            assert change.reports == {"fake://path1": 3072 * BLOCK}
            assert device.size_bytes == 3072 * BLOCK
            first.disconnect()
            first.refuse_login = True
            await elapse(WATCHDOG_TICK)
            with pytest.raises(DeviceError, match="no usable path answered READ CAPACITY"):
                await device.refresh_capacity()


def test_every_path_silent_past_the_lun_limit_fails_them_all() -> None:
    async def body() -> None:
        lun = FakeLun()
        first, second = paths(lun)
        settings = dataclasses.replace(FAST, no_path_retry=0.0)
        async with await open_device([first, second], settings) as device:
            first.hang = second.hang = True
            first.refuse_login = second.refuse_login = True
            started = vtime.clock()
            with pytest.raises(NoPathError, match="nor from any other path"):
                await bounded(device.write(0, b"w" * BLOCK), 10.0)
            limit = device.stall_judge.lun_limit()
            assert limit == settings.io_timeout_max  # no stall history: the floor
            # Failed at the first tick past it; the write's error follows once its
            # fence is given up (no path left to carry it).
            assert limit < vtime.clock() - started <= limit + 0.5
            assert device.stats.failovers == 2

    run(body)


def test_capacity_data_has_changed_makes_the_device_re_read_the_size() -> None:
    async def body() -> None:
        lun = FakeLun(blocks=2048)
        first, second = paths(lun)
        async with await open_device([first, second], FAST) as device:
            lun.grow(2560)
            first.injected.append(check_condition(0x06, 0x2A, 0x09))
            second.injected.append(check_condition(0x06, 0x2A, 0x09))
            await device.write(0, b"u" * BLOCK)  # meets the unit attention, reissued
            await elapse(0.01)
            assert device.size_bytes == 2560 * BLOCK


def test_a_dead_active_path_is_failed_fast_when_its_standby_answers() -> None:
    """Active/standby: nothing else is busy to compare with, so the standby is asked."""

    async def body() -> None:
        lun = FakeLun()
        first, second = paths(lun)
        settings = dataclasses.replace(FAST, priorities=(50, 1))
        async with await open_device([first, second], settings) as device:
            await device.write(0, b"a" * BLOCK)
            first.hang = True
            started = vtime.clock()
            await bounded(device.write(0, b"b" * BLOCK))
            assert vtime.clock() - started <= FAST.io_timeout_min + 2 * WATCHDOG_TICK
            assert "while path 2 answered" in str(device.paths[0]["last_failure"])
            assert lun.data[:BLOCK] == b"b" * BLOCK

    run(body)


def test_each_path_counts_reads_and_writes_apart() -> None:
    async def body() -> None:
        lun = FakeLun()
        transports = paths(lun, 1)
        async with await open_device(transports, FAST) as device:
            before = dict(device.paths[0])
            await device.write(0, b"w" * (3 * BLOCK))
            await device.write(8 * BLOCK, b"v" * BLOCK)
            await device.read(0, 2 * BLOCK)
            await device.flush()  # neither a read nor a write
            row = device.paths[0]
            assert (row["reads"] - before["reads"], row["read_bytes"] - before["read_bytes"]) == (
                1,
                2 * BLOCK,
            )
            assert (row["writes"] - before["writes"],
                    row["written_bytes"] - before["written_bytes"]) == (2, 4 * BLOCK)  # fmt: skip
            assert row["ios"] - before["ios"] == 4
            assert row["bytes"] - before["bytes"] == 6 * BLOCK

    run(body)


def test_each_completed_command_counts_in_its_paths_latency_histogram() -> None:
    async def body() -> None:
        lun = FakeLun()
        (transport,) = transports = paths(lun, 1)
        async with await open_device(transports, FAST) as device:
            histogram = device.path_objects[0].histogram
            before = list(histogram.counts)
            transport.hang = True
            write = asyncio.ensure_future(device.write(0, b"h" * BLOCK))
            await elapse(0.003)  # answered after 3 ms (below the I/O timeout)
            transport.release()
            await bounded(write)
            await device.read(0, BLOCK)  # answered at once
            added = [a - b for a, b in zip(histogram.counts, before, strict=True)]
            cumulative = dict(histogram.cumulative())
            assert sum(added) == 2
            assert added[0] == 1  # the read: within 0.5 ms
            assert added[3] == 1  # the write: 3 ms, in the bucket up to 5 ms
            assert cumulative[0.0025] - sum(before[:3]) == 1
            assert histogram.count == device.paths[0]["ios"]
            assert histogram.sum >= 0.003

    run(body)


def test_time_queued_with_no_path_is_counted_and_a_wait_that_ends_in_time_fails_nothing() -> None:
    async def body() -> None:
        lun = FakeLun()
        transports = paths(lun)
        settings = DeviceSettings(policy="round-robin", no_path_retry=5, reconnect_interval=0.05)
        async with await open_device(transports, settings) as device:
            assert device.stats.describe()["queueing_seconds"] == 0
            for t in transports:
                t.refuse_login = True
                t.disconnect()
            started = vtime.clock()
            write = asyncio.ensure_future(device.write(0, b"q" * BLOCK))
            await elapse(0.2)
            assert 0.19 <= device.stats.no_path.seconds() <= 0.2  # counted while it waits
            transports[0].refuse_login = False
            await bounded(write)
            waited = vtime.clock() - started
            stats = device.stats.describe()
            assert waited >= 0.2 and abs(float(stats["queueing_seconds"]) - waited) < 0.002
            assert stats["fail_io"] == 0
            await elapse(1.0)  # with a path back, time no longer counts
            assert device.stats.describe()["queueing_seconds"] == stats["queueing_seconds"]

    run(body)


def test_failing_io_is_counted_once_per_outage_and_queueing_once_per_second() -> None:
    async def body() -> None:
        lun = FakeLun()
        transports = paths(lun)
        settings = DeviceSettings(policy="round-robin", no_path_retry=1, reconnect_interval=0.05)
        async with await open_device(transports, settings) as device:
            for t in transports:
                t.refuse_login = True
                t.disconnect()
            writes = [device.write(i * BLOCK, b"f" * BLOCK) for i in range(2)]
            outcomes = await bounded(asyncio.gather(*writes, return_exceptions=True))
            assert all(isinstance(o, NoPathError) for o in outcomes)
            # Two commands waited the same second at once: one second of queueing.
            assert abs(device.stats.no_path.seconds() - 1.0) < 0.002
            assert device.stats.no_path.fail_io == 1
            with pytest.raises(NoPathError):
                await bounded(device.write(0, b"f" * BLOCK))
            assert abs(device.stats.no_path.seconds() - 2.0) < 0.002
            assert device.stats.no_path.fail_io == 1  # the same outage
            transports[1].refuse_login = False
            await reinstated(device, 2)
            await device.write(0, b"g" * BLOCK)
            assert not device.stats.no_path.failing
            for t in transports:
                t.refuse_login = True
                t.disconnect()
            with pytest.raises(NoPathError):
                await bounded(device.write(0, b"f" * BLOCK))
            assert device.stats.describe()["fail_io"] == 2  # a second outage
            assert abs(device.stats.no_path.seconds() - 3.0) < 0.002

    run(body)
