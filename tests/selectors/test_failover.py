"""failover: one active path, the rest stand by."""

from __future__ import annotations

import pytest

from mpath.selectors import SelectorArgError
from mpath.selectors.failover import FailoverSelector


def test_first_added_path_carries_everything() -> None:
    selector = FailoverSelector[str]()
    for path in "abc":
        selector.add_path(path)
    assert {selector.select(4096) for _ in range(5)} == {"a"}
    roles = [entry["role"] for entry in selector.status()["paths"]]
    assert roles == ["active", "standby", "standby"]


def test_next_in_add_order_takes_over_and_the_first_returns() -> None:
    selector = FailoverSelector[str]()
    for path in "abc":
        selector.add_path(path)
    selector.fail_path("a")
    assert selector.select(4096) == "b"
    selector.fail_path("b")
    assert selector.select(4096) == "c"
    selector.reinstate_path("a")
    assert selector.select(4096) == "a"
    assert selector.share("a") == 1.0
    assert selector.share("c") == 0.0


def test_priority_outranks_add_order() -> None:
    selector = FailoverSelector[str]()
    selector.add_path("a", ["1"])
    selector.add_path("b", ["9"])
    selector.add_path("c", ["5"])
    assert selector.select(4096) == "b"
    selector.fail_path("b")
    assert selector.select(4096) == "c"


def test_bad_priority() -> None:
    with pytest.raises(SelectorArgError, match=r"^failover ps: invalid priority 'high'"):
        FailoverSelector[str]().add_path("a", ["high"])
