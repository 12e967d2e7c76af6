"""round-robin: dm's ring of usable paths, with a per-path repeat count."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mpath.selectors import SelectorArgError
from mpath.selectors.round_robin import RoundRobinSelector


def picks(selector: RoundRobinSelector[str], count: int) -> str:
    chosen = []
    for _ in range(count):
        path = selector.select(4096)
        assert path is not None
        selector.start_io(path, 4096)
        chosen.append(path)
    return "".join(chosen)


def test_each_usable_path_in_turn() -> None:
    selector = RoundRobinSelector[str]()
    for path in "abc":
        selector.add_path(path)
    assert picks(selector, 7) == "abcabca"


def test_repeat_count_keeps_a_path_for_that_many_ios() -> None:
    selector = RoundRobinSelector[str]()
    selector.add_path("a", ["3"])
    selector.add_path("b", ["1"])
    selector.add_path("c", ["2"])
    assert picks(selector, 12) == "aaabccaaabcc"
    assert selector.share("a") == pytest.approx(3 / 6)


def test_failing_the_current_path_moves_on_at_once() -> None:
    selector = RoundRobinSelector[str]()
    selector.add_path("a", ["5"])
    selector.add_path("b", ["5"])
    assert picks(selector, 2) == "aa"
    selector.fail_path("a")
    assert picks(selector, 3) == "bbb"
    selector.reinstate_path("a")
    assert picks(selector, 4) == "bbaa"


def test_ignores_load_entirely() -> None:
    selector = RoundRobinSelector[str]()
    selector.add_path("a")
    selector.add_path("b")
    for _ in range(10):
        selector.start_io("a", 1 << 20)  # a is swamped
    assert picks(selector, 4) == "abab"


@given(st.lists(st.integers(1, 5), min_size=1, max_size=6), st.integers(1, 20))
def test_split_follows_repeat_counts_exactly_over_whole_cycles(
    repeats: list[int], cycles: int
) -> None:
    selector = RoundRobinSelector[int]()
    for path, repeat in enumerate(repeats):
        selector.add_path(path, [str(repeat)])
    counts = [0] * len(repeats)
    for _ in range(cycles * sum(repeats)):
        chosen = selector.select(512)
        assert chosen is not None
        counts[chosen] += 1
    assert counts == [cycles * repeat for repeat in repeats]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["x"], "round-robin ps: invalid repeat count 'x'"),
        (["-1"], "round-robin ps: invalid repeat count '-1'"),
        (["0"], "round-robin ps: invalid repeat count '0'"),
        (["1", "2"], "round-robin ps: too many path arguments"),
    ],
)
def test_bad_path_arguments(args: list[str], message: str) -> None:
    selector = RoundRobinSelector[str]()
    with pytest.raises(SelectorArgError, match=f"^{message}"):
        selector.add_path("a", args)
