"""The torture benchmark's schedule: a pure function of its seed, rich enough."""

from __future__ import annotations

import itertools

import pytest

from benchmarks import torture


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_the_same_seed_gives_the_same_schedule_with_40_faults_of_8_kinds(seed: int) -> None:
    steps = torture.schedule(seed, 300, 3, 5.0)
    assert steps == torture.schedule(seed, 300, 3, 5.0)
    assert steps != torture.schedule(seed + 100, 300, 3, 5.0)
    faults = torture.counted(steps)
    assert sum(faults.values()) >= 40 and len(faults) >= 8, faults
    assert [s.at for s in steps] == sorted(s.at for s in steps)
    assert steps[0].at >= torture.WARMUP and steps[-1].at <= 300 - torture.COOLDOWN


def test_every_fault_is_undone_and_one_path_always_stays_up() -> None:
    """Outside the all-paths-down episodes, at least one path is never cut."""
    for seed in range(20):
        down: set[str] = set()
        for step in torture.schedule(seed, 300, 3, 5.0):
            if step.where == "all":
                down = {"1", "2", "3"} if step.action == "down" else set()
                continue
            if step.action in ("down", "drop", "hold"):
                down.add(step.where)
            elif step.action in ("up", "clear", "release"):
                down.discard(step.where)
            assert len(down) < 3, (seed, step)
        assert not down, (seed, down)


def test_all_paths_down_windows_are_below_and_above_no_path_retry() -> None:
    lengths: dict[str, list[float]] = {"all_down_short": [], "all_down_long": []}
    for seed in range(20):
        steps = torture.schedule(seed, 300, 3, 5.0)
        for first, second in itertools.pairwise(steps):
            if first.kind in lengths:
                assert second.where == "all" and second.action == "up"
                lengths[first.kind].append(second.at - first.at)
    assert lengths["all_down_short"] and max(lengths["all_down_short"]) < 5.0
    assert lengths["all_down_long"] and min(lengths["all_down_long"]) > 5.0
