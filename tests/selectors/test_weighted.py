"""weighted: Windows MPIO's Weighted Paths, the lowest weight wins."""

from __future__ import annotations

import pytest

from mpath.selectors import SelectorArgError
from mpath.selectors.weighted import WeightedSelector


def test_all_io_goes_to_the_lowest_weight() -> None:
    selector = WeightedSelector[str]()
    selector.add_path("a", ["20"])
    selector.add_path("b", ["5"])
    selector.add_path("c", ["10"])
    assert {selector.select(4096) for _ in range(5)} == {"b"}
    assert [selector.share(path) for path in "abc"] == [0.0, 1.0, 0.0]


def test_the_next_lowest_takes_over_on_failure_and_gives_back_on_return() -> None:
    selector = WeightedSelector[str]()
    selector.add_path("a", ["20"])
    selector.add_path("b", ["5"])
    selector.add_path("c", ["10"])
    selector.fail_path("b")
    assert selector.select(4096) == "c"
    selector.reinstate_path("b")
    assert selector.select(4096) == "b"


def test_equal_lowest_weights_take_turns() -> None:
    selector = WeightedSelector[str]()
    selector.add_path("a", ["1"])
    selector.add_path("b", ["1"])
    selector.add_path("c", ["2"])
    assert "".join(selector.select(4096) or "-" for _ in range(4)) == "abab"
    assert selector.share("a") == pytest.approx(0.5)


def test_bad_weight() -> None:
    with pytest.raises(SelectorArgError, match=r"^weighted ps: invalid weight 'heavy'"):
        WeightedSelector[str]().add_path("a", ["heavy"])
