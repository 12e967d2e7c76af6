"""Every policy across the scenarios an administrator meets: simulation and real rig.

Scenarios (speeds in mbit/s as on the rig; 400 mbit/s = 50 MB/s):

* ``2p-read``: 2 paths of 400 and 1600 mbit/s, 256 KiB sequential reads, queue depth 32;
* ``2p-write``: the same with sequential writes;
* ``4p-random``: 4 paths of 100/200/400/800 mbit/s, 64 KiB random reads, queue depth 32;
* ``mixed``: 2 paths of 400 and 1600 mbit/s, two workers at once, 4 KiB random reads
  (queue depth 16) and 1 MiB sequential reads (queue depth 16), p99 per size;
* ``latency``: 2 paths of 800 mbit/s, path 2 with 5 ms more latency, 64 KiB random
  reads, queue depth 32; ``latency-qd8`` the same at queue depth 8 (too few I/Os to keep
  the far path busy: where ``share`` trades throughput for latency, docs/selectors.md);
* ``flip``: 2 paths, 800 mbit/s and one that flips between 1600 and 200 mbit/s every
  2 s, 256 KiB sequential reads, queue depth 32.

Besides every policy the matrix runs ``share fill=bdp`` (:data:`VARIANTS`), the
opt-in variant that fills every path to its bandwidth-delay product first
(docs/selectors.md). Each ``share`` is judged against the other policies, not against
the other ``share``; a ``--policy`` may carry selector arguments (``"share fill=bdp"``).

Each row gives MB/s, the percentage of the sum of the paths alone (for ``flip`` the
time-weighted mean), p50/p99/max latency and the split of bytes per path. The
simulator has no reads and writes (a path is a server either way), so ``2p-write`` is a
rig-only row. The rig cannot add delay to one path (its only shaping is tbf, with the
same queue on every path), so ``latency`` and ``latency-qd8`` are simulation-only.

On the rig, each scenario brings one rig up and runs every policy on it in turn, in
``ROUNDS`` rounds with the order rotated each round (so no policy always runs first or
last), and pools each policy's latencies over its rounds. Each run opens the device,
warms it up for ``WARMUP`` seconds unmeasured (the session's first I/Os and the
selector's first estimates are not what an administrator lives with), then measures.
Before the write scenario the whole LUN is written once, so the backing file's first
writes (allocation) fall on no policy's measurement, and before each write run the
host's dirty pages are flushed (``sync``), so no run pays for the previous one's::

    .venv/bin/python -m benchmarks.policies_matrix              # sim + rig (root)
    .venv/bin/python -m benchmarks.policies_matrix --sim-only   # no root needed
    flock /tmp/mpath-rig.lock .venv/bin/python -m benchmarks.policies_matrix \\
        --rig-only --scenario 2p-read --seconds 3

It writes the ``policies-matrix`` section of docs/benchmarks.md (only when every
scenario ran, so a partial run never replaces the table) and prints the rows as it goes.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import sys
from array import array
from collections.abc import Sequence
from dataclasses import dataclass, field

from benchmarks.report import replace_section
from mpath.selectors import SELECTOR_NAMES, split_policy
from mpath.sim import EventKind, PathEvent, Scenario, SimPath, Worker, simulate

KIB = 1024
MIB = 1024 * KIB
TOLERANCE = 0.03  # "within 3 % of first"
ROUNDS = 3
WARMUP = 1.0  # seconds of unmeasured I/O on each newly opened device (rig)
LUN_SIZE = 256 * MIB  # the rig's LUN: small enough to be written whole before writes
FILL_SECONDS = 3.0  # sequential 1 MiB writes sweep the 256 MiB LUN twice at 240 MB/s
FLIP_EVERY = 2.0
SIM_SECONDS = 16.0  # simulated seconds of load per run (I/O count derived from it)
VARIANTS = ("share fill=bdp",)  # policies run with selector arguments, besides every policy
POLICIES = (*SELECTOR_NAMES, *VARIANTS)


@dataclass(frozen=True, slots=True)
class Stream:
    """One worker: an fio-like mode, I/O size and queue depth."""

    rw: str
    bs: int
    qd: int

    @property
    def label(self) -> str:
        return f"{self.bs // MIB} MiB" if self.bs >= MIB else f"{self.bs // KIB} KiB"


@dataclass(frozen=True, slots=True)
class Case:
    """One scenario of the matrix."""

    name: str
    title: str
    mbit: tuple[int, ...]
    streams: tuple[Stream, ...]
    latency_ms: tuple[float, ...] = ()  # added per path in the simulator
    flip: tuple[int, int, int] | None = None  # (path index, mbit high, mbit low)
    sim: bool = True
    rig: bool = True

    @property
    def mbps(self) -> tuple[float, ...]:
        return tuple(rate / 8 for rate in self.mbit)

    @property
    def sum_mbps(self) -> float:
        """The paths' summed speed alone (for a flipping path, its mean speed)."""
        speeds = list(self.mbps)
        if self.flip is not None:
            index, high, low = self.flip
            speeds[index] = (high + low) / 2 / 8
        return sum(speeds)


CASES: tuple[Case, ...] = (
    Case("2p-read", "2 paths 400/1600 mbit/s, 256 KiB sequential reads, qd 32",
         (400, 1600), (Stream("read", 256 * KIB, 32),)),
    Case("2p-write", "2 paths 400/1600 mbit/s, 256 KiB sequential writes, qd 32",
         (400, 1600), (Stream("write", 256 * KIB, 32),), sim=False),
    Case("4p-random", "4 paths 100/200/400/800 mbit/s, 64 KiB random reads, qd 32",
         (100, 200, 400, 800), (Stream("randread", 64 * KIB, 32),)),
    Case("mixed", "2 paths 400/1600 mbit/s, 4 KiB random (qd 16) + 1 MiB sequential "
         "(qd 16) reads at once",
         (400, 1600), (Stream("randread", 4 * KIB, 16), Stream("read", MIB, 16))),
    Case("latency", "2 paths 800 mbit/s, path 2 with 5 ms more latency, 64 KiB random "
         "reads, qd 32",
         (800, 800), (Stream("randread", 64 * KIB, 32),), latency_ms=(0.1, 5.1), rig=False),
    Case("latency-qd8", "2 paths 800 mbit/s, path 2 with 5 ms more latency, 64 KiB random "
         "reads, qd 8",
         (800, 800), (Stream("randread", 64 * KIB, 8),), latency_ms=(0.1, 5.1), rig=False),
    Case("flip", "2 paths: 800 mbit/s, and 1600 <-> 200 mbit/s every 2 s; 256 KiB "
         "sequential reads, qd 32",
         (800, 1600), (Stream("read", 256 * KIB, 32),), flip=(1, 1600, 200)),
)  # fmt: skip


@dataclass(slots=True)
class Row:
    """One policy in one scenario, from the simulator or the rig."""

    policy: str
    mb_per_s: float
    of_sum: float
    split: tuple[float, ...]
    # per stream label: (p50, p99, max) in ms; "all" for everything together
    latency: dict[str, tuple[float, float, float]] = field(default_factory=dict)

    @property
    def p99s(self) -> dict[str, float]:
        """The p99 the verdict compares: per size when there are several sizes."""
        keys = [key for key in self.latency if key != "all"] or ["all"]
        return {key: self.latency[key][1] for key in keys}


def percentiles(values: Sequence[float]) -> tuple[float, float, float]:
    """(p50, p99, max) in ms of latencies in seconds (nearest rank, like the simulator)."""
    if not values:
        return (0.0, 0.0, 0.0)
    ordered = sorted(values)
    last = len(ordered) - 1

    def rank(fraction: float) -> float:
        return ordered[math.ceil(fraction * last)] * 1e3

    return (rank(0.50), rank(0.99), ordered[-1] * 1e3)


@dataclass(frozen=True, slots=True)
class Verdict:
    """Where ``share`` stands in one scenario: each axis as share/best - 1."""

    best_mb_per_s: tuple[str, float]
    best_p99: dict[str, tuple[str, float]]
    throughput_gap: float  # how far share's MB/s is below the best (0 = first)
    p99_gaps: dict[str, float]  # how far share's p99 is above the best, per size

    @property
    def leads(self) -> bool:
        return self.throughput_gap <= TOLERANCE and all(
            gap <= TOLERANCE for gap in self.p99_gaps.values()
        )


def verdict(rows: Sequence[Row], policy: str = "share") -> Verdict:
    """Compare ``policy`` with the best of ``rows`` on MB/s and on each p99.

    Only policies within 3 % of the best throughput compete on p99: a policy that
    leaves bandwidth unused can show a low p99 by keeping the slow path idle, which is
    not a latency an administrator can have at full speed. The same selector with other
    arguments (``share`` for ``share fill=bdp`` and the reverse) is not a competitor.
    """
    mine = next(row for row in rows if row.policy == policy)
    name = split_policy(policy)[0]
    rows = [row for row in rows if row is mine or split_policy(row.policy)[0] != name]
    fastest = max(rows, key=lambda row: row.mb_per_s)
    contenders = [row for row in rows if row.mb_per_s >= (1 - TOLERANCE) * fastest.mb_per_s]
    best_p99: dict[str, tuple[str, float]] = {}
    gaps: dict[str, float] = {}
    for key, value in mine.p99s.items():
        best = min(contenders, key=lambda row: row.p99s[key])
        best_p99[key] = (best.policy, best.p99s[key])
        gaps[key] = value / best.p99s[key] - 1 if best.p99s[key] > 0 else 0.0
    return Verdict(
        best_mb_per_s=(fastest.policy, fastest.mb_per_s),
        best_p99=best_p99,
        throughput_gap=1 - mine.mb_per_s / fastest.mb_per_s if fastest.mb_per_s else 0.0,
        p99_gaps=gaps,
    )


# -- simulation -------------------------------------------------------------------------


def flip_events(case: Case, until: float) -> tuple[PathEvent, ...]:
    """The flipping path's rate changes every FLIP_EVERY seconds up to ``until``."""
    if case.flip is None:
        return ()
    index, high, low = case.flip
    count = int(until / FLIP_EVERY)
    return tuple(
        PathEvent(
            FLIP_EVERY * (n + 1), index, EventKind.RATE, mbps=(low if n % 2 == 0 else high) / 8
        )
        for n in range(count)
    )


def sim_scenario(case: Case, policy: str, seconds: float = SIM_SECONDS) -> Scenario:
    """``case`` in the simulator for ``policy`` (which may carry selector arguments)."""
    name, args = split_policy(policy)
    latencies = case.latency_ms or (0.1,) * len(case.mbit)
    paths = tuple(
        SimPath(mbps, latency_ms=latency)
        for mbps, latency in zip(case.mbps, latencies, strict=True)
    )
    # As many I/Os as the paths move in ``seconds`` when the load splits by bytes
    # in proportion to each worker's queue depth times its I/O size.
    depth_bytes = sum(s.qd * s.bs for s in case.streams)
    mean_io = depth_bytes / sum(s.qd for s in case.streams)
    ios = max(2000, int(seconds * case.sum_mbps * 1e6 / mean_io))
    return Scenario(
        paths=paths,
        policy=name,
        policy_args=args,
        ios=ios,
        workers=tuple(Worker(s.bs, s.qd, s.label) for s in case.streams),
        events=flip_events(case, 20 * seconds),
    )


def sim_rows(case: Case, policies: Sequence[str] = POLICIES) -> list[Row]:
    rows = []
    for policy in policies:
        result = simulate(sim_scenario(case, policy))
        latency = {"all": (result.latency_ms.p50, result.latency_ms.p99, result.latency_ms.max)}
        if len(result.workers) > 1:
            for worker in result.workers:
                summary = worker.latency_ms
                latency[worker.label] = (summary.p50, summary.p99, summary.max)
        rows.append(
            Row(
                policy=policy,
                mb_per_s=result.mb_per_s,
                of_sum=result.mb_per_s / case.sum_mbps,
                split=tuple(path.share for path in result.paths),
                latency=latency,
            )
        )
    return rows


# -- real rig -----------------------------------------------------------------------------


async def _rig_run(
    urls: list[str], rig: str, policy: str, case: Case, seconds: float
) -> tuple[int, list[int], dict[str, array[float]]]:
    """One policy for ``seconds``: (bytes, bytes per path, latencies per stream label)."""
    from mpath.filter import DeviceSettings, MultipathDevice
    from mpath.rig import RigManager
    from mpath.units import parse_rate
    from mpath.workload.bench import BenchRun, BenchSpec, FaultStep

    name, args = split_policy(policy)
    device = await MultipathDevice.open(urls, DeviceSettings(policy=name, policy_args=args))
    manager = RigManager()
    faults: tuple[FaultStep, ...] = ()
    if case.flip is not None:
        index, high, low = case.flip
        steps = math.ceil(seconds / FLIP_EVERY) - 1  # flips inside the run, not at its end
        await asyncio.to_thread(manager.fault, rig, index + 1, "rate", parse_rate(f"{high}mbit"))
        faults = tuple(
            FaultStep(FLIP_EVERY * (n + 1), index + 1, "rate", f"{(low, high)[n % 2]}mbit")
            for n in range(steps)
        )

    async def apply(step: FaultStep) -> None:
        rate = parse_rate(step.rate) if step.rate else None
        await asyncio.to_thread(manager.fault, rig, step.index, step.action, rate)

    try:
        # Warm up the new device (and its selector) first, unmeasured: the table is
        # about the policy in steady state, not about a freshly opened device.
        await asyncio.gather(
            *(
                BenchRun(device, BenchSpec(rw=s.rw, block_size=s.bs, queue_depth=s.qd,
                                           seconds=WARMUP, seed=100 + n)).run()
                for n, s in enumerate(case.streams)
            )
        )  # fmt: skip
        before = [path["bytes"] for path in device.paths]
        runs = [
            BenchRun(
                device,
                BenchSpec(
                    rw=stream.rw,
                    block_size=stream.bs,
                    queue_depth=stream.qd,
                    seconds=seconds,
                    faults=faults if number == 0 else (),
                    seed=number,
                ),
            )
            for number, stream in enumerate(case.streams)
        ]
        results = await asyncio.gather(
            *(
                run.run(apply_fault=apply if number == 0 else None)
                for number, run in enumerate(runs)
            )
        )
        moved = [path["bytes"] - b for path, b in zip(device.paths, before, strict=True)]
    finally:
        await device.close()
    return (
        sum(result.bytes for result in results),
        moved,
        {
            stream.label: result.latencies
            for stream, result in zip(case.streams, results, strict=True)
        },
    )


def run_order(policies: Sequence[str], round_number: int, rounds: int = ROUNDS) -> list[str]:
    """The policies' order in one round: rotated each round, and reversed every other.

    Rotation keeps any policy from always running first; reversal gives each policy
    other neighbours, so what one run leaves behind (a target still writing back the
    previous run's data) does not always fall on the same policy.
    """
    shift = round_number * len(policies) // rounds
    order = list(policies[shift:]) + list(policies[:shift])
    return order[::-1] if round_number % 2 else order


async def _fill(urls: list[str]) -> None:
    """Write the whole LUN once, so no policy pays for the backing file's first writes."""
    from mpath.filter import DeviceSettings, MultipathDevice
    from mpath.workload.bench import BenchRun, BenchSpec

    device = await MultipathDevice.open(urls, DeviceSettings(policy="share"))
    try:
        spec = BenchSpec(rw="write", block_size=MIB, queue_depth=16, seconds=FILL_SECONDS)
        await BenchRun(device, spec).run()
    finally:
        await device.close()


def rig_rows(
    case: Case, seconds: float, policies: Sequence[str] = POLICIES, rounds: int = ROUNDS
) -> list[Row]:
    """Bring one rig up for ``case`` and run every policy on it, alternating."""
    from mpath.rig import RigManager
    from mpath.rig.manager import parse_rates

    manager = RigManager()
    name = f"matrix-{case.name}"
    manager.down(name)
    rates = parse_rates(",".join(f"{rate}mbit" for rate in case.mbit), len(case.mbit))
    rig = manager.up(name=name, paths=len(case.mbit), size=LUN_SIZE, rates=rates)
    moved: dict[str, int] = {policy: 0 for policy in policies}
    split: dict[str, list[int]] = {policy: [0] * len(case.mbit) for policy in policies}
    pooled: dict[str, dict[str, array[float]]] = {
        policy: {stream.label: array("d") for stream in case.streams} for policy in policies
    }
    # A flipping path spends as long at each speed: two flip intervals per run.
    length = 2 * FLIP_EVERY if case.flip is not None else seconds
    writes = any(stream.rw in ("write", "randwrite") for stream in case.streams)
    try:
        if writes:
            asyncio.run(_fill(rig.urls))
        for round_number in range(rounds):
            for policy in run_order(policies, round_number, rounds):
                if writes:
                    os.sync()  # the previous run's writes reach the disk before this one
                nbytes, per_path, latencies = asyncio.run(
                    _rig_run(rig.urls, name, policy, case, length)
                )
                moved[policy] += nbytes
                split[policy] = [a + b for a, b in zip(split[policy], per_path, strict=True)]
                for label, values in latencies.items():
                    pooled[policy][label].extend(values)
                every = array("d")
                for values in latencies.values():
                    every.extend(values)
                print(
                    f"  rig {case.name:9} round {round_number + 1} {policy:24} "
                    f"{nbytes / length / 1e6:7.1f} MB/s  p99 {percentiles(every)[1]:7.2f} ms",
                    file=sys.stderr,
                )
    finally:
        manager.down(name)
    rows = []
    for policy in policies:
        mb_per_s = moved[policy] / (length * rounds) / 1e6
        total = sum(split[policy]) or 1
        everything = array("d")
        for values in pooled[policy].values():
            everything.extend(values)
        latency = {"all": percentiles(everything)}
        if len(case.streams) > 1:
            for label, values in pooled[policy].items():
                latency[label] = percentiles(values)
        rows.append(
            Row(
                policy=policy,
                mb_per_s=mb_per_s,
                of_sum=mb_per_s / case.sum_mbps,
                split=tuple(b / total for b in split[policy]),
                latency=latency,
            )
        )
    return rows


# -- report -------------------------------------------------------------------------------


def _latency_cell(row: Row, index: int) -> str:
    keys = [key for key in row.latency if key != "all"]
    if not keys:
        return (
            f"{row.latency['all'][index]:.1f}"
            if row.latency["all"][index] >= 10
            else (f"{row.latency['all'][index]:.2f}")
        )
    return " / ".join(
        f"{row.latency[key][index]:.1f}" if row.latency[key][index] >= 10
        else f"{row.latency[key][index]:.2f}"
        for key in keys
    )  # fmt: skip


def table(case: Case, where: str, rows: Sequence[Row]) -> list[str]:
    judged = verdict(rows)
    sizes = [key for key in rows[0].latency if key != "all"]
    unit = f" ({' / '.join(sizes)})" if sizes else ""
    lines = [
        f"**{case.title}** — {where}",
        "",
        f"| policy | MB/s | of {case.sum_mbps:.1f} MB/s | p50 ms{unit} | p99 ms{unit} | "
        f"max ms{unit} | split |",
        "| --- | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    fastest = judged.best_mb_per_s[1]
    for row in rows:
        name = f"**{row.policy}**" if split_policy(row.policy)[0] == "share" else row.policy
        mbps = f"{row.mb_per_s:.1f}"
        if row.mb_per_s >= (1 - TOLERANCE) * fastest:
            mbps = f"**{mbps}**"
        lines.append(
            f"| {name} | {mbps} | {row.of_sum:.1%} | {_latency_cell(row, 0)} | "
            f"{_latency_cell(row, 1)} | {_latency_cell(row, 2)} | "
            + " / ".join(f"{part:.0%}" for part in row.split)
            + " |"
        )
    lines.append("")
    return lines


def summary_line(case: Case, where: str, rows: Sequence[Row], policy: str = "share") -> str:
    judged = verdict(rows, policy)
    share = next(row for row in rows if row.policy == policy)
    best_policy, best_mbps = judged.best_mb_per_s
    p99_cells = []
    for key, (best, value) in judged.best_p99.items():
        label = "" if key == "all" else f"{key}: "
        p99_cells.append(
            f"{label}{share.p99s[key]:.2f} vs {value:.2f} ({best}, {judged.p99_gaps[key]:+.1%})"
        )
    return (
        f"| {case.name} | {where} | {share.mb_per_s:.1f} vs {best_mbps:.1f} ({best_policy}, "
        f"{0.0 - judged.throughput_gap:+.1%}) | {'; '.join(p99_cells)} | "
        f"{'yes' if judged.leads else '**no**'} |"
    )


def render(results: list[tuple[Case, str, list[Row]]], seconds: float, rounds: int = ROUNDS) -> str:
    lines = [
        "## Policy matrix: every policy in every scenario",
        "",
        "`benchmarks/policies_matrix.py`: the simulator (16 simulated seconds of load per",
        "run, seed 0) and the real rig (one rig per scenario, every policy in turn for "
        f"{seconds:g} s,",
        f"{rounds} rounds with the order rotated, latencies pooled). MB/s within 3 % of the",
        "best are bold. The p99 contest is among the policies within 3 % of the best MB/s",
        "(a policy that leaves a path idle can have a low p99 at a fraction of the speed).",
        "With two workers the latency columns give each I/O size separately.",
        "",
        "    .venv/bin/python -m benchmarks.policies_matrix",
        "",
        "### Where `share` stands",
        "",
        "| scenario | where | MB/s: share vs best | p99 ms: share vs best (of the fast) | "
        "first or within 3 %? |",
        "| --- | --- | --- | --- | --- |",
    ]
    for case, where, rows in results:
        lines.append(summary_line(case, where, rows))
    misses = [f"{case.name} ({where})" for case, where, rows in results if not verdict(rows).leads]
    lines += [
        "",
        "The simulator does not tell reads from writes (a path is a server either way), so",
        "`2p-write` is a rig row only; the rig cannot add latency to one path (its only",
        "shaping is one tbf per path, with the same queue on every path), so `latency` and",
        "`latency-qd8` are simulation rows only. The rig rows start each run on a freshly",
        f"opened device after {WARMUP:g} s of unmeasured warm-up.",
    ]
    if misses:
        lines += [
            "",
            f"Not first or within 3 %: {', '.join(misses)}. Why: "
            "[selectors.md](selectors.md#share-dynamic-balancing-by-measured-speed-default)"
            " (*Where it does not lead*).",
        ]
    variants = [
        variant
        for variant in VARIANTS
        if all(variant in {row.policy for row in rows} for _, _, rows in results)
    ]
    for variant in variants:
        lines += [
            "",
            f"### Where `{variant}` stands",
            "",
            "The opt-in variant ([selectors.md](selectors.md#fillbdp-filling-each-path-to-its-"
            "bandwidth-delay-product-first)), against the other policies (not against `share`):",
            "",
            f"| scenario | where | MB/s: {variant} vs best | p99 ms: {variant} vs best "
            "(of the fast) | first or within 3 %? |",
            "| --- | --- | --- | --- | --- |",
        ]
        lines += [summary_line(case, where, rows, variant) for case, where, rows in results]
    lines += ["", "### Every row", ""]
    for case, where, rows in results:
        lines += table(case, where, rows)
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.policies_matrix")
    parser.add_argument("--sim-only", action="store_true", help="skip the real rig")
    parser.add_argument("--rig-only", action="store_true", help="skip the simulator")
    parser.add_argument(
        "--scenario", action="append", choices=[case.name for case in CASES],
        help="run only this scenario (repeatable); the docs are then left alone",
    )  # fmt: skip
    parser.add_argument(
        "--seconds",
        type=float,
        default=3.0,
        help="measured seconds per policy per round on the rig (flip: always 4)",
    )
    parser.add_argument(
        "--policy",
        action="append",
        help="only these policies (docs left alone); with selector arguments: "
        "--policy 'share fill=bdp'",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=ROUNDS,
        help=f"rounds of every policy on the rig (default {ROUNDS})",
    )
    options = parser.parse_args(argv)
    if options.rounds < 1:
        parser.error("--rounds must be at least 1")
    cases = [case for case in CASES if not options.scenario or case.name in options.scenario]
    policies = tuple(options.policy or POLICIES)
    for policy in policies:
        if split_policy(policy)[0] not in SELECTOR_NAMES:
            parser.error(f"unknown policy {policy!r} (choose from {', '.join(SELECTOR_NAMES)})")
    if "share" not in policies:
        policies = ("share", *policies)
    rig = not options.sim_only and os.geteuid() == 0
    if not options.sim_only and not rig:
        print("not root: the real-rig rows are skipped", file=sys.stderr)
    results: list[tuple[Case, str, list[Row]]] = []
    for case in cases:
        if case.sim and not options.rig_only:
            rows = sim_rows(case, policies)
            results.append((case, "sim", rows))
            print(summary_line(case, "sim", rows))
        if case.rig and rig:
            rows = rig_rows(case, options.seconds, policies, options.rounds)
            results.append((case, "rig", rows))
            print(summary_line(case, "rig", rows))
    text = render(results, options.seconds, options.rounds)
    complete = not options.scenario and not options.policy and rig and not options.rig_only
    if complete:
        replace_section("policies-matrix", text)
    else:
        print("\n" + text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
