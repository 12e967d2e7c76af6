"""The stall watchdog's judgement, LUN or path, in virtual time (mpath/filter/stall.py).

Each test plays a stall pattern tick by tick (the watchdog's 50 ms) on a hand-moved
clock: what a slow target looks like (every path silent at once, then a burst), what a
cut path looks like (it stays silent while the others answer), and both together.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import pytest

from mpath.filter.device import WATCHDOG_TICK
from mpath.filter.stall import (
    LAG_FACTOR,
    LUN_FACTOR,
    QUIET_AFTER,
    STALL_HALF_LIFE,
    Network,
    PathView,
    StallJudge,
)

LIMIT = 0.3  # each path's own limit (io_timeout_min)
FLOOR = 3.0  # io_timeout_max
CEILING = 10.0  # lun_stall_timeout


@dataclass
class SimPath:
    """A path's timestamps as the device keeps them."""

    key: int
    active: bool = True
    busy: bool = True
    progress: float = 0.0
    answered: float = 0.0
    network: Network | None = None

    def view(self) -> PathView:
        return PathView(
            self.key, self.active, self.busy, self.progress, self.answered, LIMIT, self.network
        )

    def answer(self, now: float) -> None:
        self.progress = self.answered = now


class Sim:
    """A clock, a judge and paths; ``tick`` moves time one watchdog tick and judges."""

    def __init__(self, count: int = 2) -> None:
        self.now = 0.0
        self.judge = StallJudge(floor=FLOOR, ceiling=CEILING, clock=lambda: self.now)
        self.paths = [SimPath(i + 1) for i in range(count)]
        self.failed: dict[int, tuple[float, str]] = {}
        self.probes: list[tuple[float, int]] = []

    def tick(self) -> None:
        self.now = round(self.now + WATCHDOG_TICK, 6)
        verdict = self.judge.judge([p.view() for p in self.paths])
        for failure in verdict.fail:
            self.failed.setdefault(failure.key, (self.now, failure.reason))
            self.paths[failure.key - 1].active = False
        self.probes += [(self.now, key) for key in verdict.probe]

    def run(self, seconds: float, *, answering: tuple[int, ...] = (), every: float = 0.01) -> None:
        """Run ``seconds``; the paths in ``answering`` complete a command every ``every``."""
        end = self.now + seconds
        next_answer = self.now + every
        while self.now < end - 1e-9:
            while next_answer <= self.now + WATCHDOG_TICK + 1e-9:
                for key in answering:
                    self.paths[key - 1].answer(next_answer)
                next_answer += every
            self.tick()

    def slow_target(
        self, seconds: float, *, stall: float = 0.95, cut: tuple[int, ...] = ()
    ) -> None:
        """A target held to a CPU quota: silent for ``stall`` s, then a short burst in
        which every path but the ``cut`` ones answers."""
        end = self.now + seconds
        while self.now < end - 1e-9:
            self.run(stall)
            self.run(0.05, answering=tuple(p.key for p in self.paths if p.key not in cut))


def test_a_dead_path_of_a_healthy_lun_is_failed_after_its_own_limit() -> None:
    sim = Sim()
    sim.run(2.0, answering=(1, 2))
    sim.run(1.0, answering=(2,))  # path 1 cut at 2.0 s: only path 2 answers
    at, reason = sim.failed[1]
    assert 2.0 + LIMIT < at <= 2.0 + LIMIT + 2 * WATCHDOG_TICK
    assert "while path 2 answered" in reason
    assert 2 not in sim.failed


def test_a_slow_target_fails_no_path_and_is_blamed_once() -> None:
    sim = Sim()
    sim.run(1.0, answering=(1, 2))
    sim.slow_target(30.0)
    assert sim.failed == {}
    assert sim.judge.slow
    assert sim.judge.lun_stalls >= 25  # one per stall, counted once each
    # The recent stall scale learned the target's rhythm, and the limits follow it.
    assert 0.9 <= sim.judge.scale() <= 1.0
    assert sim.judge.lun_limit() == pytest.approx(LUN_FACTOR * sim.judge.scale())


def test_the_first_stall_of_a_slow_target_is_not_a_failure_either() -> None:
    """No history yet: every path silent is judged by io_timeout_max, not 0.3 s."""
    sim = Sim()
    sim.slow_target(3.0, stall=2.5)
    assert sim.failed == {}


def test_an_answer_just_before_the_lun_stalls_does_not_make_the_other_path_lag() -> None:
    """The first stall, no history: path 1's last answer came a moment after path 2's,
    then the LUN went silent, and the burst after it served path 1 first."""
    sim = Sim()
    sim.run(1.0, answering=(1, 2))
    sim.paths[0].answer(sim.now + 0.001)
    sim.run(0.95)
    sim.run(0.05, answering=(1,))
    sim.run(0.9)
    sim.run(0.05, answering=(1, 2))
    assert sim.failed == {}


def test_a_path_the_target_serves_a_period_late_is_not_failed() -> None:
    """A burst may answer one path and run out of CPU before the other's turn."""
    sim = Sim()
    sim.run(1.0, answering=(1, 2))
    sim.slow_target(5.0)
    for _ in range(5):
        sim.run(0.95)
        sim.run(0.05, answering=(2,))  # path 1 waits for the next period
        sim.run(0.95)
        sim.run(0.05, answering=(1, 2))
    assert sim.failed == {}


def test_a_path_cut_while_the_target_is_slow_is_failed_within_the_bound() -> None:
    sim = Sim()
    sim.run(1.0, answering=(1, 2))
    sim.slow_target(15.0)
    cut_at = sim.now
    scale = sim.judge.scale()
    sim.slow_target(15.0, cut=(1,))
    assert list(sim.failed) == [1]
    at, reason = sim.failed[1]
    # Within one stall (until path 2 answers) plus the lag grace, to the tick.
    bound = 0.95 + LAG_FACTOR * scale + 2 * WATCHDOG_TICK
    assert at - cut_at <= bound, (at - cut_at, bound)
    assert "while path 2 answered" in reason


def test_a_flapping_path_answering_late_while_the_other_is_served_is_failed() -> None:
    """Its late answers (the link back after 0.6 s) are its own lag, not the LUN's."""
    sim = Sim()
    sim.run(1.0, answering=(1, 2))
    flaps = 0
    while 1 not in sim.failed and flaps < 10:
        flaps += 1
        sim.run(0.6, answering=(2,))  # path 1's link is down
        sim.run(0.3, answering=(1, 2))  # up again: its queued commands are answered
    assert 1 in sim.failed and flaps <= 2
    assert sim.judge.scale() < 0.1


def test_the_last_path_under_a_slow_target_stays() -> None:
    sim = Sim()
    sim.run(1.0, answering=(1, 2))
    sim.paths[0].active = False  # path 1 failed earlier
    sim.slow_target(20.0)
    assert sim.failed == {}


def test_every_path_silent_for_longer_than_the_lun_limit_fails_them_all() -> None:
    sim = Sim()
    sim.run(1.0, answering=(1, 2))
    started = sim.now
    sim.run(FLOOR + 0.5)  # a switch lost: every path cut at once
    assert sorted(sim.failed) == [1, 2]
    for at, reason in sim.failed.values():
        assert FLOOR < at - started <= FLOOR + 2 * WATCHDOG_TICK
        assert "nor from any other path" in reason


def test_the_lun_limit_follows_recent_stalls_up_to_the_ceiling_and_decays() -> None:
    sim = Sim()
    sim.run(0.5, answering=(1, 2))
    sim.slow_target(4.0, stall=2.0)
    assert sim.judge.lun_limit() == pytest.approx(LUN_FACTOR * sim.judge.scale())
    sim.slow_target(12.0, stall=5.0)  # 4 x 5 s is past the ceiling
    assert sim.failed == {}
    assert sim.judge.lun_limit() == CEILING
    sim.run(3 * STALL_HALF_LIFE, answering=(1, 2))
    assert sim.judge.scale() < 5.0 / 4
    assert sim.judge.lun_limit() == FLOOR


def test_a_single_path_is_judged_by_the_lun_limit() -> None:
    sim = Sim(count=1)
    sim.run(1.0, answering=(1,))
    sim.slow_target(10.0)  # 1 s stalls: under io_timeout_max
    assert sim.failed == {}
    started = sim.now
    sim.run(CEILING)  # then dead
    at, _ = sim.failed[1]
    assert at - started <= LUN_FACTOR * 0.95 + 2 * WATCHDOG_TICK


def test_with_an_idle_peer_the_judge_asks_it_and_its_answer_decides() -> None:
    sim = Sim()
    sim.paths[1].busy = False  # active/standby: path 2 carries nothing
    sim.run(1.0, answering=(1,))
    sim.run(0.3)  # path 1 goes silent at 1.0 s
    assert sim.probes == [] and sim.failed == {}
    sim.tick()
    assert sim.probes == [(sim.now, 2)]
    sim.paths[1].answer(sim.now + 0.001)  # the TEST UNIT READY comes back at once
    sim.run(2 * WATCHDOG_TICK)
    at, reason = sim.failed[1]
    assert at - 1.0 <= LIMIT + 3 * WATCHDOG_TICK
    assert "while path 2 answered" in reason


def test_an_idle_peer_that_is_silent_too_means_the_lun_is_slow() -> None:
    sim = Sim()
    sim.paths[1].busy = False
    sim.run(1.0, answering=(1,))
    sim.run(0.4)
    assert sim.probes
    sim.paths[1].busy = True  # the probe is out, and not answered
    sim.paths[1].progress = sim.now
    sim.run(1.0)
    sim.run(0.05, answering=(1, 2))
    assert sim.failed == {}
    assert sim.judge.lun_stalls == 1


def test_the_slow_lun_is_logged_once_and_its_end_once(caplog: pytest.LogCaptureFixture) -> None:
    sim = Sim()
    with caplog.at_level(logging.INFO, logger="mpath.filter.stall"):
        sim.run(1.0, answering=(1, 2))
        sim.slow_target(20.0)
        sim.run(QUIET_AFTER + 1.0, answering=(1, 2))
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 2, messages
    assert "the LUN is slow, not its paths" in messages[0]
    assert "answering normally again after 20 stalls" in messages[1]
    assert not sim.judge.slow


def test_time_the_watchdog_did_not_run_does_not_count_as_lag() -> None:
    sim = Sim()
    sim.run(1.0, answering=(1, 2))
    sim.slow_target(5.0)
    sim.run(0.95)
    sim.run(0.05, answering=(2,))  # path 1 is behind from here
    sim.now += 5.0  # the process was starved for 5 s
    for path in sim.paths:
        path.progress += 5.0
    sim.judge.skip(5.0)
    sim.run(0.5)
    sim.run(0.05, answering=(1, 2))
    assert sim.failed == {}


def test_a_silent_lun_whose_network_carries_is_kept_until_the_ceiling() -> None:
    # The target's kernel acknowledges pings while its SCSI layer is stalled: no limit
    # from the LUN's recent stalls applies, however much longer this stall is.
    sim = Sim()
    sim.run(1.0, answering=(1, 2))
    sim.slow_target(6.0)  # 0.95 s stalls: the LUN's limit is about 3.8 s
    assert FLOOR < sim.judge.lun_limit() < CEILING
    for path in sim.paths:
        path.network = Network.CARRIES
    started = max(path.progress for path in sim.paths)  # the last answer
    sim.run(CEILING - 0.2)
    assert sim.failed == {}
    assert sim.judge.carried_stalls == 1
    sim.run(0.5)
    assert set(sim.failed) == {1, 2}
    at, reason = sim.failed[1]
    assert CEILING < at - started <= CEILING + 2 * WATCHDOG_TICK
    assert "its network carries" in reason


def test_a_silent_lun_whose_network_is_down_is_failed_at_the_floor() -> None:
    # Right after a slow period the LUN's limit is 4x its stalls; a network that
    # acknowledges nothing is down, and gets no more than a LUN that never stalled.
    sim = Sim()
    sim.run(1.0, answering=(1, 2))
    sim.slow_target(6.0)
    assert sim.judge.lun_limit() > FLOOR + 0.5
    for path in sim.paths:
        path.network = Network.SILENT
    started = max(path.progress for path in sim.paths)  # the last answer
    sim.run(FLOOR + 0.5)
    at, reason = sim.failed[1]
    assert FLOOR < at - started <= FLOOR + 2 * WATCHDOG_TICK
    assert "its network acknowledges nothing" in reason
    assert sim.judge.carried_stalls == 0


def test_without_word_from_the_network_the_lun_limit_decides() -> None:
    sim = Sim()
    sim.run(1.0, answering=(1, 2))
    sim.slow_target(6.0)
    for path in sim.paths:
        path.network = Network.UNKNOWN
    started = max(path.progress for path in sim.paths)  # the last answer
    sim.run(CEILING)
    at, reason = sim.failed[1]
    limit = sim.judge.lun_limit(at)  # 4x the recent stalls (decaying meanwhile)
    assert limit > FLOOR
    assert limit - WATCHDOG_TICK < at - started <= limit + 2 * WATCHDOG_TICK
    assert "the LUN's stall limit is" in reason
