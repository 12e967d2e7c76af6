"""quota: static data quotas per round within command budgets and the LUN cap."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mpath.selectors import SelectorArgError
from mpath.selectors.quota import QuotaSelector, apportion_budgets

KIB = 1024


def make(
    weights: dict[str, int], *, quantum: str = "16K", cap: int | None = None
) -> QuotaSelector[str]:
    selector = QuotaSelector[str]([f"quantum={quantum}"], max_commands=cap)
    for path, weight in weights.items():
        selector.add_path(path, [str(weight)])
    return selector


def run(selector: QuotaSelector[str], count: int, nbytes: int = 4 * KIB) -> str:
    """Select, start and at once end ``count`` I/Os; the paths chosen, in order."""
    chosen = []
    for _ in range(count):
        path = selector.select(nbytes)
        assert path is not None
        selector.start_io(path, nbytes)
        selector.end_io(path, nbytes, 0.0)
        chosen.append(path)
    return "".join(chosen)


def test_a_path_keeps_the_io_while_it_has_quota_then_the_next_takes_over() -> None:
    selector = make({"a": 1, "b": 1})
    assert run(selector, 12) == "aaaabbbbaaaa"


def test_bytes_split_by_weight() -> None:
    selector = make({"a": 1, "b": 3})
    assert run(selector, 16) == "aaaabbbbbbbbbbbb"
    assert selector.share("a") == pytest.approx(0.25)
    assert selector.share("b") == pytest.approx(0.75)


def test_an_io_larger_than_the_quota_left_is_paid_back_next_round() -> None:
    selector = make({"a": 1, "b": 1}, quantum="4K")
    # 10K I/Os against 4K quanta: each path sends one, then sits out until repaid.
    chosen = run(selector, 40, nbytes=10 * KIB)
    assert abs(chosen.count("a") - chosen.count("b")) <= 1


def test_budgets_follow_weights_and_fill_the_cap() -> None:
    selector = make({"a": 1, "b": 4}, cap=32)
    assert (selector.budget("a"), selector.budget("b")) == (7, 25)
    assert make({"a": 1}).budget("a") is None


def test_a_full_path_waits_and_select_says_none_when_every_quota_holder_is_full() -> None:
    selector = make({"a": 1, "b": 1}, quantum="8K", cap=2)
    assert selector.select(4 * KIB) == "a"
    selector.start_io("a", 4 * KIB)
    assert selector.select(4 * KIB) == "b"  # a's one slot is busy
    selector.start_io("b", 4 * KIB)
    assert selector.select(4 * KIB) is None
    assert selector.valid_count == 2  # busy, not pathless
    selector.end_io("b", 4 * KIB, 0.0)
    assert selector.select(4 * KIB) == "b"
    selector.start_io("b", 4 * KIB)  # b's quota is spent for this round
    selector.end_io("b", 4 * KIB, 0.0)
    # b has a free slot but no quota; a has quota but no slot: static quota waits.
    assert selector.select(4 * KIB) is None
    selector.end_io("a", 4 * KIB, 0.0)
    assert selector.select(4 * KIB) == "a"


def test_the_lun_cap_counts_io_still_in_flight_on_a_failed_path() -> None:
    selector = make({"a": 1, "b": 1}, quantum="1M", cap=4)
    for _ in range(2):
        assert selector.select(4 * KIB) == "a"
        selector.start_io("a", 4 * KIB)
    selector.fail_path("a")
    assert selector.budget("b") == 4
    for _ in range(2):
        assert selector.select(4 * KIB) == "b"
        selector.start_io("b", 4 * KIB)
    assert selector.total_in_flight == 4
    assert selector.select(4 * KIB) is None  # b has budget, the LUN has none
    selector.end_io("a", 4 * KIB, 0.0)
    assert selector.select(4 * KIB) == "b"


def test_with_fewer_slots_than_paths_the_heaviest_take_part() -> None:
    selector = make({"a": 1, "b": 3, "c": 2}, cap=2)
    assert [selector.budget(p) for p in "abc"] == [0, 1, 1]
    assert selector.share("a") == 0.0
    assert set(run(selector, 30)) == {"b", "c"}


def test_status_reports_quota_and_budget() -> None:
    selector = make({"a": 1, "b": 3}, cap=8)
    run(selector, 1)
    status = selector.status()
    assert status["max_commands"] == 8
    assert status["quantum"] == 16 * KIB
    a = status["paths"][0]
    assert (a["weight"], a["quota_bytes"], a["quota_left"], a["budget"]) == (
        1,
        16 * KIB,
        12 * KIB,
        2,
    )


@given(st.lists(st.integers(1, 50), min_size=1, max_size=12), st.integers(1, 256))
def test_budgets_never_exceed_the_cap(weights: list[int], cap: int) -> None:
    budgets = apportion_budgets(weights, cap)
    assert sum(budgets) <= cap
    if cap >= len(weights):
        assert sum(budgets) == cap
        assert min(budgets) >= 1
        spare = cap - len(weights)
        for weight, budget in zip(weights, budgets, strict=True):
            assert abs(budget - 1 - spare * weight / sum(weights)) < 1
    else:
        assert budgets.count(1) == cap


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["quantum=0"], "quota ps: invalid quantum '0'"),
        (["quantum=lots"], "quota ps: invalid quantum 'lots'"),
        (["quanta=4K"], "quota ps: invalid argument 'quanta=4K'"),
        (["quantum=4K", "quantum=8K"], "quota ps: argument 'quantum' given twice"),
    ],
)
def test_bad_selector_arguments(args: list[str], message: str) -> None:
    with pytest.raises(SelectorArgError, match=f"^{message}"):
        QuotaSelector[str](args)


@pytest.mark.parametrize("weight", ["0", "-1", "1.5"])
def test_bad_weight(weight: str) -> None:
    with pytest.raises(SelectorArgError, match=f"^quota ps: invalid weight '{weight}'"):
        QuotaSelector[str]().add_path("a", [weight])
