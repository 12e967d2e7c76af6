"""Every policy in the simulator: the figures and charts of docs/benchmarks.md.

Runs, with the simulator's defaults (latency 0.1 ms, jitter 5 %, seed 0):

1. paths of 50 and 200 MB/s, queue depth 32, 256 KiB I/O, 20,000 I/Os, every policy
   (``mpath simulate --mbps 50,200 --qd 32 --bs 256K --ios 20000 --policy P``), plus
   quota and service-time given weights/throughputs that match the speeds; writes a
   table and docs/img/simulated-throughput.png;
2. two 200 MB/s paths, path 2 cut to 50 MB/s at 5 s, share against round-robin and
   queue-length (``mpath simulate --mbps 200,200 --rate 5:2:50 --trace 0.25 --ios 20000``);
   writes docs/img/simulated-adaptation.png;
3. 64 paths (50..365 MB/s) x 1,000,000 I/Os under share, timed on the wall clock.

    .venv/bin/python -m benchmarks.simulate_policies
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from mpath.selectors import SELECTOR_NAMES
from mpath.sim import EventKind, PathEvent, Scenario, SimPath, SimResult, simulate

END = 12.0  # seconds shown in the adaptation chart
IMG = Path(__file__).resolve().parent.parent / "docs" / "img"
KIB = 1024


def heterogeneous() -> list[tuple[str, SimResult]]:
    runs: list[tuple[str, Scenario]] = [
        (name, Scenario(paths=(SimPath(50), SimPath(200)), policy=name, qd=32, bs=256 * KIB,
                        ios=20_000))
        for name in SELECTOR_NAMES
    ]  # fmt: skip
    runs.append(
        (
            "quota (weights 1,4)",
            Scenario(paths=(SimPath(50, args=("1",)), SimPath(200, args=("4",))), policy="quota",
                     qd=32, bs=256 * KIB, ios=20_000),
        )
    )  # fmt: skip
    runs.append(
        (
            "service-time (throughput 20,80)",
            Scenario(paths=(SimPath(50, args=("0", "20")), SimPath(200, args=("0", "80"))),
                     policy="service-time", qd=32, bs=256 * KIB, ios=20_000),
        )
    )  # fmt: skip
    return [(label, simulate(scenario)) for label, scenario in runs]


def print_policy_table(results: list[tuple[str, SimResult]]) -> None:
    print("| policy | MB/s | of 250 MB/s | latency p50 ms | p99 ms | max ms | split 50/200 |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | --- |")
    for label, result in results:
        split = " / ".join(f"{path.share:.0%}" for path in result.paths)
        latency = result.latency_ms
        print(
            f"| {label} | {result.mb_per_s:.1f} | {result.efficiency:.1%} | {latency.p50:.1f} "
            f"| {latency.p99:.1f} | {latency.max:.1f} | {split} |"
        )


def chart_throughput(results: list[tuple[str, SimResult]]) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [label for label, _ in results]
    slow = [result.paths[0].bytes / result.elapsed / 1e6 for _, result in results]
    fast = [result.paths[1].bytes / result.elapsed / 1e6 for _, result in results]
    figure, axes = plt.subplots(figsize=(8, 5))
    positions = range(len(labels))
    axes.barh(positions, slow, color="#d62728", label="50 MB/s path")
    axes.barh(positions, fast, left=slow, color="#1f77b4", label="200 MB/s path")
    for position, total in zip(
        positions, (a + b for a, b in zip(slow, fast, strict=True)), strict=True
    ):
        axes.text(total + 3, position, f"{total:.0f}", va="center", fontsize=8)
    axes.axvline(250, color="black", linestyle="--", linewidth=1, label="sum of the paths")
    axes.axvline(0.95 * 250, color="grey", linestyle=":", linewidth=1, label="95 % of the sum")
    axes.set_yticks(list(positions), labels)
    axes.invert_yaxis()
    axes.set_xlim(0, 290)
    axes.set_xlabel("MB/s (simulated: qd 32, 256 KiB I/O, 20,000 I/Os)")
    axes.set_title("Throughput per policy over a 50 MB/s and a 200 MB/s path")
    axes.legend(loc="upper center", bbox_to_anchor=(0.4, -0.13), ncol=4, fontsize=8)
    figure.tight_layout()
    target = IMG / "simulated-throughput.png"
    figure.savefig(target, dpi=110)
    return target


def adaptation() -> dict[str, SimResult]:
    cut = (PathEvent(5.0, 1, EventKind.RATE, mbps=50.0),)
    return {
        name: simulate(
            Scenario(paths=(SimPath(200), SimPath(200)), policy=name, ios=20_000, events=cut,
                     trace_interval=0.25)
        )
        for name in ("share", "queue-length", "round-robin")
    }  # fmt: skip


def print_adaptation(results: dict[str, SimResult]) -> None:
    share = results["share"]
    print("\nshare, path 2 cut from 200 to 50 MB/s at t = 5 s (trace every 0.25 s)")
    print("| t (s) | path 1 MB/s | path 2 MB/s | share 1 | share 2 |")
    print("| ---: | ---: | ---: | ---: | ---: |")
    for point in share.trace:
        if 4.5 <= point.time <= 7.0:
            print(
                f"| {point.time:.2f} | {point.mbps[0]:.0f} | {point.mbps[1]:.0f} "
                f"| {point.shares[0]:.2f} | {point.shares[1]:.2f} |"
            )
    for name, result in results.items():
        after = [p for p in result.trace if p.time >= 7.0]
        mbps = sum(sum(p.mbps) for p in after) / len(after)
        print(f"{name}: after the cut {mbps:.0f} MB/s, p99 latency {result.latency_ms.p99:.1f} ms")


def chart_adaptation(results: dict[str, SimResult]) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (top, bottom) = plt.subplots(2, 1, figsize=(8, 5.5), sharex=True)
    styles = {"share": ("-", 2.5), "queue-length": ("--", 1.5), "round-robin": ("-", 1.2)}
    for name, result in results.items():
        points = [p for p in result.trace if p.time <= END]
        style, width = styles[name]
        top.plot(
            [p.time for p in points],
            [sum(p.mbps) for p in points],
            label=name,
            linestyle=style,
            linewidth=width,
        )
    top.axvline(5.0, color="grey", linestyle=":")
    top.set_ylabel("total MB/s")
    top.set_ylim(0, 450)
    top.set_title("Path 2 cut from 200 to 50 MB/s at 5 s (qd 32, 256 KiB)")
    top.legend(fontsize=8)
    share = [p for p in results["share"].trace if p.time <= END]
    times = [p.time for p in share]
    bottom.plot(times, [p.shares[1] for p in share], label="share's share for path 2")
    bottom.plot(
        times,
        [p.mbps[1] / sum(p.mbps) if sum(p.mbps) else 0 for p in share],
        label="path 2's part of the traffic",
        linestyle="--",
    )
    bottom.axhline(0.2, color="grey", linestyle=":", linewidth=1)
    bottom.axvline(5.0, color="grey", linestyle=":")
    bottom.set_ylim(0, 0.6)
    bottom.set_xlabel("simulated seconds")
    bottom.set_ylabel("fraction")
    bottom.legend(fontsize=8)
    figure.tight_layout()
    target = IMG / "simulated-adaptation.png"
    figure.savefig(target, dpi=110)
    return target


def scale() -> None:
    paths = tuple(SimPath(50 + 5 * i) for i in range(64))
    scenario = Scenario(paths=paths, policy="share", qd=256, bs=64 * KIB, ios=1_000_000)
    began = time.perf_counter()
    result = simulate(scenario)
    wall = time.perf_counter() - began
    print(
        f"\n64 paths x {result.ios:,} I/Os (share, qd 256, 64 KiB): {wall:.1f} s wall clock, "
        f"{wall / result.ios * 1e6:.2f} µs per simulated I/O; {result.mb_per_s:.0f} of "
        f"{result.sum_mbps:.0f} MB/s ({result.efficiency:.1%})"
    )


def main() -> int:
    IMG.mkdir(parents=True, exist_ok=True)
    results = heterogeneous()
    print_policy_table(results)
    print(f"chart: {chart_throughput(results)}")
    adapted = adaptation()
    print_adaptation(adapted)
    print(f"chart: {chart_adaptation(adapted)}")
    scale()
    return 0


if __name__ == "__main__":
    sys.exit(main())
