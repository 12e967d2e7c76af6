"""The no-path meter: overlapping waits as one span of time, failing I/O once per outage."""

from __future__ import annotations

from mpath.filter.queueing import NoPathMeter


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_overlapping_waits_count_once_and_the_current_wait_is_included() -> None:
    clock = Clock()
    meter = NoPathMeter(clock)
    first, second = meter.waiter(), meter.waiter()
    first.start()
    clock.now += 1.0
    second.start()
    clock.now += 0.5
    assert meter.seconds() == 1.5 and meter.queued == 2  # still waiting: counted so far
    first.end()
    clock.now += 0.25
    second.end()
    clock.now += 10.0  # nobody waits: not counted
    assert meter.seconds() == 1.75 and meter.queued == 0


def test_a_wait_ends_once_however_often_it_is_ended() -> None:
    clock = Clock()
    meter = NoPathMeter(clock)
    wait = meter.waiter()
    wait.start()
    wait.start()
    clock.now += 2.0
    wait.end()
    wait.end()
    other = meter.waiter()
    other.start()
    clock.now += 1.0
    other.end()
    assert meter.seconds() == 3.0 and meter.queued == 0


def test_failing_io_is_entered_once_per_outage() -> None:
    meter = NoPathMeter(Clock())
    meter.gave_up()
    meter.gave_up()  # another command of the same outage
    assert (meter.fail_io, meter.failing) == (1, True)
    meter.path_usable()
    assert not meter.failing
    meter.path_usable()
    meter.gave_up()
    assert meter.fail_io == 2
