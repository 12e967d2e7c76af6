"""fio through the NBD export (``mpath serve``) against libiscsi's ``iscsi-perf``, real rig.

What it measures, as root::

    .venv/bin/python -m benchmarks.nbd_fio [--seconds S] [--rounds N] [--no-docs]

1. A 2-path rig with unlimited paths: fio's nbd engine through ``mpath serve`` over both
   paths, through ``mpath serve`` over path 1 only, and ``iscsi-perf`` straight at
   path 1 (no NBD, no Python: libiscsi's own C client, the ceiling of one path). 4 KiB
   random reads, 256 KiB sequential reads (both also with iscsi-perf), 4 KiB random
   writes and 256 KiB sequential writes (fio only: iscsi-perf only reads), queue depth 32.
2. The same rig with each path limited to 400 mbit/s (``rig fault N rate 400mbit``):
   256 KiB sequential reads, where the export over two paths should carry about twice
   what one path carries.

Each run lasts ``--seconds`` after a 1 s warm-up that is not counted; the runs of one
workload alternate between clients round after round (the machine's cores are shared
with tgtd and anything else running), and the table gives the mean over the rounds.
The server's own CPU time per I/O is read from /proc for the export runs.

It prints the tables and writes them into docs/benchmarks.md (section ``nbd-fio``).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import select
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from benchmarks.report import replace_section
from mpath.rig import Rig, RigManager
from mpath.units import parse_rate

RIG_NAME = "bench-nbd"
LUN_SIZE = 1024 * 1024 * 1024
DEPTH = 32
WARMUP = 1
MPATH = [sys.executable, "-m", "mpath"]
CLK_TCK = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Workload:
    name: str
    rw: str  # fio's --rw
    block_bytes: int
    metric: str  # "IOPS" or "MB/s"
    jobs: int = 1  # fio --numjobs: one NBD connection each

    @property
    def fio_bs(self) -> str:
        return f"{self.block_bytes // 1024}k"

    @property
    def perf_args(self) -> list[str] | None:
        """iscsi-perf's arguments for the same workload (None: it cannot write)."""
        if self.rw not in ("read", "randread"):
            return None
        args = ["-m", str(DEPTH), "-b", str(self.block_bytes // 512)]
        return args + (["-r"] if self.rw == "randread" else [])


WORKLOADS = (
    Workload("4 KiB random read", "randread", 4096, "IOPS"),
    Workload("256 KiB sequential read", "read", 256 * 1024, "MB/s"),
    Workload("4 KiB random write", "randwrite", 4096, "IOPS"),
    Workload("256 KiB sequential write", "write", 256 * 1024, "MB/s"),
)
LIMITED = Workload("256 KiB sequential read", "read", 256 * 1024, "MB/s")


@dataclass(frozen=True)
class Result:
    iops: float
    server_cpu_us: float | None = None  # the export's CPU per I/O
    server_system_us: float | None = None  # of which in the kernel (stime)
    path_failures: int = 0  # paths the export's device failed during the run

    def value(self, workload: Workload) -> float:
        return self.iops if workload.metric == "IOPS" else self.iops * workload.block_bytes / 1e6


def cpu_times(pid: int) -> tuple[float, float]:
    """A process's user and system CPU time (/proc/PID/stat utime, stime), seconds.

    Kept apart because a server's system time includes work that is not its own
    code: on a veth, the target side's receive path runs in the sender's system call.
    """
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) / CLK_TCK, int(fields[12]) / CLK_TCK


class Served(Protocol):
    """An NBD server under test: where to connect, and its process's CPU time."""

    @property
    def uri(self) -> str: ...

    def cpu_times(self) -> tuple[float, float]: ...

    def path_failures(self) -> int: ...


class Export:
    """``mpath serve`` on a Unix socket, as a user runs it; always stopped."""

    def __init__(
        self,
        paths: list[str],
        folder: Path,
        extra: tuple[str, ...] = (),
        listen: str = "",
        *,
        tree: Path | None = None,
    ) -> None:
        """``tree``: run the ``mpath`` of that source tree (a checkout of another commit,
        for a before/after comparison in one run) instead of this one."""
        label = f"{len(paths)}{'-' + tree.name if tree is not None else ''}"
        self.socket = folder / f"nbd-{label}.sock"
        listen = listen or f"unix:{self.socket}"
        self.command = [*MPATH, "serve", *paths, "--listen", listen, "--json", *extra]
        self.log = folder / f"serve-{label}.log"
        env = None if tree is None else {**os.environ, "PYTHONPATH": str(tree)}
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                self.command, stdout=subprocess.PIPE, stderr=log, cwd=tree, env=env
            )
        self.uri = str(self._ready(60)["uri"])

    def _ready(self, timeout: float) -> dict[str, Any]:
        assert self.process.stdout is not None
        fd = self.process.stdout.fileno()
        deadline = time.monotonic() + timeout
        text = b""
        while True:
            try:
                document: dict[str, Any] = json.loads(text)
                return document
            except ValueError:
                pass
            remaining = deadline - time.monotonic()
            readable, _w, _x = select.select([fd], [], [], max(remaining, 0))
            if not readable:
                self.stop()
                raise RuntimeError(f"mpath serve not ready within {timeout} s")
            chunk = os.read(fd, 65536)
            if not chunk:
                raise RuntimeError(f"mpath serve exited: {self.process.wait()}")
            text += chunk

    def cpu_times(self) -> tuple[float, float]:
        return cpu_times(self.process.pid)

    def path_failures(self) -> int:
        """Paths failed so far (the device logs one line per failure on stderr)."""
        return self.log.read_text(errors="replace").count(" failed: ")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        log = self.log.read_text(errors="replace")
        sys.stderr.write(log)
        if self.process.returncode:
            raise RuntimeError(f"mpath serve exited {self.process.returncode}")


def fio_command(uri: str, workload: Workload, seconds: int) -> list[str]:
    jobs = [f"--numjobs={workload.jobs}", "--group_reporting"] if workload.jobs > 1 else []
    return [
        "fio", "--name=bench", "--ioengine=nbd", f"--uri={uri}", f"--rw={workload.rw}",
        f"--bs={workload.fio_bs}", f"--iodepth={DEPTH}", "--time_based",
        f"--runtime={seconds}", f"--ramp_time={WARMUP}", f"--size={LUN_SIZE}",
        "--verify_state_save=0", "--output-format=json", *jobs,
    ]  # fmt: skip


def run_fio(export: Served, workload: Workload, seconds: int) -> Result:
    (user0, system0), failures0 = export.cpu_times(), export.path_failures()
    done = subprocess.run(
        fio_command(export.uri, workload, seconds),
        capture_output=True, text=True, timeout=seconds + WARMUP + 60, check=False,
    )  # fmt: skip
    user1, system1 = export.cpu_times()
    system = system1 - system0
    cpu = user1 - user0 + system
    failures = export.path_failures() - failures0
    if done.returncode:
        raise RuntimeError(f"fio failed ({done.returncode}): {done.stderr}{done.stdout[-2000:]}")
    job = json.loads(done.stdout[done.stdout.index("{") :])["jobs"][0]
    side = job["write"] if "write" in workload.rw else job["read"]
    if job["error"] or side["iops"] <= 0:
        raise RuntimeError(f"fio reported error {job['error']} / no I/O")
    ios = side["total_ios"] or 1
    # The server's CPU over the whole run includes the warm-up second: spread it over
    # the I/Os of the warm-up too (estimated at the measured rate).
    counted = ios + side["iops"] * WARMUP
    return Result(
        iops=float(side["iops"]),
        server_cpu_us=cpu / counted * 1e6,
        server_system_us=system / counted * 1e6,
        path_failures=failures,
    )


def run_iscsi_perf(url: str, workload: Workload, seconds: int) -> Result:
    args = workload.perf_args
    assert args is not None
    process = subprocess.Popen(
        ["iscsi-perf", *args, url], stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        # iscsi-perf runs until SIGINT: this timeout is the run's length.
        out, _ = process.communicate(timeout=WARMUP + seconds + 0.5)
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGINT)
        out, _ = process.communicate(timeout=10)
    rates = [int(x) for x in re.findall(rb"iops current (\d+)", out)][WARMUP:]
    if not rates:
        raise RuntimeError(f"iscsi-perf printed no rate: {out.decode(errors='replace')[-500:]}")
    return Result(iops=statistics.fmean(rates))


Measure = dict[str, list[Result]]


def measure(
    rig: Rig, workloads: tuple[Workload, ...], seconds: int, rounds: int, folder: Path
) -> tuple[dict[str, Measure], dict[str, int]]:
    """Every workload through every client, alternating order round by round.

    Also returns how many paths each export's device failed in all, measured runs or
    not (the flush when a client leaves, and at shutdown, happen between runs).
    """
    both, one = Export(rig.urls, folder), None
    results: dict[str, Measure] = {w.name + w.rw: {} for w in workloads}
    try:
        one = Export(rig.urls[:1], folder)
        clients: list[tuple[str, Any]] = [
            ("export2", lambda w: run_fio(both, w, seconds)),
            ("export1", lambda w: run_fio(one, w, seconds)),
            ("perf", lambda w: run_iscsi_perf(rig.urls[0], w, seconds)),
        ]
        for round_number in range(rounds):
            order = clients if round_number % 2 == 0 else clients[::-1]
            for workload in workloads:
                for name, run in order:
                    if name == "perf" and workload.perf_args is None:
                        continue
                    result = run(workload)
                    results[workload.name + workload.rw].setdefault(name, []).append(result)
                    print(
                        f"round {round_number + 1} {workload.name:26} {name:8} "
                        f"{result.value(workload):10.1f} {workload.metric}",
                        file=sys.stderr,
                    )
    finally:
        both.stop()
        if one is not None:
            one.stop()
    totals = {"export2": both.path_failures(), "export1": one.path_failures() if one else 0}
    return results, totals


def _mean(results: list[Result], workload: Workload) -> float:
    return statistics.fmean(r.value(workload) for r in results)


def _cpu(results: list[Result]) -> str:
    values = [r.server_cpu_us for r in results if r.server_cpu_us is not None]
    return f"{statistics.fmean(values):.0f}" if values else "-"


def _failures(results: list[Result]) -> int:
    return sum(r.path_failures for r in results)


def _fmt(value: float, workload: Workload) -> str:
    return f"{value:,.0f}" if workload.metric == "IOPS" else f"{value:,.1f}"


def table(results: dict[str, Measure], workloads: tuple[Workload, ...]) -> list[str]:
    lines = [
        "| workload (qd 32) | iscsi-perf, path 1 | fio → export, path 1 | fio → export, "
        "2 paths | 2 paths / 1 path | 2-path export / iscsi-perf | server CPU µs/I/O "
        "(2 paths) | paths failed (2 paths / 1 path) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for workload in workloads:
        row = results[workload.name + workload.rw]
        two, one = _mean(row["export2"], workload), _mean(row["export1"], workload)
        perf = _mean(row["perf"], workload) if "perf" in row else None
        lines.append(
            f"| {workload.name} ({workload.metric}) | "
            f"{_fmt(perf, workload) if perf else 'n/a (reads only)'} | {_fmt(one, workload)} | "
            f"**{_fmt(two, workload)}** | {two / one:.2f}x | "
            f"{f'{two / perf:.0%}' if perf else '-'} | {_cpu(row['export2'])} | "
            f"{_failures(row['export2'])} / {_failures(row['export1'])} |"
        )
    return lines


def _findings(
    unlimited: dict[str, Measure],
    limited: dict[str, Measure],
    failed: dict[str, int],
    limited_failed: dict[str, int],
) -> list[str]:
    """The conclusions, from this run's numbers."""
    gains = [
        _mean(unlimited[w.name + w.rw]["export2"], w)
        / _mean(unlimited[w.name + w.rw]["export1"], w)
        for w in WORKLOADS
    ]
    vs_perf = [
        _mean(unlimited[w.name + w.rw]["export2"], w) / _mean(unlimited[w.name + w.rw]["perf"], w)
        for w in WORKLOADS
        if w.perf_args is not None
    ]
    row = limited[LIMITED.name + LIMITED.rw]
    limited_gain = _mean(row["export2"], LIMITED) / _mean(row["export1"], LIMITED)
    limited_vs_perf = _mean(row["export1"], LIMITED) / _mean(row["perf"], LIMITED)
    total = sum(failed.values()) + sum(limited_failed.values())
    in_runs = sum(
        _failures(m.get(name, []))
        for results in (unlimited, limited)
        for m in results.values()
        for name in ("export2", "export1")
    )
    outside = total - in_runs
    return [
        "* **Unlimited paths: the export is CPU-bound.** A second path brings no gain",
        f"  ({min(gains):.2f}x to {max(gains):.2f}x), and the",
        f"  2-path export reaches {min(vs_perf):.0%} to {max(vs_perf):.0%} of what iscsi-perf",
        "  reads over one path. Every request crosses the NBD socket, the Python server, the",
        "  filter layer and libiscsi, on the same two shared cores as tgtd and fio, while",
        "  iscsi-perf is one C process that discards the data. The last column is the",
        "  `mpath serve` process's own CPU time per I/O.",
        "* **Links as the limit (400 mbit/s each): the export over two paths carries",
        f"  {limited_gain:.2f}x what it carries over one**, and over one path it reaches",
        f"  {limited_vs_perf:.0%} of iscsi-perf: the multipath gain reaches NBD clients.",
        "* **Paths failed** counts the paths the export's device failed during the measured",
        "  runs (no fault was injected): a busy path that completes nothing for the stall",
        "  watchdog's limit (at least 0.3 s, docs/filter.md) is failed and its commands",
        "  reissued. Over the whole benchmark the devices failed",
        f"  {total} paths, {outside} of them between the measured runs: in the SYNCHRONIZE",
        "  CACHE the server sends when a client leaves after writing (checked by hand: the",
        "  failure follows the disconnect), which with gigabytes of dirty data in the",
        "  target's page cache takes longer than the watchdog allows. The flush is",
        "  reissued and succeeds, so no client sees an error, but it costs a reconnect;",
        "  a longer watchdog limit for SYNCHRONIZE CACHE is a filter-layer change to make.",
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=int, default=5, help="measured seconds per run")
    parser.add_argument("--rounds", type=int, default=2, help="rounds of every client")
    parser.add_argument("--no-docs", action="store_true", help="do not write docs/benchmarks.md")
    args = parser.parse_args(argv if argv is not None else sys.argv[1:])
    for tool in ("fio", "iscsi-perf"):
        if shutil.which(tool) is None:
            print(f"{tool} not installed (make setup)", file=sys.stderr)
            return 1
    if os.geteuid() != 0:
        print("needs root: it builds a rig", file=sys.stderr)
        return 1
    load = os.getloadavg()[0]
    manager = RigManager()
    manager.down(RIG_NAME)
    folder = Path(tempfile.mkdtemp(prefix="mpnbd-bench-", dir="/tmp"))
    try:
        rig = manager.up(name=RIG_NAME, paths=2, size=LUN_SIZE)
        unlimited, failed = measure(rig, WORKLOADS, args.seconds, args.rounds, folder)
        for index in (1, 2):
            manager.fault(RIG_NAME, index, "rate", parse_rate("400mbit"))
        limited, limited_failed = measure(rig, (LIMITED,), args.seconds, args.rounds, folder)
    finally:
        manager.down(RIG_NAME)
        shutil.rmtree(folder, ignore_errors=True)
    fio_example = " ".join(fio_command("URI", WORKLOADS[0], args.seconds)).replace(
        f"--size={LUN_SIZE}", "--size=1G"
    )
    lines = [
        "## NBD export: fio through `mpath serve` vs iscsi-perf (real rig)",
        "",
        "fio's nbd engine (libnbd) through `mpath serve` over both paths of a 2-path rig,",
        "through `mpath serve` over path 1 only, and libiscsi's C tool `iscsi-perf` straight",
        "at path 1 (no NBD, no Python; it only reads). Queue depth 32, one connection,",
        f"{args.seconds} s per run after a 1 s warm-up, mean of {args.rounds} rounds with",
        "the clients' order alternating; 1 GiB LUN, default policy (`share`). Measured",
        f"{time.strftime('%Y-%m-%d')} on a {os.cpu_count()}-core machine shared with tgtd,",
        f"fio and other work (load average {load:.1f} when it started).",
        "",
        "    mpath rig up --name bench-nbd --paths 2 --size 1G",
        "    mpath serve --rig bench-nbd --listen unix:/tmp/nbd-2.sock          # 2 paths",
        "    mpath serve URL1 --listen unix:/tmp/nbd-1.sock                     # path 1",
        f"    {fio_example}",
        "        # URI: nbd+unix:///?socket=/tmp/nbd-2.sock; --rw/--bs per row",
        "    iscsi-perf -m 32 -b 8 -r URL1        # 4 KiB random; -b 512 (no -r): 256 KiB seq",
        "",
        "Regenerate with `.venv/bin/python -m benchmarks.nbd_fio` (root).",
        "",
        "**Unlimited paths** (the rig's veths at full speed: the CPU is the limit):",
        "",
        *table(unlimited, WORKLOADS),
        "",
        "**Each path limited to 400 mbit/s** (`mpath rig fault N rate 400mbit`, both paths):",
        "",
        *table(limited, (LIMITED,)),
        "",
        *_findings(unlimited, limited, failed, limited_failed),
    ]
    markdown = "\n".join(lines)
    print(markdown)
    if not args.no_docs:
        replace_section("nbd-fio", markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
