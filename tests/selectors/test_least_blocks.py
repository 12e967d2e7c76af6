"""least-blocks: fewest bytes outstanding (Windows MPIO)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mpath.selectors import SelectorArgError
from mpath.selectors.least_blocks import LeastBlocksSelector


def test_counts_bytes_not_ios() -> None:
    selector = LeastBlocksSelector[str]()
    selector.add_path("a")
    selector.add_path("b")
    selector.start_io("a", 1 << 20)
    for _ in range(10):
        selector.start_io("b", 4096)
    assert selector.select(4096) == "b"


@given(st.lists(st.lists(st.integers(1, 1 << 20), max_size=5), min_size=1, max_size=6))
def test_choice_has_the_fewest_bytes_in_flight(loads: list[list[int]]) -> None:
    selector = LeastBlocksSelector[int]()
    for path, sizes in enumerate(loads):
        selector.add_path(path)
        for size in sizes:
            selector.start_io(path, size)
    chosen = selector.select(4096)
    assert chosen is not None
    assert sum(loads[chosen]) == min(sum(sizes) for sizes in loads)


def test_takes_no_arguments() -> None:
    with pytest.raises(SelectorArgError, match=r"^least-blocks ps: too many path arguments"):
        LeastBlocksSelector[str]().add_path("a", ["1"])
