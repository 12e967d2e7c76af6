"""The NBD export (``mpath serve``) side by side with ``qemu-nbd``, real rig.

What it measures, as root::

    .venv/bin/python -m benchmarks.export_vs_qemu_nbd [--seconds S] [--rounds N]
                                                      [--no-docs] [--json]
                                                      [--baseline REV]

``qemu-nbd`` with qemu's libiscsi block driver is what an administrator would pick to
serve an iSCSI LUN over NBD: C, one path, no multipath. On one 2-path rig (1 GiB LUN,
tgtd) three servers are measured with fio's nbd engine (one connection, queue depth
32): qemu-nbd on path 1, ``mpath serve`` on path 1, ``mpath serve`` on both paths.
Rows: 4 KiB random read and write, 256 KiB sequential read and write; first on
unlimited paths (the CPU is the limit), then with both paths limited to 400 mbit/s
(the links are the limit).

Each run lasts ``--seconds`` after a 1 s warm-up; the servers' order alternates round
by round, the table gives the mean and the spread (lowest to highest) over the rounds,
and each server's own CPU time per I/O (``/proc/PID/stat`` utime + stime of the server
process over the run), with the stime part apart: on a veth the target side's receive
path runs in the sender's system call, so system time is partly not the server's own
work. It prints the tables (``--json``: the document below) and
writes them into docs/benchmarks.md (section ``export-vs-qemu-nbd``)::

    {"rows": [{"workload": W, "qemu_nbd": X, "mpath_1path": Y, "mpath_2path": Z,
               "unit": U, "spread": {...}, "server_cpu_us_per_io": {...},
               "server_system_us_per_io": {...}}, ...],
     "limited_rows": [...]}
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.nbd_fio import (
    LUN_SIZE,
    WORKLOADS,
    Export,
    Result,
    Served,
    Workload,
    cpu_times,
    fio_command,
    run_fio,
)
from benchmarks.report import replace_section
from mpath.rig import Rig, RigManager
from mpath.units import parse_rate

RIG_NAME = "bench-qnbd"
#: Unlimited paths also get a multi-connection row: 4 fio jobs, one connection each.
MULTI = Workload("4 KiB random read, 4 connections", "randread", 4096, "IOPS", jobs=4)
UNLIMITED = (*WORKLOADS, MULTI)
LIMIT = "400mbit"
#: The servers, in the order of the JSON keys and the table's columns.
SERVERS = ("qemu_nbd", "mpath_1path", "mpath_2path")
#: With ``--baseline REV``: ``mpath serve`` of that commit on path 1 (unlimited rows).
BASELINE = "mpath_1path_baseline"
LABELS = {
    "qemu_nbd": "qemu-nbd, path 1",
    "mpath_1path": "mpath serve, path 1",
    "mpath_2path": "mpath serve, 2 paths",
    BASELINE: "baseline mpath serve, path 1",
}


class QemuNbd:
    """``qemu-nbd -f raw iscsi://…`` on a Unix socket (persistent); always stopped."""

    def __init__(self, url: str, folder: Path) -> None:
        self.socket = folder / "qemu-nbd.sock"
        self.command = [
            "qemu-nbd", "--format=raw", f"--socket={self.socket}", "--persistent",
            "--shared=8", "--cache=none", url,
        ]  # fmt: skip
        self.log = folder / "qemu-nbd.log"
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                self.command, stdout=subprocess.DEVNULL, stderr=log, stdin=subprocess.DEVNULL
            )
        self.uri = f"nbd+unix:///?socket={self.socket}"
        self._ready(30)

    def _ready(self, timeout: float) -> None:
        """Wait until the socket accepts a connection (qemu-nbd prints no ready line)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"qemu-nbd exited {self.process.returncode}: "
                    f"{self.log.read_text(errors='replace')[-1000:]}"
                )
            if self.socket.exists():
                with socket.socket(socket.AF_UNIX) as probe:
                    try:
                        probe.connect(str(self.socket))
                        return
                    except OSError:
                        pass
            time.sleep(0.05)  # qemu-nbd offers no event to wait on but its socket
        self.stop()
        raise RuntimeError(f"qemu-nbd not listening within {timeout} s")

    def cpu_times(self) -> tuple[float, float]:
        return cpu_times(self.process.pid)

    def path_failures(self) -> int:
        return 0  # one path, no failover

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


Measure = dict[str, dict[str, list[Result]]]  # workload key -> server -> rounds


def _key(workload: Workload) -> str:
    return f"{workload.name}{workload.rw}{workload.jobs}"


def fill_lun(path: str) -> None:
    """Write data over the whole LUN from outside before anything is measured.

    The rig's LUN is a sparse, thin-provisioned file: qemu's iSCSI driver keeps an
    allocation map (GET LBA STATUS) and answers reads of unallocated blocks with zeroes
    without asking the target, which would make its reads look many times faster than
    any server that reads. Written full, every read goes to the target for everyone.
    """
    piece = os.urandom(1 << 20)
    with open(path, "r+b") as lun:
        for _ in range(LUN_SIZE // len(piece)):
            lun.write(piece)
        lun.flush()
        os.fsync(lun.fileno())


def measure(
    rig: Rig,
    workloads: tuple[Workload, ...],
    seconds: int,
    rounds: int,
    folder: Path,
    extra: tuple[str, ...] = (),
    baseline: Path | None = None,
) -> Measure:
    """Every workload through every server, the servers' order alternating by round
    (``baseline``: also that source tree's ``mpath serve`` on path 1)."""
    started: list[Export | QemuNbd] = []
    results: Measure = {_key(w): {} for w in workloads}
    try:
        servers: dict[str, Served] = {}
        qemu = QemuNbd(rig.urls[0], folder)
        started.append(qemu)
        servers["qemu_nbd"] = qemu
        one = Export(rig.urls[:1], folder, extra)
        started.append(one)
        servers["mpath_1path"] = one
        both = Export(rig.urls, folder, extra)
        started.append(both)
        servers["mpath_2path"] = both
        if baseline is not None:
            before = Export(rig.urls[:1], folder, extra, tree=baseline)
            started.append(before)
            servers[BASELINE] = before
        names = tuple(servers)
        for round_number in range(rounds):
            order = names if round_number % 2 == 0 else names[::-1]
            for workload in workloads:
                for name in order:
                    result = run_fio(servers[name], workload, seconds)
                    results[_key(workload)].setdefault(name, []).append(result)
                    print(
                        f"round {round_number + 1} {workload.name:26} {name:12} "
                        f"{result.value(workload):10.1f} {workload.metric} "
                        f"{result.server_cpu_us or 0:6.1f} µs CPU/I/O",
                        file=sys.stderr,
                    )
    finally:
        for server in started:
            server.stop()
    return results


def rows(results: Measure, workloads: tuple[Workload, ...]) -> list[dict[str, Any]]:
    """The JSON rows: mean per server, the spread and the server CPU per I/O."""
    out = []
    for workload in workloads:
        measured = results[_key(workload)]
        row: dict[str, Any] = {"workload": workload.name}
        spread: dict[str, list[float]] = {}
        cpu: dict[str, float] = {}
        system: dict[str, float] = {}
        for name in (n for n in (*SERVERS, BASELINE) if n in measured):
            values = [r.value(workload) for r in measured[name]]
            row[name] = round(statistics.fmean(values), 1)
            spread[name] = [round(min(values), 1), round(max(values), 1)]
            cpus = [r.server_cpu_us for r in measured[name] if r.server_cpu_us is not None]
            cpu[name] = round(statistics.fmean(cpus), 1)
            kernel = [r.server_system_us for r in measured[name] if r.server_system_us is not None]
            if kernel:
                system[name] = round(statistics.fmean(kernel), 1)
        row["unit"] = workload.metric
        row["spread"] = spread
        row["server_cpu_us_per_io"] = cpu
        row["server_system_us_per_io"] = system
        row["paths_failed_2path"] = sum(r.path_failures for r in measured["mpath_2path"])
        out.append(row)
    return out


def _fmt(value: float, unit: str) -> str:
    return f"{value:,.0f}" if unit == "IOPS" else f"{value:,.1f}"


def table(measured: list[dict[str, Any]]) -> list[str]:
    servers = tuple(n for n in (*SERVERS, BASELINE) if measured and n in measured[0])
    short = {"qemu_nbd": "qemu-nbd", "mpath_1path": "1 path", "mpath_2path": "2 paths"}
    short[BASELINE] = "baseline"
    lines = [
        "| workload (qd 32) | "
        + " | ".join(LABELS[n] for n in servers)
        + " | 1 path / qemu-nbd | 2 paths / 1 path | server CPU µs/I/O "
        f"({' / '.join(short[n] for n in servers)}) | of which in the kernel |",
        "| --- |" + " ---: |" * (len(servers) + 4),
    ]
    for row in measured:
        unit = row["unit"]
        cells = [
            f"{_fmt(row[n], unit)} ({_fmt(row['spread'][n][0], unit)}-"
            f"{_fmt(row['spread'][n][1], unit)})"
            for n in servers
        ]
        cpu = row["server_cpu_us_per_io"]
        kernel = row.get("server_system_us_per_io") or {}
        in_kernel = " / ".join(f"{kernel[n]:.1f}" if n in kernel else "-" for n in servers)
        lines.append(
            f"| {row['workload']} ({unit}) | {' | '.join(cells)} | "
            f"{row['mpath_1path'] / row['qemu_nbd']:.2f}x | "
            f"{row['mpath_2path'] / row['mpath_1path']:.2f}x | "
            f"{' / '.join(f'{cpu[n]:.1f}' for n in servers)} | "
            f"{in_kernel} |"
        )
    return lines


def markdown(
    unlimited: list[dict[str, Any]],
    limited: list[dict[str, Any]],
    seconds: int,
    rounds: int,
    event_loop: str,
    baseline: str | None = None,
) -> str:
    fio_example = " ".join(fio_command("URI", WORKLOADS[0], seconds)).replace(
        f"--size={LUN_SIZE}", "--size=1G"
    )
    load = os.getloadavg()[0]
    return "\n".join(
        [
            "## NBD export vs qemu-nbd (real rig)",
            "",
            "fio's nbd engine (one connection, queue depth 32) through `qemu-nbd` (qemu's",
            "libiscsi driver, path 1), through `mpath serve` on path 1 and through `mpath serve`",
            "on both paths of one 2-path tgt rig (1 GiB LUN, written full with random data",
            "from outside first, so no server can answer reads from an allocation map). Mean of",
            f"{rounds} rounds (lowest to highest in brackets), {seconds} s per run after a 1 s",
            "warm-up, the servers' order alternating by round. The CPU column is each",
            "server process's own CPU time (utime + stime from /proc/PID/stat) per I/O; the",
            "last column is its stime part, which on a veth includes the target side's",
            "receive path (it runs in the sender's system call).",
            f"Measured {time.strftime('%Y-%m-%d')} on a {os.cpu_count()}-core machine shared",
            f"with tgtd, fio and other work (load average {load:.1f} at the end).",
            "",
            "    mpath rig up --name bench-qnbd --paths 2 --size 1G",
            "    qemu-nbd --format=raw --socket=/tmp/q.sock --persistent --shared=8 \\",
            "        --cache=none URL1",
            f"    mpath serve URL1 --listen unix:/tmp/nbd-1.sock --event-loop {event_loop}",
            "    mpath serve --rig bench-qnbd --listen unix:/tmp/nbd-2.sock \\",
            f"        --event-loop {event_loop}",
            f"    {fio_example}",
            "        # URI: nbd+unix:///?socket=SOCKET; --rw/--bs per row",
            "",
            "Regenerate with `.venv/bin/python -m benchmarks.export_vs_qemu_nbd` (root;",
            f"`--json` prints the figures; this run: `--event-loop {event_loop}`).",
            "",
            "**Unlimited paths** (the CPU is the limit):",
            "",
            *(
                [
                    f"The *baseline* column is `mpath serve` of commit {baseline} on path 1,",
                    "measured in the same rounds (`--baseline " + baseline + "`).",
                    "",
                ]
                if baseline
                else []
            ),
            *table(unlimited),
            "",
            f"**Both paths limited to {LIMIT}/s** (`mpath rig fault N rate {LIMIT}`):",
            "",
            *table(limited),
        ]
    )


def _worktree(*args: str, check: bool = True) -> None:
    """``git worktree`` in this repository (the baseline's checkout)."""
    subprocess.run(
        ["git", "-C", str(Path(__file__).resolve().parents[1]), "worktree", *args],
        check=check,
        stdout=subprocess.DEVNULL,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0] if __doc__ else None,
        epilog="example: sudo .venv/bin/python -m benchmarks.export_vs_qemu_nbd --seconds 4 "
        "--rounds 2 --json",
    )
    parser.add_argument("--seconds", type=int, default=4, help="measured seconds per run")
    parser.add_argument("--rounds", type=int, default=2, help="rounds of every server")
    parser.add_argument("--no-docs", action="store_true", help="do not write docs/benchmarks.md")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument(
        "--event-loop",
        choices=("asyncio", "uvloop"),
        default="asyncio",
        help="mpath serve's event loop (its --event-loop)",
    )
    parser.add_argument(
        "--baseline",
        metavar="REV",
        help="also measure mpath serve of commit REV on path 1 (unlimited rows), "
        "from a git worktree of it, for a before/after in one run",
    )
    args = parser.parse_args(argv if argv is not None else sys.argv[1:])
    if args.seconds < 1 or args.rounds < 1:
        print("--seconds and --rounds must be at least 1", file=sys.stderr)
        return 2
    for tool, package in (("fio", "fio"), ("qemu-nbd", "qemu-utils and qemu-block-extra")):
        if shutil.which(tool) is None:
            print(f"{tool} not installed (make setup installs {package})", file=sys.stderr)
            return 1
    if os.geteuid() != 0:
        print("needs root: it builds a rig", file=sys.stderr)
        return 1
    manager = RigManager()
    manager.down(RIG_NAME)
    folder = Path(tempfile.mkdtemp(prefix="mpqnbd-", dir="/tmp"))
    try:
        baseline = None
        if args.baseline:
            baseline = folder / "baseline"
            _worktree("add", "--detach", str(baseline), args.baseline)
        rig = manager.up(name=RIG_NAME, paths=2, size=LUN_SIZE)
        fill_lun(rig.lun.backing_file)
        extra = ("--event-loop", args.event_loop)
        unlimited = rows(
            measure(rig, UNLIMITED, args.seconds, args.rounds, folder, extra, baseline),
            UNLIMITED,
        )
        for index in (1, 2):
            manager.fault(RIG_NAME, index, "rate", parse_rate(LIMIT))
        limited = rows(measure(rig, WORKLOADS, args.seconds, args.rounds, folder, extra), WORKLOADS)
    finally:
        manager.down(RIG_NAME)
        if args.baseline:
            _worktree("remove", "--force", str(folder / "baseline"), check=False)
        shutil.rmtree(folder, ignore_errors=True)
    text = markdown(unlimited, limited, args.seconds, args.rounds, args.event_loop, args.baseline)
    if args.json:
        print(json.dumps({"rows": unlimited, "limited_rows": limited}, indent=2))
    else:
        print(text)
    if not args.no_docs:
        replace_section("export-vs-qemu-nbd", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
