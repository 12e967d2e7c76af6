"""Scenario validation: bad input is a UsageError that says what is wrong."""

from __future__ import annotations

import pytest

from mpath.errors import UsageError
from mpath.sim import EventKind, PathEvent, Scenario, SimPath


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: SimPath(0), "bad path speed 0"),
        (lambda: SimPath(10, latency_ms=-1), "bad path latency -1"),
        (lambda: PathEvent(-1, 0, EventKind.FAIL), "bad event time -1"),
        (lambda: PathEvent(1, 0, EventKind.RATE), "bad speed None"),
        (lambda: Scenario(paths=()), "at least one path"),
        (lambda: Scenario(paths=(SimPath(1),), qd=0), "bad queue depth 0"),
        (lambda: Scenario(paths=(SimPath(1),), bs=0), "bad block size 0"),
        (lambda: Scenario(paths=(SimPath(1),), ios=0), "bad I/O count 0"),
        (lambda: Scenario(paths=(SimPath(1),), jitter=1.0), "bad jitter 1.0"),
        (lambda: Scenario(paths=(SimPath(1),), max_commands=0), "bad max_commands 0"),
        (lambda: Scenario(paths=(SimPath(1),), trace_interval=0), "bad trace interval 0"),
        (
            lambda: Scenario(paths=(SimPath(1),), events=(PathEvent(1, 1, EventKind.FAIL),)),
            "event on path 2: there are only 1 paths",
        ),
    ],
)
def test_bad_scenarios_are_refused(build: object, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        build()  # type: ignore[operator]


def test_sum_of_speeds() -> None:
    assert Scenario(paths=(SimPath(50), SimPath(200))).sum_mbps == 250
