"""queue-length: fewest I/Os in flight, idle paths first, ties least recently chosen."""

from __future__ import annotations

import logging

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mpath.selectors import SelectorArgError
from mpath.selectors.queue_length import QueueLengthSelector


def test_picks_the_path_with_fewest_ios_in_flight() -> None:
    selector = QueueLengthSelector[str]()
    for path in "abc":
        selector.add_path(path)
    for path, count in (("a", 3), ("b", 1), ("c", 2)):
        for _ in range(count):
            selector.start_io(path, 4096)
    assert selector.select(4096) == "b"
    selector.start_io("b", 4096)
    selector.start_io("b", 4096)
    assert selector.select(4096) == "c"


def test_counts_ios_not_bytes() -> None:
    selector = QueueLengthSelector[str]()
    selector.add_path("a")
    selector.add_path("b")
    selector.start_io("a", 1 << 30)
    selector.start_io("b", 512)
    selector.start_io("b", 512)
    assert selector.select(4096) == "a"


def test_ties_rotate_like_the_kernel_list() -> None:
    selector = QueueLengthSelector[str]()
    for path in "abc":
        selector.add_path(path)
    chosen = "".join(selector.select(4096) or "-" for _ in range(6))
    assert chosen == "abcabc"


def test_end_io_makes_a_path_attractive_again() -> None:
    selector = QueueLengthSelector[str]()
    selector.add_path("a")
    selector.add_path("b")
    selector.start_io("a", 4096)
    selector.start_io("b", 4096)
    selector.start_io("b", 4096)
    selector.end_io("b", 4096, 0.0)
    selector.end_io("b", 4096, 0.0)
    assert selector.select(4096) == "b"


@given(st.lists(st.integers(0, 8), min_size=1, max_size=8))
def test_choice_has_the_minimum_in_flight(loads: list[int]) -> None:
    selector = QueueLengthSelector[int]()
    for path, load in enumerate(loads):
        selector.add_path(path)
        for _ in range(load):
            selector.start_io(path, 4096)
    chosen = selector.select(4096)
    assert chosen is not None
    assert loads[chosen] == min(loads)


def test_repeat_count_above_one_is_clamped_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    selector = QueueLengthSelector[str]()
    with caplog.at_level(logging.WARNING):
        selector.add_path("a", ["4"])
    assert "queue-length ps: repeat_count > 1 is deprecated, using 1 instead" in caplog.text


def test_bad_repeat_count() -> None:
    with pytest.raises(SelectorArgError, match=r"^queue-length ps: invalid repeat count '1x'"):
        QueueLengthSelector[str]().add_path("a", ["1x"])
