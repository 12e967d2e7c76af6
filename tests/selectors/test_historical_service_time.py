"""historical-service-time: EWMA of measured service time, estimated completion."""

from __future__ import annotations

import pytest

from mpath.selectors import SelectorArgError
from mpath.selectors.historical_service_time import HistoricalServiceTimeSelector
from tests.selectors.harness import FakeClock


def train(
    selector: HistoricalServiceTimeSelector[str],
    clock: FakeClock,
    path: str,
    seconds: float,
    n: int,
) -> None:
    """Run ``n`` I/Os one at a time on ``path``, each taking ``seconds``."""
    for _ in range(n):
        started = clock()
        selector.start_io(path, 4096)
        clock.advance(seconds)
        selector.end_io(path, 4096, started)


def service_ms(selector: HistoricalServiceTimeSelector[str], path: str) -> float:
    entry = next(e for e in selector.status()["paths"] if e["path"] == path)
    return float(entry["service_time_ms"])


def warm_up(selector: HistoricalServiceTimeSelector[str], clock: FakeClock, slow: float) -> None:
    """Teach the selector fast = 1 ms and slow = ``slow`` s, both paths fresh at the end."""
    train(selector, clock, "fast", 0.001, 300)
    train(selector, clock, "slow", slow, 300)
    train(selector, clock, "fast", 0.001, 3)  # fast again, within slow's fresh window


def make(*args: str) -> tuple[HistoricalServiceTimeSelector[str], FakeClock]:
    clock = FakeClock(100.0)
    selector = HistoricalServiceTimeSelector[str](args, clock=clock)
    selector.add_path("fast")
    selector.add_path("slow")
    return selector, clock


def test_the_average_converges_on_the_measured_service_time() -> None:
    selector, clock = make()
    train(selector, clock, "fast", 0.001, 200)
    assert service_ms(selector, "fast") == pytest.approx(1.0, rel=1e-3)


def test_base_weight_zero_keeps_no_history() -> None:
    selector, clock = make("0")
    train(selector, clock, "fast", 0.003, 1)
    assert service_ms(selector, "fast") == pytest.approx(3.0)


def test_a_very_long_sample_replaces_the_history() -> None:
    selector, clock = make()
    train(selector, clock, "fast", 0.001, 50)
    train(selector, clock, "fast", 2.0, 1)  # beyond 63 buckets of ~16.8 ms
    assert service_ms(selector, "fast") == pytest.approx(2000.0)


def test_overlapping_ios_are_timed_as_if_serial() -> None:
    selector, clock = make("0")
    selector.start_io("fast", 4096)
    selector.start_io("fast", 4096)
    clock.advance(0.001)
    selector.end_io("fast", 4096, 100.0)
    clock.advance(0.001)
    selector.end_io("fast", 4096, 100.0)  # its clock starts at the first one's end
    assert service_ms(selector, "fast") == pytest.approx(1.0)


def test_estimated_completion_counts_outstanding_ios() -> None:
    selector, clock = make()
    warm_up(selector, clock, 0.004)
    for _ in range(2):
        selector.start_io("fast", 4096)
    selector.start_io("slow", 4096)
    # fast: (1 + 2) * 1 ms = 3 ms; slow: (1 + 1) * 4 ms = 8 ms
    assert selector.select(4096) == "fast"
    for _ in range(6):
        selector.start_io("fast", 4096)
    # fast: (1 + 8) * 1 ms = 9 ms; slow still 8 ms
    assert selector.select(4096) == "slow"


def test_an_idle_stale_path_gets_a_probe() -> None:
    selector, clock = make()
    warm_up(selector, clock, 0.010)
    selector.start_io("fast", 4096)
    assert selector.select(4096) == "fast"  # slow is idle but fresh
    clock.advance(1.0)  # nothing finished on slow for far longer than 2 * 10 ms
    assert selector.select(4096) == "slow"


def test_similar_paths_within_the_threshold_compare_outstanding_only() -> None:
    selector, clock = make("972", "10")
    warm_up(selector, clock, 0.004)
    selector.start_io("fast", 4096)
    selector.start_io("slow", 4096)
    selector.start_io("slow", 4096)
    assert selector.select(4096) == "fast"
    selector.start_io("fast", 4096)
    selector.start_io("fast", 4096)
    assert selector.select(4096) == "slow"  # 4x apart is "similar" under threshold 10


def test_share_favours_the_faster_history() -> None:
    selector, clock = make()
    warm_up(selector, clock, 0.004)
    assert selector.share("fast") == pytest.approx(0.8, rel=0.01)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["1024"], "historical-service-time ps: invalid base_weight '1024'"),
        (["x"], "historical-service-time ps: invalid base_weight 'x'"),
        (["972", "y"], "historical-service-time ps: invalid threshold_multiplier 'y'"),
        (["1", "2", "3"], "historical-service-time ps: too many selector arguments"),
    ],
)
def test_bad_selector_arguments(args: list[str], message: str) -> None:
    with pytest.raises(SelectorArgError, match=f"^{message}"):
        HistoricalServiceTimeSelector[str](args)


def test_bad_repeat_count() -> None:
    with pytest.raises(SelectorArgError, match=r"^historical-service-time ps: invalid repeat"):
        HistoricalServiceTimeSelector[str]().add_path("a", ["many"])
