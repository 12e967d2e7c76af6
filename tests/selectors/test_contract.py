"""Invariants every policy keeps, checked with random operation sequences (Hypothesis).

* a failed path is never chosen, and select only says None when no path is usable
  (or, for quota, when budgets are full);
* in-flight counters return to zero once every I/O has ended, whatever failed;
* quota never exceeds the LUN's cap nor a path's budget;
* the registry, status document and error contract are the same for every policy.
"""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings

from mpath.errors import UsageError
from mpath.selectors import (
    DEFAULT_POLICY,
    SELECTOR_NAMES,
    SelectorArgError,
    UnknownPathError,
    UnknownPolicyError,
    create_selector,
    selector_class,
    split_policy,
)
from tests.selectors.harness import make_driver, operations

VARIANTS = ("share fill=bdp",)  # policies with arguments that change their algorithm
ALL = pytest.mark.parametrize("policy", SELECTOR_NAMES + VARIANTS)


def test_registry_lists_the_contract_policies() -> None:
    assert set(SELECTOR_NAMES) == {
        "quota",
        "share",
        "round-robin",
        "queue-length",
        "service-time",
        "historical-service-time",
        "weighted",
        "least-blocks",
        "failover",
    }
    assert DEFAULT_POLICY == "share"
    for name in SELECTOR_NAMES:
        assert selector_class(name).name == name
        assert selector_class(name).version


def test_unknown_policy_is_a_usage_error_naming_the_choices() -> None:
    with pytest.raises(UnknownPolicyError, match=r"unknown policy 'fastest'.*share") as caught:
        create_selector("fastest")
    assert isinstance(caught.value, UsageError)


@ALL
@settings(max_examples=60, deadline=None)
@given(ops=operations)
def test_failed_paths_are_never_chosen_and_counters_return_to_zero(
    policy: str, ops: list[tuple[str, int]]
) -> None:
    driver = make_driver(policy, 4)
    driver.apply(ops)
    driver.drain()
    driver.check_counters_zero()


@ALL
@settings(max_examples=40, deadline=None)
@given(ops=operations)
def test_invariants_hold_inside_priority_groups(policy: str, ops: list[tuple[str, int]]) -> None:
    driver = make_driver(policy, 4, groups=True, max_commands=6)
    driver.apply(ops)
    driver.drain()
    driver.check_counters_zero()


@settings(max_examples=150, deadline=None)
@given(ops=operations)
def test_quota_never_exceeds_the_lun_cap_or_a_budget(ops: list[tuple[str, int]]) -> None:
    driver = make_driver("quota", 5, max_commands=7, path_args=[["1"], ["2"], ["3"], ["1"], ["5"]])
    driver.apply(ops)
    driver.drain()
    driver.check_counters_zero()


@ALL
def test_a_path_is_usable_again_after_reinstatement(policy: str) -> None:
    driver = make_driver(policy, 2)
    driver.fail(0)
    assert driver.selector.valid_count == 1
    assert {driver.io(4096) for _ in range(4)} == {1}
    driver.fail(1)
    assert driver.selector.valid_count == 0
    assert driver.selector.select(4096) is None
    driver.reinstate(0)
    assert driver.io(4096) == 0


@ALL
def test_status_is_json_and_reports_every_path(policy: str) -> None:
    driver = make_driver(policy, 3, max_commands=8)
    driver.io(4096)
    driver.fail(2)
    status = driver.selector.status()
    json.dumps(status)
    assert status["policy"] == split_policy(policy)[0]
    states = [entry["state"] for entry in status["paths"]]
    assert states == ["active", "active", "failed"]
    for entry in status["paths"]:
        assert {"path", "state", "share", "in_flight", "in_flight_bytes"} <= set(entry)
        assert 0.0 <= entry["share"] <= 1.0
    assert status["paths"][2]["share"] == 0.0
    assert sum(entry["share"] for entry in status["paths"]) == pytest.approx(1.0)
    assert sum(entry["in_flight"] for entry in status["paths"]) == 1


@ALL
def test_adding_a_known_path_is_refused_naming_the_selector(policy: str) -> None:
    name, args = split_policy(policy)
    selector = create_selector(name, args)
    selector.add_path("a")
    with pytest.raises(SelectorArgError, match=f"^{name} ps: path a already added"):
        selector.add_path("a")


@ALL
def test_failing_an_unknown_path_raises(policy: str) -> None:
    name, args = split_policy(policy)
    selector = create_selector(name, args)
    selector.add_path("a")
    with pytest.raises(UnknownPathError, match=f"^{name} ps: unknown path b"):
        selector.fail_path("b")
    with pytest.raises(UnknownPathError):
        selector.reinstate_path("b")
    with pytest.raises(KeyError):
        selector.share("b")


@ALL
def test_a_path_removed_with_io_in_flight_is_forgotten_once_its_io_ends(policy: str) -> None:
    driver = make_driver(policy, 2, max_commands=8)
    while (path := driver.io(4096)) != 0:
        assert path is not None
    driver.selector.remove_path(0)
    assert driver.selector.valid_count == 1
    assert all(entry["path"] != "0" for entry in driver.selector.status()["paths"])
    for _ in range(3):
        assert driver.io(4096) == 1
    driver.drain()
    driver.check_counters_zero()
    driver.selector.add_path(0)
    assert driver.selector.valid_count == 2


@ALL
def test_selector_arguments_are_strict(policy: str) -> None:
    name, args = split_policy(policy)
    with pytest.raises(SelectorArgError, match=f"^{name} ps: "):
        create_selector(name, [*args, "nonsense=1", "2", "3"])


@ALL
def test_bad_max_commands_is_refused(policy: str) -> None:
    name, args = split_policy(policy)
    with pytest.raises(SelectorArgError, match=f"^{name} ps: invalid max_commands"):
        create_selector(name, args, max_commands=0)


@ALL
@settings(max_examples=40, deadline=None)
@given(ops=operations)
def test_an_avoided_path_is_not_chosen_while_another_can_take_the_io(
    policy: str, ops: list[tuple[str, int]]
) -> None:
    driver = make_driver(policy, 3, max_commands=12)
    driver.apply(ops)
    for avoid in range(3):
        if avoid in driver.failed:
            continue
        chosen = driver.selector.select(4096, avoid)
        others = 3 - len(driver.failed) - 1
        if others:
            assert chosen != avoid, (policy, avoid, driver.failed)
        elif chosen is not None:
            assert chosen == avoid  # the only usable path is still offered
    driver.drain()
    driver.check_counters_zero()


def test_quota_budgets_hold_when_a_path_is_avoided() -> None:
    driver = make_driver("quota", 2, max_commands=4, path_args=[["1"], ["1"]])
    first = driver.selector.select(4096, 0)
    assert first == 1
    driver.selector.start_io(1, 4096)
    # Path 1's budget (half the cap) is spent: the avoided path 0 is not offered.
    for _ in range(3):
        chosen = driver.selector.select(4096, 0)
        if chosen is None:
            break
        assert chosen == 1
        driver.selector.start_io(1, 4096)
    status = {p["path"]: p for p in driver.selector.status()["paths"]}
    assert status["1"]["in_flight"] == status["1"]["budget"] == 2, status
    assert status["0"]["in_flight"] == 0, status
