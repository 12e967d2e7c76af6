"""Priority groups: the highest-priority group with a usable path carries the I/O."""

from __future__ import annotations

import pytest

from mpath.selectors import SelectorArgError, UnknownPathError, UnknownPolicyError
from mpath.selectors.groups import PriorityGroups


def make(policy: str = "round-robin") -> PriorityGroups[str]:
    groups = PriorityGroups[str](policy=policy)
    groups.add_path("a1", priority=50)
    groups.add_path("a2", priority=50)
    groups.add_path("b1", priority=10)
    groups.add_path("c1", priority=1)
    return groups


def picks(groups: PriorityGroups[str], count: int) -> set[str | None]:
    return {groups.select(4096) for _ in range(count)}


def test_only_the_highest_group_is_used_and_balanced_within() -> None:
    groups = make()
    assert picks(groups, 6) == {"a1", "a2"}
    assert groups.active_priority == 50
    assert groups.share("a1") == pytest.approx(0.5)
    assert groups.share("b1") == 0.0


def test_the_next_group_takes_over_when_the_best_has_no_usable_path() -> None:
    groups = make()
    groups.fail_path("a1")
    assert picks(groups, 4) == {"a2"}
    groups.fail_path("a2")
    assert picks(groups, 4) == {"b1"}
    assert groups.valid_count == 2
    groups.fail_path("b1")
    groups.fail_path("c1")
    assert groups.select(4096) is None
    assert groups.active_priority is None


def test_a_reinstated_path_of_a_better_group_wins_back_at_once() -> None:
    groups = make()
    groups.fail_path("a1")
    groups.fail_path("a2")
    assert groups.select(4096) == "b1"
    groups.reinstate_path("a2")
    assert picks(groups, 3) == {"a2"}


def test_io_in_flight_on_the_old_group_still_ends_there() -> None:
    groups = make("queue-length")
    groups.start_io("a1", 4096)
    groups.fail_path("a1")
    groups.fail_path("a2")
    groups.end_io("a1", 4096, 0.0)
    assert all(entry["in_flight"] == 0 for entry in groups.status()["paths"])


def test_removed_path_io_ends_cleanly() -> None:
    groups = make("queue-length")
    groups.start_io("b1", 4096)
    groups.remove_path("b1")
    groups.end_io("b1", 4096, 0.0)
    with pytest.raises(UnknownPathError):
        groups.fail_path("b1")


def test_status_lists_groups_best_first_with_priorities() -> None:
    groups = make("service-time")
    status = groups.status()
    assert status["policy"] == "service-time"
    assert [(g["priority"], g["active"]) for g in status["groups"]] == [
        (50, True),
        (10, False),
        (1, False),
    ]
    assert [(p["path"], p["priority"]) for p in status["paths"]] == [
        ("a1", 50),
        ("a2", 50),
        ("b1", 10),
        ("c1", 1),
    ]


def test_bad_policy_or_arguments_fail_at_creation() -> None:
    with pytest.raises(UnknownPolicyError):
        PriorityGroups[str](policy="nope")
    with pytest.raises(SelectorArgError, match=r"^round-robin ps: too many selector arguments"):
        PriorityGroups[str](["1"], policy="round-robin")
    groups = make()
    with pytest.raises(SelectorArgError, match=r"^groups ps: path a1 already added"):
        groups.add_path("a1", priority=3)


def test_switch_group_holds_until_a_better_path_is_reinstated() -> None:
    groups = make()
    assert groups.priorities == [50, 10, 1]
    groups.switch_group(1)
    assert picks(groups, 4) == {"c1"}
    assert (groups.active_priority, groups.switched) == (1, 1)
    assert groups.status()["switched"] == 1
    groups.fail_path("b1")
    groups.reinstate_path("b1")  # a better group than the chosen one came back: failback
    assert groups.switched is None and picks(groups, 4) == {"a1", "a2"}


def test_switch_group_ends_when_its_group_loses_its_last_path() -> None:
    groups = make()
    groups.switch_group(10)
    assert picks(groups, 3) == {"b1"}
    groups.fail_path("b1")
    assert groups.switched is None and picks(groups, 4) == {"a1", "a2"}
    groups.switch_group(1)
    groups.fail_path("c1")
    groups.reinstate_path("c1")  # not better than the chosen group: no failback
    groups.switch_group(1)
    groups.fail_path("a1")
    groups.reinstate_path("a1")
    assert groups.switched is None


def test_switch_group_refuses_unknown_and_unusable_groups() -> None:
    groups = make()
    with pytest.raises(SelectorArgError, match="no group of priority 7"):
        groups.switch_group(7)
    groups.fail_path("b1")
    with pytest.raises(SelectorArgError, match="priority 10 has no usable path"):
        groups.switch_group(10)
    assert groups.switched is None and groups.usable(10) == 0 and groups.usable(50) == 2
