"""Torture: a seeded fault campaign on a real rig, with every acknowledged write checked.

    python -m benchmarks.torture --seconds S --seed N [--paths 2-4] [--json]   (root)
    make torture SECONDS=600 SEED=1

One rig (3 paths by default). ``mpath serve`` exports its LUN over NBD; three writers
run at once on disjoint regions of the LUN:

* ``mpath bench --verify --rw randrw`` (its own multipath device over the same paths),
  logging every acknowledged write (``--ack-log``);
* fio ``--verify=crc32c`` through the export (rounds of a write pass, each checked by
  fio's own verify pass);
* a libnbd client (``benchmarks/nbd_ack_client.py``) through the export: writes with
  FUA and FLUSH, read-back checks, and a log of every acknowledged request.

Meanwhile a schedule drawn from ``--seed`` (the same seed gives the same schedule; it
is printed first) applies faults of every kind the rig has, one episode after another,
sometimes with a second fault on another path at the same time: path down, drop,
hold + release, flap, rate, loss, reset, target restart, target slow, LUN resize, all
paths down for less than ``no_path_retry`` and for longer.

After the run, the LUN's backing file is read and compared with the logs
(:mod:`mpath.workload.acklog`): an acknowledged write found older, or missing, is a
**lost write**; a sector holding another sector's or run's data is a **mismatch**, as
is every verify failure fio, bench or the client saw. Errors are **expected** only
while every path is down for longer than ``no_path_retry`` (and for a few seconds
after, while requests already failing finish), and only if they are a clean EIO;
every other error is unexpected. The export must serve again after a path returns,
without being reopened (it is the same process throughout).

The export process's RSS, open descriptors, threads and iSCSI sessions are counted
after the warm-up and again at the end, when every fault is cleared and the paths are
back. ``--json`` prints one document (docs/reliability.md lists its keys).
"""

from __future__ import annotations

import argparse
import bisect
import json
import os
import random
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mpath.rig import RigManager
from mpath.rig.model import Rig
from mpath.settings import DEFAULT_NO_PATH_RETRY
from mpath.units import parse_rate
from mpath.workload import acklog

RIG_NAME = "torture"
MIB = 1024 * 1024
LUN_SIZE = 256 * MIB
RESIZE_STEP = 16 * MIB
MPATH = [sys.executable, "-m", "mpath"]
SYSTEM_PYTHON = "/usr/bin/python3"
ROOT = Path(__file__).resolve().parent.parent
#: Where each writer works (bytes): disjoint, so the checks never see each other's data.
BENCH_SPAN = 32 * MIB  # [0, 32M)
FIO_OFFSET, FIO_SIZE = 64 * MIB, 32 * MIB  # [64M, 96M)
CLIENT_OFFSET, CLIENT_CHUNKS, CLIENT_BLOCK = 128 * MIB, 8192, 4096  # [128M, 160M)
WARMUP = 8.0  # seconds of load before the first fault and the first RSS sample
COOLDOWN = 10.0  # seconds of load after the last fault is undone
#: Errors after the paths return are still expected for this long: requests that
#: began failing while every path was down (a fence that could not be made waits
#: ``fence_timeout``) finish failing shortly after.
GRACE = 5.0
EIO = 5
EILSEQ = 84  # fio's error for a verify failure

#: Episode kinds and their weights in the draw.
KINDS: dict[str, float] = {
    "down": 3,
    "drop": 2,
    "hold": 2,
    "flap": 2,
    "rate": 2,
    "loss": 2,
    "reset": 2,
    "target_restart": 1.5,
    "target_slow": 1.5,
    "lun_resize": 0.7,
    "all_down_short": 1.2,
    "all_down_long": 0.8,
}
#: Faults that may run on a second path during another episode (combinations).
MILD = ("rate", "loss")
RATES = ("20mbit", "50mbit", "100mbit", "400mbit")


@dataclass(frozen=True, slots=True)
class Step:
    """One rig action at ``at`` seconds after the start of the load."""

    at: float
    where: str  # a path number, "all", "target" or "lun"
    action: str  # down, up, drop, clear, hold, release, reset, rate, loss, restart, ...
    arg: str = ""
    kind: str = ""  # the episode this step opens (counted), "" for the steps that undo

    def __str__(self) -> str:
        tail = f" {self.arg}" if self.arg else ""
        opens = f"   <- {self.kind}" if self.kind else ""
        return f"{self.at:8.2f}s  {self.where:>6} {self.action}{tail}{opens}"


def schedule(seed: int, seconds: float, paths: int, no_path_retry: float) -> list[Step]:  # noqa: PLR0915
    """The fault schedule: a pure function of its arguments (same seed, same schedule)."""
    rng = random.Random(seed)
    names = list(KINDS)
    weights = [KINDS[k] for k in names]
    steps: list[Step] = []
    t = WARMUP
    end = seconds - COOLDOWN
    grown = 0
    while True:
        kind = rng.choices(names, weights)[0]
        if kind == "lun_resize" and grown >= 8:
            kind = "reset"
        path = rng.randint(1, paths)
        p = str(path)
        episode: list[Step] = []
        if kind in ("down", "drop"):
            d = rng.uniform(2, 6)
            episode = [
                Step(t, p, kind, kind=kind),
                Step(t + d, p, "up" if kind == "down" else "clear"),
            ]
        elif kind == "hold":
            d = rng.uniform(1, 4)
            episode = [Step(t, p, "hold", kind=kind), Step(t + d, p, "release")]
        elif kind == "flap":
            flips = rng.randint(2, 5)
            at = t
            for i in range(flips):
                episode.append(Step(at, p, "down", kind=kind if i == 0 else ""))
                at += rng.uniform(0.3, 1.0)
                episode.append(Step(at, p, "up"))
                at += rng.uniform(0.3, 1.0)
        elif kind == "rate":
            d = rng.uniform(3, 8)
            episode = [Step(t, p, "rate", rng.choice(RATES), kind=kind), Step(t + d, p, "clear")]
        elif kind == "loss":
            d = rng.uniform(3, 8)
            pct = str(rng.choice((1, 2, 5, 10, 20)))
            episode = [Step(t, p, "loss", pct, kind=kind), Step(t + d, p, "loss", "0")]
        elif kind == "reset":
            episode = [Step(t, p, "reset", kind=kind)]
        elif kind == "target_restart":
            episode = [Step(t, "target", "restart", kind=kind)]
        elif kind == "target_slow":
            d = rng.uniform(3, 8)
            episode = [Step(t, "target", "slow", kind=kind), Step(t + d, "target", "fast")]
        elif kind == "lun_resize":
            grown += 1
            size = LUN_SIZE + grown * RESIZE_STEP
            episode = [Step(t, "lun", "resize", str(size), kind=kind)]
        else:  # all paths down, for less or for more than no_path_retry
            if kind == "all_down_short":
                d = rng.uniform(1.0, max(1.5, no_path_retry / 2))
            else:
                d = no_path_retry + rng.uniform(2, 4)
            episode = [Step(t, "all", "down", kind=kind), Step(t + d, "all", "up")]
        if kind in ("down", "drop", "hold", "flap", "reset") and paths > 2 and rng.random() < 0.3:
            # A second, milder fault on another path at the same time (never the last
            # path standing: one path stays untouched).
            other = str(rng.choice([i for i in range(1, paths + 1) if i != path]))
            extra = rng.choice(MILD)
            arg = rng.choice(RATES) if extra == "rate" else str(rng.choice((2, 5, 10)))
            undo = Step(
                episode[-1].at,
                other,
                "clear" if extra == "rate" else "loss",
                "" if extra == "rate" else "0",
            )
            episode = [episode[0], Step(t, other, extra, arg, kind=extra), *episode[1:], undo]
        last = max(step.at for step in episode)
        if last > end:
            break
        steps.extend(episode)
        t = last + rng.uniform(1.0, 3.0)
    steps.sort(key=lambda s: s.at)
    return steps


def counted(steps: list[Step]) -> dict[str, int]:
    return dict(sorted(Counter(s.kind for s in steps if s.kind).items()))


# -- processes -------------------------------------------------------------------------


def process_figures(pid: int) -> dict[str, float]:
    """RSS (MB), open descriptors, threads and established iSCSI connections of ``pid``."""
    status = Path(f"/proc/{pid}/status").read_text()
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    rss_kb = int(fields["VmRSS"].split()[0])
    listed = subprocess.run(
        ["ss", "-Htnp", "state", "established", "( dport = :3260 )"],
        capture_output=True, text=True, check=False,
    ).stdout  # fmt: skip
    return {
        "rss_mb": round(rss_kb / 1024, 1),
        "fds": len(os.listdir(f"/proc/{pid}/fd")),
        "threads": int(fields["Threads"]),
        "iscsi_sessions": sum(f"pid={pid}," in line for line in listed.splitlines()),
    }


class Serve:
    """``mpath serve`` on a Unix socket; its log goes to a file."""

    def __init__(self, rig: Rig, folder: Path, no_path_retry: float) -> None:
        self.socket = folder / "nbd.sock"
        self.log = folder / "serve.log"
        command = [
            *MPATH, "serve", "--rig", rig.name, "--listen", f"unix:{self.socket}", "--json",
            "--no-path-retry", f"{no_path_retry:g}",
        ]  # fmt: skip
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=log)
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
                self.kill()
                raise RuntimeError(f"mpath serve not ready within {timeout} s")
            chunk = os.read(fd, 65536)
            if not chunk:
                raise RuntimeError(f"mpath serve exited: {self.process.wait()}")
            text += chunk

    @property
    def pid(self) -> int:
        return self.process.pid

    def failures(self) -> int:
        return self.log.read_text(errors="replace").count(" failed: ")

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.process.returncode

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


@dataclass
class FioRounds:
    """fio through the export, round after round until the deadline: each round writes
    the region in a new random order (new seed) and verifies it (crc32c)."""

    uri: str
    folder: Path
    deadline: float
    rounds: int = 0
    ios: int = 0
    max_latency: float = 0.0
    errors: list[tuple[float, str]] = field(default_factory=list)  # (monotonic T, what)
    verify_failures: int = 0
    thread: threading.Thread | None = None

    def start(self) -> None:
        self.thread = threading.Thread(target=self._loop, name="fio", daemon=True)
        self.thread.start()

    def join(self) -> None:
        if self.thread is not None:
            self.thread.join()

    def _loop(self) -> None:
        while time.monotonic() < self.deadline - 2:
            self.rounds += 1
            command = [
                "fio", "--name=torture", "--ioengine=nbd", f"--uri={self.uri}",
                "--rw=randwrite", "--bs=4k", f"--offset={FIO_OFFSET}", f"--size={FIO_SIZE}",
                "--iodepth=8", "--verify=crc32c", "--do_verify=1", "--verify_fatal=1",
                "--verify_state_save=0", f"--randseed={self.rounds}", "--output-format=json",
            ]  # fmt: skip
            done = subprocess.run(
                command, capture_output=True, text=True, check=False, cwd=self.folder
            )
            at = time.monotonic()
            job: dict[str, Any] = {}
            if "{" in done.stdout:
                try:
                    job = json.loads(done.stdout[done.stdout.index("{") :])["jobs"][0]
                except (ValueError, KeyError, IndexError):
                    job = {}
            for side in ("write", "read"):
                part = job.get(side, {})
                self.ios += int(part.get("total_ios", 0))
                clat = part.get("clat_ns", {})
                self.max_latency = max(self.max_latency, float(clat.get("max", 0)) / 1e9)
            error = int(job.get("error", 0)) if job else (done.returncode or 0)
            text = done.stderr
            if error == EILSEQ or "verify failed" in text or "bad magic" in text:
                self.verify_failures += 1
                self.errors.append((at, f"fio verify failure: {text.strip()[-300:]}"))
            elif error or done.returncode:
                self.errors.append((at, f"fio errno {error}: {text.strip()[-300:]}"))


# -- the run -------------------------------------------------------------------------


@dataclass
class Window:
    """Every path down: from ``begin`` to ``end`` (monotonic), longer than no_path_retry
    or not."""

    begin: float
    end: float = float("inf")
    long: bool = False

    def covers(self, at: float) -> bool:
        return self.long and self.begin <= at <= self.end + GRACE


class Campaign:
    def __init__(self, manager: RigManager, rig: Rig, steps: list[Step]) -> None:
        self.manager = manager
        self.rig = rig
        self.steps = steps
        self.windows: list[Window] = []
        self.applied: list[tuple[float, Step, str]] = []  # (monotonic T, step, problem)
        self.problems: list[str] = []

    def apply(self, step: Step) -> None:
        manager, name = self.manager, self.rig.name
        problem = ""
        try:
            if step.where == "target":
                manager.target_fault(name, step.action)
            elif step.where == "lun":
                self._resize(int(step.arg))
            else:
                indexes = (
                    [p.index for p in self.rig.paths] if step.where == "all" else [int(step.where)]
                )
                for index in indexes:
                    self._path(index, step)
        except Exception as exc:  # record it; the campaign goes on
            problem = f"{exc}"
            self.problems.append(f"{step}: {exc}")
        now = time.monotonic()
        if step.where == "all" and step.action == "down":
            self.windows.append(Window(now, long=step.kind == "all_down_long"))
        elif step.where == "all" and step.action == "up" and self.windows:
            self.windows[-1].end = now
        self.applied.append((now, step, problem))

    def _path(self, index: int, step: Step) -> None:
        if step.action == "rate":
            self.manager.fault(self.rig.name, index, "rate", parse_rate(step.arg))
        elif step.action == "loss":
            self.manager.fault(self.rig.name, index, "loss", loss_pct=int(step.arg))
        else:
            self.manager.fault(self.rig.name, index, step.action)

    def _resize(self, size: int) -> None:
        """tgt refuses to re-add a LUN while a command runs on it: try a few times."""
        for attempt in range(20):
            try:
                self.manager.resize_lun(self.rig.name, size)
                return
            except Exception:
                if attempt == 19:
                    raise
                time.sleep(0.05)  # retry pacing: tgtadm says busy, no event to wait on

    def run(self, started: float, stop: threading.Event, on_step: Callable[[Step], None]) -> None:
        for step in self.steps:
            delay = started + step.at - time.monotonic()
            if delay > 0 and stop.wait(delay):
                return
            self.apply(step)
            on_step(step)

    def clear_all(self) -> None:
        for path in self.rig.paths:
            try:
                self.manager.fault(self.rig.name, path.index, "clear")
            except Exception as exc:
                self.problems.append(f"clear path {path.index}: {exc}")
        try:
            self.manager.target_fault(self.rig.name, "fast")
        except Exception as exc:
            self.problems.append(f"target fast: {exc}")

    def expected(self, at: float) -> bool:
        return any(w.covers(at) for w in self.windows)


def _wait_sessions(pid: int, want: int, timeout: float) -> int:
    """Wait until the export has ``want`` iSCSI connections (paths reinstated)."""
    deadline = time.monotonic() + timeout
    while True:
        count = int(process_figures(pid)["iscsi_sessions"])
        if count >= want or time.monotonic() > deadline:
            return count
        time.sleep(0.5)  # polling another process's sockets: no event to await


def run(args: argparse.Namespace, folder: Path) -> dict[str, Any]:  # noqa: PLR0915
    steps = schedule(args.seed, args.seconds, args.paths, args.no_path_retry)
    say = (lambda text: print(text, file=sys.stderr)) if args.json else print
    say(f"torture: seed {args.seed}, {args.seconds:g} s, {args.paths} paths, "
        f"no_path_retry {args.no_path_retry:g} s; schedule ({len(counted(steps))} kinds, "
        f"{sum(counted(steps).values())} faults):")  # fmt: skip
    for step in steps:
        say(f"  {step}")
    manager = RigManager()
    manager.down(RIG_NAME)
    rig = manager.up(name=RIG_NAME, paths=args.paths, size=LUN_SIZE)
    serve: Serve | None = None
    others: list[subprocess.Popen[bytes]] = []
    campaign = Campaign(manager, rig, steps)
    stop = threading.Event()
    try:
        serve = Serve(rig, folder, args.no_path_retry)
        time.sleep(2)  # let the device settle (its monitor's first round) before counting
        idle_start = process_figures(serve.pid)
        started = time.monotonic()
        deadline = started + args.seconds
        bench_log, client_log = folder / "bench-acks.log", folder / "client-acks.log"
        bench = subprocess.Popen(
            [
                *MPATH, "bench", "--rig", rig.name, "--seconds", f"{args.seconds:g}",
                "--rw", "randrw", "--bs", "4K", "--qd", "8", "--span", f"{BENCH_SPAN // MIB}M",
                "--verify", "--seed", str(args.seed), "--ack-log", str(bench_log),
                "--no-path-retry", f"{args.no_path_retry:g}", "--no-progress", "--json",
            ],
            stdout=subprocess.PIPE, stderr=(folder / "bench.err").open("wb"),
        )  # fmt: skip
        others.append(bench)
        client = subprocess.Popen(
            [
                SYSTEM_PYTHON, "-m", "benchmarks.nbd_ack_client", serve.uri,
                "--log", str(client_log), "--offset", str(CLIENT_OFFSET),
                "--chunks", str(CLIENT_CHUNKS), "--block", str(CLIENT_BLOCK),
                "--seed", str(args.seed),
            ],
            cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
            stderr=(folder / "client.err").open("wb"),
        )  # fmt: skip
        others.append(client)
        fio = FioRounds(serve.uri, folder, deadline - COOLDOWN / 2)
        fio.start()
        stop.wait(WARMUP)
        loaded_start = process_figures(serve.pid)
        say(f"torture: load running; export {loaded_start}")

        def progress(step: Step) -> None:
            if not args.json:
                print(f"  [{time.monotonic() - started:6.1f}s] {step.where} {step.action} "
                      f"{step.arg}".rstrip(), flush=True)  # fmt: skip

        campaign.run(started, stop, progress)
        campaign.clear_all()
        wait = deadline - COOLDOWN / 2 - time.monotonic()
        if wait > 0:
            time.sleep(wait)  # the load runs on with every path back: the cool-down
        loaded_end = process_figures(serve.pid)
        fio.join()
        client.send_signal(signal.SIGTERM)
        client.wait(timeout=60)
        out, _ = bench.communicate(timeout=args.seconds + 300)
        try:
            bench_doc: dict[str, Any] = json.loads(out)
        except ValueError:
            bench_doc = {"errors": 0, "verify_mismatches": 0, "ios": 0, "latency_ms": {}}
            campaign.problems.append(f"bench printed no JSON (exit {bench.returncode})")
        sessions = _wait_sessions(serve.pid, args.paths, 60)
        time.sleep(2)  # the clients' sockets close on the export's side too
        idle_end = process_figures(serve.pid)
        path_failures = serve.failures()
        serve_exit = serve.stop()
    finally:
        stop.set()
        for process in others:
            if process.poll() is None:
                process.kill()
                process.wait()
        if serve is not None:
            serve.kill()
        backing = Path(rig.lun.backing_file)
        saved = folder / "lun.img"
        if backing.exists():
            shutil.copyfile(backing, saved)  # check after the rig is gone, from a copy
        manager.down(RIG_NAME)

    # -- judge -------------------------------------------------------------------------
    check = acklog.CheckResult()
    bench_record = acklog.load(bench_log, "bench")
    client_record = acklog.load(client_log, "nbd")
    for record in (bench_record, client_record):
        check.add(acklog.check_backing(record, saved))
    errors: list[tuple[float, str, bool]] = []  # (T, what, clean EIO)
    for at, what in bench_record.errors:
        errors.append((at, f"bench {what}", what in ("NoPathError", "FenceTimeoutError")))
    for at, what in client_record.errors:
        errors.append((at, f"nbd client {what}", what.endswith(f"errno {EIO}")))
    for at, what in fio.errors:
        errors.append((at, what, what.startswith(f"fio errno {EIO}:")))
    expected = [e for e in errors if e[2] and campaign.expected(e[0])]
    unexpected = [e for e in errors if not (e[2] and campaign.expected(e[0]))]
    bench_errors_unlogged = max(0, int(bench_doc.get("errors", 0)) - len(bench_record.errors))
    mismatches = (
        check.mismatches
        + int(bench_doc.get("verify_mismatches", 0))
        + client_record.mismatches
        + fio.verify_failures
    )
    latency = bench_doc.get("latency_ms", {})
    max_stall = max(
        float(latency.get("max", 0.0)) / 1000, client_record.max_latency, fio.max_latency
    )
    bench_ios = round(float(bench_doc.get("iops", 0)) * float(bench_doc.get("seconds", 0)))
    ios = bench_ios + client_record.acknowledged + fio.ios
    faults = counted([step for _, step, problem in campaign.applied if not problem])
    # The export serves again after every long outage, without being reopened (it is
    # one process throughout): seconds from a path's return to the client's next ack.
    resumed = [_resumed_after(client_record.ack_times, w.end) for w in campaign.windows]
    document: dict[str, Any] = {
        "seconds": args.seconds,
        "seed": args.seed,
        "faults": faults,
        "ios": ios,
        "errors_expected": len(expected),
        "errors_unexpected": len(unexpected) + bench_errors_unlogged,
        "mismatches": mismatches,
        "lost_writes": check.lost_writes,
        "max_stall_ms": round(max_stall * 1000, 1),
        "rss_start_mb": loaded_start["rss_mb"],
        "rss_end_mb": loaded_end["rss_mb"],
        "fds_start": idle_start["fds"],
        "fds_end": idle_end["fds"],
        "tasks_start": idle_start["threads"],
        "tasks_end": idle_end["threads"],
        "sessions_start": idle_start["iscsi_sessions"],
        "sessions_end": idle_end["iscsi_sessions"],
    }
    details = {
        "paths": args.paths,
        "no_path_retry": args.no_path_retry,
        "chunks_checked": check.chunks_checked,
        "acknowledged": {
            "bench": bench_ios,
            "bench_writes_logged": bench_record.acknowledged,
            "nbd_client": client_record.acknowledged,
            "fio": fio.ios,
        },
        "fio_rounds": fio.rounds,
        "path_failures": path_failures,
        "serve_exit": serve_exit,
        "sessions_after_wait": sessions,
        "windows_all_down": [
            {"seconds": round(w.end - w.begin, 2), "long": w.long, "served_again_after_s": r}
            for w, r in zip(campaign.windows, resumed, strict=True)
        ],
        "not_served_again": sum(r is None for r in resumed),
        "fault_problems": campaign.problems[:20],
        "unexpected": [f"{at - started:.1f}s {what}" for at, what, _ in unexpected[:20]],
        "expected": [f"{at - started:.1f}s {what}" for at, what, _ in expected[:20]],
        "check_examples": check.examples,
        "bench_first_error": bench_doc.get("first_error"),
        "mismatch_examples": bench_doc.get("mismatch_examples", [])[:5],
    }
    return {"document": document, "details": details}


def _resumed_after(ack_times: list[float], end: float) -> float | None:
    """Seconds from ``end`` to the first acknowledgement after it (None: there was none)."""
    index = bisect.bisect_right(ack_times, end)
    return round(ack_times[index] - end, 3) if index < len(ack_times) else None


def _summary(result: dict[str, Any]) -> str:
    doc, details = result["document"], result["details"]
    faults = ", ".join(f"{k} {v}" for k, v in doc["faults"].items())
    lines = [
        f"torture seed {doc['seed']}, {doc['seconds']:g} s, {details['paths']} paths: "
        f"{sum(doc['faults'].values())} faults of {len(doc['faults'])} kinds ({faults})",
        f"  {doc['ios']} I/Os acknowledged ({details['acknowledged']}), "
        f"{details['chunks_checked']} chunks checked in the backing file",
        f"  errors expected {doc['errors_expected']}, unexpected {doc['errors_unexpected']}; "
        f"mismatches {doc['mismatches']}; lost writes {doc['lost_writes']}",
        f"  longest stall {doc['max_stall_ms']} ms; paths failed {details['path_failures']}; "
        f"all-paths-down windows {details['windows_all_down']}",
        f"  export RSS {doc['rss_start_mb']} -> {doc['rss_end_mb']} MB; fds "
        f"{doc['fds_start']} -> {doc['fds_end']}; threads {doc['tasks_start']} -> "
        f"{doc['tasks_end']}; iSCSI sessions {doc['sessions_start']} -> {doc['sessions_end']}",
    ]
    for what in details["unexpected"]:
        lines.append(f"  unexpected: {what}")
    for what in details["check_examples"]:
        lines.append(f"  check: {what}")
    for what in details["fault_problems"]:
        lines.append(f"  fault not applied: {what}")
    return "\n".join(lines)


def passed(doc: dict[str, Any], details: dict[str, Any]) -> bool:
    return not (
        doc["errors_unexpected"]
        or doc["mismatches"]
        or doc["lost_writes"]
        or details["not_served_again"]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.torture",
        description="A seeded fault campaign on a real rig; every acknowledged write is "
        "checked in the backing file afterwards (root).",
        epilog="examples:\n  python -m benchmarks.torture --seconds 300 --seed 1 --json\n"
        "  python -m benchmarks.torture --seconds 60 --seed 7 --print-schedule",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--seconds", type=float, default=300.0, help="length of the run")
    parser.add_argument("--seed", type=int, default=1, help="seed of the fault schedule")
    parser.add_argument("--paths", type=int, default=3, choices=(2, 3, 4))
    parser.add_argument(
        "--no-path-retry", type=float, default=DEFAULT_NO_PATH_RETRY, help="the export's"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.add_argument(
        "--print-schedule", action="store_true", help="print the schedule and exit (no root)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the run's folder (logs)")
    args = parser.parse_args(argv)
    if args.seconds < WARMUP + COOLDOWN + 10:
        parser.error(f"--seconds must be at least {WARMUP + COOLDOWN + 10:g}")
    if args.print_schedule:
        steps = schedule(args.seed, args.seconds, args.paths, args.no_path_retry)
        for step in steps:
            print(step)
        print(f"faults: {counted(steps)}")
        return 0
    if os.geteuid() != 0:
        print("benchmarks.torture needs root: it builds a rig", file=sys.stderr)
        return 1
    for tool in ("fio", "ss"):
        if shutil.which(tool) is None:
            print(f"{tool} not installed (make setup)", file=sys.stderr)
            return 1
    if not Path(SYSTEM_PYTHON).exists():
        print(f"{SYSTEM_PYTHON} (with python3-libnbd) not found (make setup)", file=sys.stderr)
        return 1
    folder = Path(tempfile.mkdtemp(prefix="mpath-torture-", dir="/var/tmp"))
    try:
        result = run(args, folder)
    finally:
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)
        else:
            print(f"torture: logs kept in {folder}", file=sys.stderr)
    if args.json:
        print(json.dumps(result["document"]))
        print(json.dumps(result["details"]), file=sys.stderr)
    else:
        print(_summary(result))
    return 0 if passed(result["document"], result["details"]) else 1


if __name__ == "__main__":
    sys.exit(main())
