"""What a selector costs per I/O: ``select`` + ``start_io`` + ``end_io``, by path count.

A pytest-benchmark suite (not a unit test: timings depend on the machine). Each round
runs a batch of I/Os through one selector in steady state: ``4 * paths`` I/Os stay in
flight (so every path has work), the oldest completes, a new one is selected and
started. The clock is the production one, ``time.monotonic``, so share's periodic
recomputation (every 50 ms) is included at its real rate. Every I/O has the same size,
so share takes its heap's top; docs/selectors.md gives what mixed sizes add.

Run everything and write the table and the chart (docs/img/selector-cost.png)::

    .venv/bin/python -m benchmarks.selector_cost

or just the benchmarks, with pytest-benchmark's own report::

    .venv/bin/pytest benchmarks/selector_cost.py
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from collections import deque
from pathlib import Path
from typing import Any

import pytest

from mpath.selectors import PathSelector, create_selector, split_policy

POLICIES = (
    "share",
    "share fill=bdp",  # the opt-in variant: its bookkeeping on top of share's
    "quota",
    "round-robin",
    "queue-length",
    "service-time",
    "least-blocks",
)
PATH_COUNTS = (2, 4, 8, 16, 32, 64)
BATCH = 5_000
IO_SIZE = 256 * 1024
CHART = Path(__file__).resolve().parent.parent / "docs" / "img" / "selector-cost.png"


MIXED = "share (4 KiB + 1 MiB)"  # share with two I/O sizes taking turns
MIXED_SIZES = (4 * 1024, 1024 * 1024)


class SteadyState:
    """One selector with ``4 * paths`` I/Os in flight, completed oldest first.

    ``batch`` gives every I/O the same size; ``batch_mixed`` alternates 4 KiB and 1 MiB
    (a loop of its own, so the one-size figures carry no extra bookkeeping).
    """

    def __init__(self, policy: str, paths: int, sizes: tuple[int, ...] = (IO_SIZE,)) -> None:
        depth = 4 * paths
        name, args = split_policy(policy)  # a policy may carry selector arguments
        self.selector: PathSelector[int] = create_selector(name, args, max_commands=depth)
        for path in range(paths):
            self.selector.add_path(path)
        self.in_flight: deque[tuple[int, float]] = deque()
        self.sizes: deque[int] = deque()
        for number in range(depth):
            size = sizes[number % len(sizes)]
            chosen = self.selector.select(size)
            assert chosen is not None
            self.selector.start_io(chosen, size)
            self.in_flight.append((chosen, time.monotonic()))
            self.sizes.append(size)

    def batch(self) -> None:
        select = self.selector.select
        start_io = self.selector.start_io
        end_io = self.selector.end_io
        in_flight = self.in_flight
        clock = time.monotonic
        for _ in range(BATCH):
            done, started = in_flight.popleft()
            end_io(done, IO_SIZE, started)
            chosen = select(IO_SIZE)
            if chosen is None:
                raise RuntimeError("selector refused an I/O below the LUN cap")
            start_io(chosen, IO_SIZE)
            in_flight.append((chosen, clock()))

    def batch_mixed(self) -> None:
        select = self.selector.select
        start_io = self.selector.start_io
        end_io = self.selector.end_io
        in_flight = self.in_flight
        sizes = self.sizes
        clock = time.monotonic
        for _ in range(BATCH // 2):
            for size in MIXED_SIZES:
                done, started = in_flight.popleft()
                end_io(done, sizes.popleft(), started)
                chosen = select(size)
                if chosen is None:
                    raise RuntimeError("selector refused an I/O below the LUN cap")
                start_io(chosen, size)
                in_flight.append((chosen, clock()))
                sizes.append(size)


@pytest.mark.parametrize("paths", PATH_COUNTS)
@pytest.mark.parametrize("policy", POLICIES)
def test_selector_cost(benchmark: Any, policy: str, paths: int) -> None:
    state = SteadyState(policy, paths)
    benchmark.extra_info.update(policy=policy, paths=paths, ios_per_round=BATCH)
    benchmark.pedantic(state.batch, rounds=15, iterations=1, warmup_rounds=2)


@pytest.mark.parametrize("paths", PATH_COUNTS)
def test_share_cost_with_mixed_sizes(benchmark: Any, paths: int) -> None:
    """share when sizes differ from its heap's reference size: the bounded search runs."""
    state = SteadyState("share", paths, sizes=MIXED_SIZES)
    benchmark.extra_info.update(policy=MIXED, paths=paths, ios_per_round=BATCH)
    benchmark.pedantic(state.batch_mixed, rounds=15, iterations=1, warmup_rounds=2)


def _table(report: dict[str, Any]) -> dict[str, dict[int, float]]:
    """policy -> paths -> microseconds per I/O (median round)."""
    cost: dict[str, dict[int, float]] = {}
    for bench in report["benchmarks"]:
        info = bench["extra_info"]
        per_io = bench["stats"]["median"] / info["ios_per_round"] * 1e6
        cost.setdefault(info["policy"], {})[info["paths"]] = per_io
    return cost


def _chart(cost: dict[str, dict[int, float]], target: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 4.2))
    for policy, by_paths in cost.items():
        counts = sorted(by_paths)
        width = 2.4 if policy in ("share", "quota") else 1.2
        axes.plot(counts, [by_paths[n] for n in counts], marker="o", linewidth=width, label=policy)
    axes.axhline(1.5, color="grey", linestyle="-.", linewidth=1)
    axes.text(2, 1.6, "1.5 µs budget for share (64 paths)", color="grey", fontsize=8)
    axes.axhline(5, color="grey", linestyle=":", linewidth=1)
    axes.axhline(10, color="grey", linestyle="--", linewidth=1)
    axes.text(2, 5.2, "5 µs budget (8 paths)", color="grey", fontsize=8)
    axes.text(2, 10.2, "10 µs budget (64 paths)", color="grey", fontsize=8)
    axes.set_xscale("log", base=2)
    axes.set_xticks(PATH_COUNTS, [str(n) for n in PATH_COUNTS])
    axes.set_xlabel("paths")
    axes.set_ylabel("µs per I/O (select + start_io + end_io)")
    axes.set_title("Selector cost per I/O (median of 15 rounds of 5,000 I/Os)")
    axes.set_ylim(bottom=0)
    axes.legend(fontsize=8)
    figure.tight_layout()
    target.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(target, dpi=110)


def main() -> int:
    with tempfile.TemporaryDirectory() as scratch:
        report_file = Path(scratch) / "report.json"
        status = pytest.main(
            [
                __file__,
                "-q",
                "-p",
                "no:cacheprovider",
                "--benchmark-only",
                f"--benchmark-json={report_file}",
                "--benchmark-disable-gc",
            ]
        )
        if status != 0:
            return int(status)
        report = json.loads(report_file.read_text())
    cost = _table(report)
    header = "| policy | " + " | ".join(f"{n} paths" for n in PATH_COUNTS) + " |"
    print(
        f"\nµs per I/O (select + start_io + end_io), {report['machine_info']['cpu']['brand_raw']}"
    )
    print(header)
    print("|" + " --- |" * (len(PATH_COUNTS) + 1))
    for policy, by_paths in cost.items():
        print(f"| {policy} | " + " | ".join(f"{by_paths[n]:.2f}" for n in PATH_COUNTS) + " |")
    _chart(cost, CHART)
    print(f"\nchart: {CHART}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
