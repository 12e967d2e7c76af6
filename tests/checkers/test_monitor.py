"""CheckerMonitor over fake paths: detection, recovery, damping, failback, isolation.

Every test runs in virtual time (tests/vtime.py): the device and the monitor share the
loop's clock, so polling intervals, checker timeouts, damping and failback delays
happen at their exact virtual times and the spans between events are asserted exactly.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable

import pytest

from mpath.checkers.damping import DampingSettings
from mpath.checkers.monitor import BATCH_SLACK, CheckerMonitor, EventKind, Hold, MonitorEvent
from mpath.checkers.settings import CheckerSettings
from mpath.errors import DeviceError, UsageError
from mpath.filter import DeviceSettings, MultipathDevice
from mpath.filter.monitor import MonitoredDevice
from mpath.filter.path import Path, PathState
from mpath.scsi.states import CheckerState
from tests import vtime
from tests.checkers.grouped import grouped_device
from tests.filter.fakes import FakeLun, FakeTransport
from tests.vtime import bounded, clock, elapse, run

DEVICE = DeviceSettings(policy="round-robin", io_timeout_min=0.05, no_path_retry=2.0)
FAST = CheckerSettings(
    timeout=0.05,
    polling_interval=0.05,
    max_polling_interval=0.2,
    login_timeout=0.2,
    damping=DampingSettings(flap_threshold=3, flap_window=10.0, recovery_time=0.3),
)


def fakes(count: int = 2) -> list[FakeTransport]:
    lun = FakeLun()
    return [FakeTransport(f"fake://p{i + 1}", lun) for i in range(count)]


def cut(transport: FakeTransport) -> None:
    """Black-hole the path: commands hang, logins fail."""
    transport.hang = True
    transport.refuse_login = True


def mend(transport: FakeTransport) -> None:
    transport.hang = False
    transport.refuse_login = False


async def open_device(
    transports: list[FakeTransport],
    settings: CheckerSettings = FAST,
    device_class: type[MultipathDevice] = MultipathDevice,
) -> tuple[MultipathDevice, CheckerMonitor]:
    monitors: list[CheckerMonitor] = []
    now = vtime.loop().time

    def factory(device: MonitoredDevice) -> CheckerMonitor:
        monitors.append(CheckerMonitor(device, settings, clock=now))
        return monitors[0]

    device = await device_class.open(transports, DEVICE, monitor=factory, clock=now)
    return device, monitors[0]


def path(device: MultipathDevice, index: int) -> Path:
    return device.path_objects[index - 1]


async def event(
    monitor: CheckerMonitor, url: str, kind: EventKind, after: MonitorEvent | None = None
) -> MonitorEvent:
    """The first event of ``kind`` for ``url`` logged after ``after`` (waits, bounded).

    "After" is by position in the log, not by time: in virtual time several events
    happen at the same instant.
    """

    def found() -> MonitorEvent | None:
        events = list(monitor.events)
        start = 0
        if after is not None:
            start = next(i for i, e in enumerate(events) if e is after) + 1
        return next((e for e in events[start:] if e.url == url and e.kind is kind), None)

    await bounded(monitor.wait_until(lambda: found() is not None))
    result = found()
    assert result is not None
    return result


def test_settings_are_validated() -> None:
    with pytest.raises(UsageError, match="unknown checker"):
        CheckerSettings(checker="hp_sw")
    with pytest.raises(UsageError, match="max_polling_interval"):
        CheckerSettings(polling_interval=5, max_polling_interval=1)
    with pytest.raises(UsageError, match="failback"):
        CheckerSettings(failback="later")
    defaults = CheckerSettings()
    assert (defaults.checker, defaults.timeout, defaults.failback) == ("tur", 2.0, "immediate")
    assert (defaults.polling_interval, defaults.max_polling_interval) == (5.0, 20.0)


def test_an_idle_path_that_stops_answering_is_failed_within_two_intervals() -> None:
    async def body() -> None:
        transports = fakes()
        device, monitor = await open_device(transports)
        try:
            await bounded(monitor.wait_until(lambda: monitor.watch(path(device, 1)).checks >= 2))
            interval = monitor.watch(path(device, 1)).interval
            cut_at = clock()
            cut(transports[0])
            down = await event(monitor, "fake://p1", EventKind.DOWN)
            assert "TUR timed out" in down.detail
            assert down.at - cut_at <= 2 * interval + FAST.timeout
            assert path(device, 1).state is PathState.FAILED
            assert path(device, 1).last_failure.startswith("checker tur: TUR timed out")
            assert path(device, 2).state is PathState.ACTIVE
            await device.write(0, b"x" * 512)  # I/O goes on over path 2
        finally:
            await device.close()

    run(body)


def test_checks_timing_out_on_every_path_at_once_fail_none(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A slow LUN, not dead paths: every idle path's checks time out together."""

    async def body() -> None:
        transports = fakes()
        device, monitor = await open_device(transports)
        try:
            await bounded(monitor.wait_until(lambda: monitor.watch(path(device, 1)).checks >= 2))
            for transport in transports:
                transport.hang = True  # the target answers nothing on any path
            await elapse(DEVICE.lun_stall_timeout / 2)
            assert monitor.watch(path(device, 1)).silent_since is not None
            for transport in transports:
                transport.release()
            await elapse(1.0)
            assert [p.state for p in device.path_objects] == [PathState.ACTIVE] * 2
            assert device.stats.failovers == 0
        finally:
            await device.close()

    with caplog.at_level(logging.INFO, logger="mpath.checkers.monitor"):
        run(body)
    slow = [r for r in caplog.records if "the LUN is slow, not this path" in r.getMessage()]
    assert len(slow) == 1, [r.getMessage() for r in caplog.records]


def test_a_single_silent_path_is_failed_after_lun_stall_timeout() -> None:
    """One path: nothing to compare with, so its silence is the LUN's, up to the bound."""

    async def body() -> None:
        transports = fakes(1)
        device, monitor = await open_device(transports)
        try:
            await bounded(monitor.wait_until(lambda: monitor.watch(path(device, 1)).checks >= 2))
            cut_at = clock()
            cut(transports[0])
            await elapse(DEVICE.lun_stall_timeout - 0.5)
            assert path(device, 1).state is PathState.ACTIVE
            down = await event(monitor, "fake://p1", EventKind.DOWN)
            limit = DEVICE.lun_stall_timeout + FAST.max_polling_interval + 2 * FAST.timeout
            assert down.at - cut_at <= limit
        finally:
            await device.close()

    run(body)


def test_a_recovered_path_is_logged_in_again_and_reinstated() -> None:
    async def body() -> None:
        transports = fakes()
        device, monitor = await open_device(transports)
        try:
            cut(transports[0])
            await event(monitor, "fake://p1", EventKind.FAILED)
            assert monitor.checker_state(path(device, 1)) in (
                CheckerState.DOWN,
                CheckerState.TIMEOUT,
            )
            mended_at = clock()
            mend(transports[0])
            back = await event(monitor, "fake://p1", EventKind.REINSTATED)
            assert back.at - mended_at <= FAST.polling_interval  # its next check
            assert path(device, 1).state is PathState.ACTIVE
            assert monitor.checker_state(path(device, 1)) is CheckerState.UP
        finally:
            await device.close()

    run(body)


def test_a_device_failure_is_rechecked_at_once_not_at_the_next_interval() -> None:
    async def body() -> None:
        slow = CheckerSettings(polling_interval=30.0, max_polling_interval=30.0, timeout=0.2)
        device, monitor = await open_device(fakes(), slow)
        try:
            failed_at = clock()
            await device.fail(path(device, 1), "read: CHECK CONDITION (test)")
            back = await event(monitor, "fake://p1", EventKind.REINSTATED)
            assert back.at - failed_at < slow.timeout  # one check, not 30 s later
            kinds = [e.kind for e in monitor.events if e.url == "fake://p1"]
            assert kinds == [EventKind.FAILED, EventKind.REINSTATED]
        finally:
            await device.close()

    run(body)


def test_a_stable_path_backs_off_to_the_maximum_interval() -> None:
    async def body() -> None:
        device, monitor = await open_device(fakes(1))
        try:
            watch = monitor.watch(path(device, 1))
            await bounded(monitor.wait_until(lambda: watch.checks >= 4))
            assert watch.interval == FAST.max_polling_interval
            await device.fail(path(device, 1), "test")
            await bounded(monitor.wait_until(lambda: path(device, 1).state is PathState.ACTIVE))
            assert watch.interval == FAST.polling_interval  # a change resets it
        finally:
            await device.close()

    run(body)


async def _flap_until_held(device: MultipathDevice, monitor: CheckerMonitor) -> None:
    """Fail path 1 three times, each after it came back: the third makes it shaky."""
    p1 = path(device, 1)
    for _ in range(3):
        await bounded(monitor.wait_until(lambda: p1.state is PathState.ACTIVE))
        await device.fail(p1, "write: no answer for 300 ms (test)")
    await event(monitor, "fake://p1", EventKind.HELD_SHAKY)


def test_a_flapping_path_is_held_shaky_then_reinstated_after_the_recovery_time() -> None:
    async def body() -> None:
        device, monitor = await open_device(fakes())
        try:
            await _flap_until_held(device, monitor)
            p1 = path(device, 1)
            watch = monitor.watch(p1)
            assert watch.hold is Hold.SHAKY and monitor.checker_state(p1) is CheckerState.SHAKY
            assert p1.state is PathState.FAILED
            held = next(e for e in monitor.events if e.kind is EventKind.HELD_SHAKY)
            back = await event(monitor, "fake://p1", EventKind.REINSTATED, after=held)
            assert back.at - held.at >= FAST.damping.recovery_time - BATCH_SLACK
            assert path(device, 1).state is PathState.ACTIVE and watch.hold is None
            reinstated = [e for e in monitor.events if e.kind is EventKind.REINSTATED]
            assert len(reinstated) == 3  # twice during the flapping, once when stable
        finally:
            await device.close()

    run(body)


def test_a_shaky_path_is_used_at_once_when_no_other_path_is_left() -> None:
    async def body() -> None:
        transports = fakes()
        settings = CheckerSettings(
            timeout=0.05,
            polling_interval=0.05,
            max_polling_interval=0.05,
            login_timeout=0.2,
            damping=DampingSettings(recovery_time=60.0),
        )
        device, monitor = await open_device(transports, settings)
        try:
            await _flap_until_held(device, monitor)
            cut(transports[1])
            rescued = await event(monitor, "fake://p1", EventKind.RESCUED)
            assert rescued.detail == "no other usable path"
            await bounded(device.write(0, b"y" * 512))
        finally:
            await device.close()

    run(body)


def test_a_hung_path_never_delays_the_checks_of_the_others() -> None:
    async def body() -> None:
        transports = fakes(3)
        settings = CheckerSettings(
            timeout=0.5, polling_interval=0.05, max_polling_interval=0.05, login_timeout=2.0
        )
        device, monitor = await open_device(transports, settings)
        try:
            transports[0].hang = True  # its checks each take the whole 0.5 s timeout
            others = [monitor.watch(path(device, i)) for i in (2, 3)]
            before = [w.checks for w in others]
            await elapse(0.5)  # the span over which checks are counted
            gained = [w.checks - b for w, b in zip(others, before, strict=True)]
            assert min(gained) >= 9  # 10 intervals of 0.05 s in 0.5 s
        finally:
            await device.close()

    run(body)


def test_checker_that_cannot_judge_never_fails_paths_and_login_vouches_for_recovery() -> None:
    async def body() -> None:
        settings = CheckerSettings(
            checker="nop", timeout=0.05, polling_interval=0.05, max_polling_interval=0.05
        )
        device, monitor = await open_device(fakes(), settings)
        try:
            watch = monitor.watch(path(device, 1))
            await bounded(monitor.wait_until(lambda: watch.checks >= 2))
            assert path(device, 1).state is PathState.ACTIVE  # "wild" is no verdict
            await device.fail(path(device, 1), "test")
            await event(monitor, "fake://p1", EventKind.REINSTATED)
            assert watch.result is not None and "identity verified" in watch.result.message
        finally:
            await device.close()

    run(body)


# -- failback with two priority groups: path 1 preferred (priority 1), path 2 (0) --------

PRIORITIES = {"fake://p1": 1, "fake://p2": 0}


def groups_settings(failback: str) -> CheckerSettings:
    return CheckerSettings(
        timeout=0.05,
        polling_interval=0.05,
        max_polling_interval=0.05,
        login_timeout=0.2,
        failback=failback,
    )


async def traffic_split(device: MultipathDevice) -> tuple[int, int]:
    """Write a few blocks; how many commands each path carried."""
    before = [p.ios for p in device.path_objects]
    for block in range(8):
        await bounded(device.write(block * 512, b"z" * 512))
    after = [p.ios for p in device.path_objects]
    return after[0] - before[0], after[1] - before[1]


async def fail_preferred(
    transports: list[FakeTransport], monitor: CheckerMonitor, device: MultipathDevice
) -> float:
    cut(transports[0])
    await event(monitor, "fake://p1", EventKind.FAILED)
    assert await traffic_split(device) == (0, 8)
    mend(transports[0])
    return clock()


def open_grouped(
    transports: list[FakeTransport], failback: str
) -> Awaitable[tuple[MultipathDevice, CheckerMonitor]]:
    return open_device(transports, groups_settings(failback), grouped_device(PRIORITIES))


def test_groups_are_read_from_the_device() -> None:
    async def body() -> None:
        device, monitor = await open_grouped(fakes(), "immediate")
        try:
            assert [monitor.watch(p).priority for p in device.path_objects] == [1, 0]
            assert await traffic_split(device) == (8, 0)
        finally:
            await device.close()

    run(body)


def test_immediate_failback_returns_traffic_as_soon_as_the_path_is_up() -> None:
    async def body() -> None:
        transports = fakes()
        device, monitor = await open_grouped(transports, "immediate")
        try:
            mended = await fail_preferred(transports, monitor, device)
            back = await event(monitor, "fake://p1", EventKind.FAILBACK)
            assert back.at - mended <= groups_settings("immediate").polling_interval
            assert await traffic_split(device) == (8, 0)
        finally:
            await device.close()

    run(body)


def test_manual_failback_holds_the_path_ready_until_asked() -> None:
    async def body() -> None:
        transports = fakes()
        device, monitor = await open_grouped(transports, "manual")
        try:
            await fail_preferred(transports, monitor, device)
            await event(monitor, "fake://p1", EventKind.HELD_FAILBACK)
            watch = monitor.watch(path(device, 1))
            seen = watch.checks
            await bounded(monitor.wait_until(lambda: watch.checks >= seen + 3))  # still held
            assert (
                watch.hold is Hold.FAILBACK
                and monitor.checker_state(path(device, 1)) is CheckerState.UP
            )
            assert await traffic_split(device) == (0, 8)
            monitor.failback()
            await event(monitor, "fake://p1", EventKind.FAILBACK)
            assert await traffic_split(device) == (8, 0)
        finally:
            await device.close()

    run(body)


def test_deferred_failback_waits_its_delay() -> None:
    async def body() -> None:
        transports = fakes()
        device, monitor = await open_grouped(transports, "0.4")
        try:
            await fail_preferred(transports, monitor, device)
            held = await event(monitor, "fake://p1", EventKind.HELD_FAILBACK)
            back = await event(monitor, "fake://p1", EventKind.FAILBACK)
            interval = groups_settings("0.4").polling_interval
            assert 0.4 - BATCH_SLACK <= back.at - held.at <= 0.4 + interval
            assert await traffic_split(device) == (8, 0)
        finally:
            await device.close()

    run(body)


def test_followover_fails_back_when_the_first_path_of_the_group_returns() -> None:
    async def body() -> None:
        transports = fakes()
        device, monitor = await open_grouped(transports, "followover")
        try:
            await fail_preferred(transports, monitor, device)
            await event(monitor, "fake://p1", EventKind.FAILBACK)
            assert await traffic_split(device) == (8, 0)
        finally:
            await device.close()

    run(body)


def test_failover_to_a_held_path_is_never_delayed_by_the_failback_policy() -> None:
    async def body() -> None:
        transports = fakes()
        device, monitor = await open_grouped(transports, "manual")
        try:
            await fail_preferred(transports, monitor, device)
            await event(monitor, "fake://p1", EventKind.HELD_FAILBACK)
            cut(transports[1])
            await event(monitor, "fake://p1", EventKind.RESCUED)
            split = await traffic_split(device)
            assert split == (8, 0)
        finally:
            await device.close()

    run(body)


def test_a_held_session_is_kept_when_the_checker_cannot_judge() -> None:
    async def body() -> None:
        transports = fakes()
        settings = CheckerSettings(
            checker="nop",
            timeout=0.05,
            polling_interval=0.05,
            max_polling_interval=0.05,
            damping=DampingSettings(flap_threshold=1, recovery_time=0.4),
        )
        device, monitor = await open_device(transports, settings)
        try:
            await device.fail(path(device, 1), "test")  # one failure: shaky at once
            await event(monitor, "fake://p1", EventKind.HELD_SHAKY)
            watch = monitor.watch(path(device, 1))
            closes, seen = transports[0].closes, watch.checks
            await bounded(monitor.wait_until(lambda: watch.checks >= seen + 3))
            if watch.hold is Hold.SHAKY:
                assert transports[0].closes == closes  # no re-login at every check
            await event(monitor, "fake://p1", EventKind.REINSTATED)
            assert watch.result is not None and watch.result.message.endswith("logged in")
        finally:
            await device.close()

    run(body)


def test_switchgroup_holds_until_failback_moves_it() -> None:
    """``switch_group`` puts the I/O on group 2; checks of the idle better group do not
    undo it; its path failing and coming back does, under ``immediate`` failback."""

    async def body() -> None:
        transports = fakes()
        device, monitor = await open_grouped(transports, "immediate")
        try:
            assert device.switch_group(2) == 0
            assert await traffic_split(device) == (0, 8)
            watch = monitor.watch(path(device, 1))
            seen = watch.checks
            await bounded(monitor.wait_until(lambda: watch.checks >= seen + 3))
            assert await traffic_split(device) == (0, 8)
            cut(transports[0])
            await event(monitor, "fake://p1", EventKind.FAILED)
            mend(transports[0])
            await event(monitor, "fake://p1", EventKind.FAILBACK)
            assert await traffic_split(device) == (8, 0)
        finally:
            await device.close()

    run(body)


def test_switchgroup_under_manual_failback_stays_when_the_better_path_returns() -> None:
    """Group 1 is p1 and p2, group 2 is p3. While switched to group 2, p1 coming back
    is a failback (its group is better than the one carrying I/O, though p2 is up),
    so ``manual`` holds it, until the administrator asks."""

    async def body() -> None:
        transports = fakes(3)
        three = grouped_device({"fake://p1": 1, "fake://p2": 1, "fake://p3": 0})
        device, monitor = await open_device(transports, groups_settings("manual"), three)

        async def carried() -> list[int]:
            before = [p.ios for p in device.path_objects]
            for block in range(8):
                await bounded(device.write(block * 512, b"z" * 512))
            return [p.ios - b for p, b in zip(device.path_objects, before, strict=True)]

        try:
            device.switch_group(2)
            assert await carried() == [0, 0, 8]
            cut(transports[0])
            await event(monitor, "fake://p1", EventKind.FAILED)
            mend(transports[0])
            await event(monitor, "fake://p1", EventKind.HELD_FAILBACK)
            assert await carried() == [0, 0, 8]
            monitor.failback()
            await event(monitor, "fake://p1", EventKind.FAILBACK)
            assert (await carried())[2] == 0
        finally:
            await device.close()

    run(body)


def test_switchgroup_refuses_a_bad_number_and_a_group_without_a_usable_path() -> None:
    async def body() -> None:
        transports = fakes()
        device, _monitor = await open_grouped(transports, "manual")
        try:
            with pytest.raises(UsageError, match="no path group 3: this LUN has 2"):
                device.switch_group(3)
            with pytest.raises(UsageError, match="no path group 0"):
                device.switch_group(0)
            cut(transports[1])
            await bounded(device.fail(path(device, 2), "test"))
            with pytest.raises(DeviceError, match=r"path group 2 \(priority 0\) has no usable"):
                device.switch_group(2)
            assert await traffic_split(device) == (8, 0)
        finally:
            await device.close()

    run(body)
