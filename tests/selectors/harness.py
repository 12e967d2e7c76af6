"""A driver that plays random operation sequences against any selector.

It follows the calling convention the filter layer follows (start_io only after a
select that returned the path, end_io exactly once per start_io, failures while I/O
is in flight) and checks the invariants every policy must keep at every step.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from hypothesis import strategies as st

from mpath.selectors import PathSelector, create_selector, split_policy
from mpath.selectors.groups import PriorityGroups
from mpath.selectors.quota import QuotaSelector


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self, start: float = 0.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Outstanding:
    path: int
    nbytes: int
    started: float


@dataclass
class Driver:
    """Applies operations and checks invariants; ``chosen`` counts selections per path."""

    selector: PathSelector[int]
    clock: FakeClock
    paths: int
    max_commands: int | None = None
    failed: set[int] = field(default_factory=set)
    in_flight: list[Outstanding] = field(default_factory=list)
    chosen: dict[int, int] = field(default_factory=dict)

    def io(self, nbytes: int) -> int | None:
        path = self.selector.select(nbytes)
        if path is None:
            usable = self.paths - len(self.failed)
            assert self.selector.valid_count == usable
            if usable and not isinstance(self.selector, QuotaSelector | PriorityGroups):
                raise AssertionError("select returned None with usable paths")
            return None
        assert path not in self.failed, f"failed path {path} was selected"
        assert 0 <= path < self.paths
        if isinstance(self.selector, QuotaSelector):
            budget = self.selector.budget(path)
            held = sum(1 for io in self.in_flight if io.path == path)
            assert budget is None or held < budget, f"path {path} over its budget {budget}"
        self.selector.start_io(path, nbytes)
        self.in_flight.append(Outstanding(path, nbytes, self.clock()))
        self.chosen[path] = self.chosen.get(path, 0) + 1
        self.check_cap()
        return path

    def end(self, which: int) -> None:
        if not self.in_flight:
            return
        done = self.in_flight.pop(which % len(self.in_flight))
        self.selector.end_io(done.path, done.nbytes, done.started)

    def fail(self, path: int) -> None:
        self.selector.fail_path(path)
        self.failed.add(path)

    def reinstate(self, path: int) -> None:
        self.selector.reinstate_path(path)
        self.failed.discard(path)

    def drain(self) -> None:
        while self.in_flight:
            self.end(0)

    def check_cap(self) -> None:
        """Quota never lets the LUN's commands in flight exceed ``max_commands``."""
        if self.max_commands is not None and isinstance(self.selector, QuotaSelector):
            assert len(self.in_flight) <= self.max_commands
            assert self.selector.total_in_flight == len(self.in_flight)

    def check_counters_zero(self) -> None:
        for entry in self.selector.status()["paths"]:
            assert entry["in_flight"] == 0, entry
            assert entry["in_flight_bytes"] == 0, entry
        if isinstance(self.selector, QuotaSelector):
            assert self.selector.total_in_flight == 0

    def apply(self, operations: Sequence[tuple[str, int]]) -> None:
        actions: dict[str, Callable[[int], Any]] = {
            "io": lambda value: self.io(512 * (1 + value % 512)),
            "end": self.end,
            "fail": lambda value: self.fail(value % self.paths),
            "reinstate": lambda value: self.reinstate(value % self.paths),
            "tick": lambda value: self.clock.advance(value / 1000),
        }
        for name, value in operations:
            actions[name](value)


def make_driver(
    policy: str,
    paths: int,
    *,
    max_commands: int | None = None,
    path_args: Sequence[Sequence[str]] | None = None,
    groups: bool = False,
) -> Driver:
    """A driver over ``paths`` paths; ``policy`` may carry selector arguments
    (``"share fill=bdp"``)."""
    clock = FakeClock()
    name, args = split_policy(policy)
    selector: PathSelector[int]
    if groups:
        grouped = PriorityGroups[int](args, clock=clock, max_commands=max_commands, policy=name)
        for path in range(paths):
            grouped.add_path(path, priority=path % 2)
        selector = grouped
    else:
        selector = create_selector(name, args, clock=clock, max_commands=max_commands)
        for path in range(paths):
            selector.add_path(path, path_args[path] if path_args else ())
    return Driver(selector, clock, paths, max_commands)


operation = st.one_of(
    st.tuples(st.just("io"), st.integers(0, 10_000)),
    st.tuples(st.just("io"), st.integers(0, 10_000)),
    st.tuples(st.just("end"), st.integers(0, 1_000)),
    st.tuples(st.just("fail"), st.integers(0, 100)),
    st.tuples(st.just("reinstate"), st.integers(0, 100)),
    st.tuples(st.just("tick"), st.integers(0, 500)),
)
operations = st.lists(operation, max_size=120)
