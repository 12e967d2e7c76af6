"""service-time: least (in_flight_bytes + n) / relative_throughput, as dm does it."""

from __future__ import annotations

import logging
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mpath.selectors import SelectorArgError
from mpath.selectors.service_time import ServiceTimeSelector


def make(paths: dict[str, tuple[int, int]]) -> ServiceTimeSelector[str]:
    """Paths given as name -> (relative_throughput, bytes in flight)."""
    selector = ServiceTimeSelector[str]()
    for name, (throughput, load) in paths.items():
        selector.add_path(name, ["0", str(throughput)])
        if load:
            selector.start_io(name, load)
    return selector


def test_picks_the_least_estimated_service_time() -> None:
    # a: (300 + 100) / 10 = 40; b: (100 + 100) / 2 = 100; c: (0 + 100) / 1 = 100
    selector = make({"a": (10, 300), "b": (2, 100), "c": (1, 0)})
    assert selector.select(100) == "a"


def test_the_incoming_size_counts() -> None:
    # Small I/O: a idle at throughput 1 wins (1/1 < (8+1)/8).
    # Large I/O: b wins ((8+100)/8 = 13.5 < 100/1).
    selector = make({"a": (1, 0), "b": (8, 8)})
    assert selector.select(1) == "a"
    assert selector.select(100) == "b"


def test_equal_throughputs_compare_bytes_in_flight() -> None:
    selector = make({"a": (5, 4096), "b": (5, 512)})
    assert selector.select(1 << 20) == "b"


def test_equal_load_goes_to_the_higher_throughput() -> None:
    selector = make({"a": (5, 0), "b": (50, 0), "c": (20, 0)})
    assert selector.select(4096) == "b"


def test_equal_estimate_goes_to_the_higher_throughput() -> None:
    # a: (100 + 100) / 1 = 200; b: (300 + 100) / 2 = 200
    selector = make({"a": (1, 100), "b": (2, 300)})
    assert selector.select(100) == "b"


def test_throughput_zero_is_only_a_last_resort() -> None:
    selector = make({"idle-zero": (0, 0), "busy": (1, 1 << 30)})
    assert selector.select(4096) == "busy"
    selector.fail_path("busy")
    assert selector.select(4096) == "idle-zero"


def test_only_zero_throughput_paths_share_by_load() -> None:
    selector = make({"a": (0, 8192), "b": (0, 4096)})
    assert selector.select(4096) == "b"
    assert selector.share("a") == pytest.approx(0.5)


def test_share_is_the_relative_throughput_fraction() -> None:
    selector = make({"a": (20, 0), "b": (80, 0), "z": (0, 0)})
    assert selector.share("a") == pytest.approx(0.2)
    assert selector.share("z") == 0.0
    selector.fail_path("b")
    assert selector.share("a") == pytest.approx(1.0)


@given(
    st.lists(st.tuples(st.integers(0, 100), st.integers(0, 1 << 22)), min_size=1, max_size=8),
    st.integers(1, 1 << 20),
)
def test_choice_minimises_the_estimate_ties_to_higher_throughput(
    paths: list[tuple[int, int]], incoming: int
) -> None:
    selector = make({str(i): path for i, path in enumerate(paths)})
    chosen = selector.select(incoming)
    assert chosen is not None
    throughput, load = paths[int(chosen)]
    positive = [(t, b) for t, b in paths if t > 0]
    if not positive:
        assert load == min(b for _, b in paths)
        return
    assert throughput > 0, "a zero-throughput path won while a positive one was usable"

    def estimate(t: int, b: int) -> Fraction:
        return Fraction(b + incoming, t)

    best = min(estimate(t, b) for t, b in positive)
    assert estimate(throughput, load) == best
    assert throughput == max(t for t, b in positive if estimate(t, b) == best)


def test_repeat_count_above_one_is_clamped_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        ServiceTimeSelector[str]().add_path("a", ["2", "10"])
    assert "service-time ps: repeat_count > 1 is deprecated" in caplog.text


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["0", "x"], "service-time ps: invalid relative_throughput 'x'"),
        (["0", "101"], "service-time ps: invalid relative_throughput '101'"),
        (["0", "-5"], "service-time ps: invalid relative_throughput '-5'"),
        (["q"], "service-time ps: invalid repeat count 'q'"),
        (["0", "1", "2"], "service-time ps: too many path arguments"),
    ],
)
def test_bad_path_arguments(args: list[str], message: str) -> None:
    with pytest.raises(SelectorArgError, match=f"^{message}"):
        ServiceTimeSelector[str]().add_path("a", args)
