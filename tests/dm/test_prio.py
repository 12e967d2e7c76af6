"""get_prio and friends: the documented scale, as pure functions."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mpath.dm.prio import (
    PRIO_FAILED,
    PRIO_MAX,
    PRIO_MIN,
    Health,
    PrioInput,
    get_prio,
    relative_throughput,
    tier,
)

speeds = st.floats(min_value=0.001, max_value=1e6, allow_nan=False)


def up(**values: float | None) -> PrioInput:
    return PrioInput(Health.UP, **values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("measurement", "expected"),
    [
        (None, PRIO_FAILED),
        (PrioInput(Health.FAILED, mb_per_s=200, best_mb_per_s=200), 0),
        (PrioInput(Health.UNKNOWN, mb_per_s=200, best_mb_per_s=200), 0),
        (up(), PRIO_MIN),  # up but never measured
        (up(mb_per_s=200, best_mb_per_s=200), 100),
        (up(mb_per_s=50, best_mb_per_s=200), 25),
        (up(mb_per_s=47.3, best_mb_per_s=188.0), 25),
        (up(mb_per_s=0.5, best_mb_per_s=1000), 1),  # slow but up: never 0
        (up(mb_per_s=300, best_mb_per_s=200), 100),  # the best is at least itself
        (up(mb_per_s=100, best_mb_per_s=None), 100),  # alone: the fastest known
        (up(latency_ms=2, best_latency_ms=1), 50),
        (up(latency_ms=1, best_latency_ms=1), 100),
        (up(mb_per_s=50, best_mb_per_s=200, latency_ms=1, best_latency_ms=1), 25),  # MB/s first
        (PrioInput(Health.UP, mb_per_s=200, best_mb_per_s=200, error_ratio=0.3), 70),
        (PrioInput(Health.UP, mb_per_s=200, best_mb_per_s=200, error_ratio=1.0), 1),
        (PrioInput(Health.UP, mb_per_s=float("nan"), best_mb_per_s=200), 1),
    ],
)
def test_the_documented_scale(measurement: PrioInput | None, expected: int) -> None:
    assert get_prio(measurement) == expected


@given(speeds, speeds, st.floats(min_value=0, max_value=1))
def test_up_paths_score_1_to_100(speed: float, best: float, errors: float) -> None:
    score = get_prio(PrioInput(Health.UP, mb_per_s=speed, best_mb_per_s=best, error_ratio=errors))
    assert PRIO_MIN <= score <= PRIO_MAX


@given(speeds, speeds, speeds)
def test_faster_never_scores_lower(a: float, b: float, best: float) -> None:
    slow, fast = sorted((a, b))
    top = max(best, fast)
    assert get_prio(up(mb_per_s=slow, best_mb_per_s=top)) <= get_prio(
        up(mb_per_s=fast, best_mb_per_s=top)
    )


@given(speeds, st.floats(min_value=0, max_value=1), st.floats(min_value=0, max_value=1))
def test_more_errors_never_score_higher(speed: float, e1: float, e2: float) -> None:
    low, high = sorted((e1, e2))
    base = {"mb_per_s": speed, "best_mb_per_s": speed * 2}
    assert get_prio(PrioInput(Health.UP, **base, error_ratio=high)) <= get_prio(
        PrioInput(Health.UP, **base, error_ratio=low)
    )


def test_relative_throughput_for_service_time() -> None:
    assert relative_throughput(50, 200) == 25
    assert relative_throughput(200, 200) == 100
    assert relative_throughput(0.01, 200) == 1
    assert relative_throughput(0, 200) == 0  # the kernel's "use only as a last resort"
    assert relative_throughput(None, 200) == 1  # the kernel's own default


@given(st.integers(min_value=0, max_value=100), st.integers(min_value=1, max_value=100))
def test_tier_keeps_order_and_range(priority: int, step: int) -> None:
    value = tier(priority, step)
    assert (value == 0) == (priority == 0)
    assert 0 <= value <= 100
    assert tier(min(100, priority + 1), step) >= value


def test_tier_groups_near_equals() -> None:
    assert tier(97, 10) == tier(100, 10) == 100
    assert tier(25, 10) == 30
    assert tier(4, 10) == 1
    assert tier(37, 1) == 37
    with pytest.raises(ValueError):
        tier(50, 0)
