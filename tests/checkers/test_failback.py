"""Failback policies as a pure state machine (time passed in)."""

from __future__ import annotations

import pytest

from mpath.checkers.failback import Failback, FailbackMode, FailbackPolicy
from mpath.errors import UsageError


def machine(text: str) -> Failback:
    return Failback(FailbackPolicy.parse(text))


@pytest.mark.parametrize(
    ("text", "mode", "delay"),
    [
        ("immediate", FailbackMode.IMMEDIATE, 0.0),
        ("Manual", FailbackMode.MANUAL, 0.0),
        ("followover", FailbackMode.FOLLOWOVER, 0.0),
        ("15", FailbackMode.DEFERRED, 15.0),
        ("0.5", FailbackMode.DEFERRED, 0.5),
    ],
)
def test_policies_parse(text: str, mode: FailbackMode, delay: float) -> None:
    policy = FailbackPolicy.parse(text)
    assert (policy.mode, policy.delay) == (mode, delay)
    assert FailbackPolicy.parse(str(policy)) == policy


@pytest.mark.parametrize("text", ["sometimes", "0", "-3", ""])
def test_bad_policies_are_refused(text: str) -> None:
    with pytest.raises(UsageError, match="failback"):
        FailbackPolicy.parse(text)


def test_immediate_fails_back_at_once() -> None:
    assert machine("immediate").decide(0.0, new_up=True, first_in_group=False)


def test_manual_waits_for_a_request() -> None:
    failback = machine("manual")
    for now in (0.0, 100.0, 10_000.0):
        assert not failback.decide(now, new_up=now == 0.0, first_in_group=True)
    failback.request()
    assert failback.decide(10_001.0, new_up=False, first_in_group=True)
    assert not failback.decide(10_002.0, new_up=False, first_in_group=True)  # one request


def test_followover_fails_back_only_for_the_first_path_of_the_group_to_return() -> None:
    failback = machine("followover")
    assert failback.decide(0.0, new_up=True, first_in_group=True)
    assert not failback.decide(0.0, new_up=True, first_in_group=False)
    assert not failback.decide(5.0, new_up=False, first_in_group=True)  # not a new arrival


def test_deferred_waits_the_delay_while_the_group_stays_up() -> None:
    failback = machine("10")
    assert not failback.decide(0.0, new_up=True, first_in_group=True)
    assert failback.due == 10.0
    assert not failback.decide(9.9, new_up=False, first_in_group=True)
    assert failback.decide(10.0, new_up=False, first_in_group=True)
    assert failback.due is None


def test_deferred_restarts_on_a_new_path_up_and_on_any_failure() -> None:
    failback = machine("10")
    failback.decide(0.0, new_up=True, first_in_group=True)
    failback.decide(4.0, new_up=True, first_in_group=False)  # another path came up
    assert failback.due == 14.0
    failback.path_failed()  # a failure anywhere cancels...
    assert failback.due is None
    assert not failback.decide(15.0, new_up=False, first_in_group=False)  # ...re-armed here
    assert failback.due == 25.0
    assert failback.decide(25.0, new_up=False, first_in_group=False)


def test_done_clears_what_was_pending() -> None:
    failback = machine("10")
    failback.decide(0.0, new_up=True, first_in_group=True)
    failback.request()
    failback.done()
    assert failback.due is None
    assert not failback.decide(1.0, new_up=False, first_in_group=True)
