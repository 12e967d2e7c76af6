"""Flap damping as a pure state machine (time passed in)."""

from __future__ import annotations

import pytest

from mpath.checkers.damping import Damping, DampingSettings
from mpath.errors import UsageError

SETTINGS = DampingSettings(flap_threshold=3, flap_window=10.0, recovery_time=5.0)


def test_a_path_failing_less_than_the_threshold_is_reinstated_at_once() -> None:
    damping = Damping(SETTINGS)
    assert not damping.record_failure(0.0)
    assert not damping.record_failure(1.0)
    damping.record_up(1.5)
    assert damping.may_reinstate(1.5)
    assert damping.failures(1.5) == 2


def test_threshold_failures_within_the_window_make_the_path_shaky() -> None:
    damping = Damping(SETTINGS)
    damping.record_failure(0.0)
    damping.record_failure(4.0)
    assert damping.record_failure(9.0)  # third within 10 s: just became shaky
    assert damping.shaky
    damping.record_up(9.5)
    assert not damping.may_reinstate(9.5)
    assert damping.release_at() == 14.5


def test_failures_spread_wider_than_the_window_are_forgotten() -> None:
    damping = Damping(SETTINGS)
    damping.record_failure(0.0)
    damping.record_failure(6.0)
    assert not damping.record_failure(12.0)  # the first is 12 s old: outside the window
    assert not damping.shaky
    assert damping.failures(12.0) == 2


def test_a_shaky_path_is_reinstated_after_staying_up_for_the_recovery_time() -> None:
    damping = Damping(SETTINGS)
    for at in (0.0, 1.0, 2.0):
        damping.record_failure(at)
    damping.record_up(3.0)
    assert not damping.may_reinstate(7.9)
    assert damping.may_reinstate(8.0)
    assert not damping.shaky
    assert damping.failures(8.0) == 0  # the record is forgotten on release


def test_going_down_again_restarts_the_stable_period() -> None:
    damping = Damping(SETTINGS)
    for at in (0.0, 1.0, 2.0):
        damping.record_failure(at)
    damping.record_up(3.0)
    damping.record_failure(6.0)  # failed again while held
    damping.record_up(6.5)
    assert not damping.may_reinstate(8.0)
    assert damping.release_at() == 11.5
    damping.record_down()
    assert damping.release_at() is None
    damping.record_up(9.0)
    assert damping.may_reinstate(14.0)


def test_release_is_the_last_resort_override() -> None:
    damping = Damping(SETTINGS)
    for at in (0.0, 1.0, 2.0):
        damping.record_failure(at)
    damping.release()
    assert damping.may_reinstate(2.0)


def test_threshold_zero_turns_damping_off() -> None:
    damping = Damping(DampingSettings(flap_threshold=0))
    for at in range(10):
        assert not damping.record_failure(float(at))
    assert damping.may_reinstate(10.0)


@pytest.mark.parametrize(
    "kwargs",
    [{"flap_threshold": -1}, {"flap_window": 0.0}, {"recovery_time": -1.0}],
)
def test_bad_settings_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(UsageError):
        DampingSettings(**kwargs)  # type: ignore[arg-type]
