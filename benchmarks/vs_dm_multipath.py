"""mpath head to head with open-iscsi + dm-multipath + multipathd, in the lab VM.

As root (it boots the lab VM once and runs everything inside it)::

    .venv/bin/python -m benchmarks.vs_dm_multipath [--json] [--seconds S] [--quick]
    flock /tmp/mpath-rig.lock .venv/bin/python -m benchmarks.vs_dm_multipath --json

Both stacks run in one boot of the lab (Debian's kernel under qemu), against one LIO
rig whose two paths are shaped by tc to different speeds, with the same fio jobs:

* **Balance.** fio reads each path's /dev/sdX alone (what the links carry, and proof
  that the emulated CPU keeps up with them), then the dm-multipath map under
  ``service-time 0``, ``round-robin 0``, ``queue-length 0`` and
  ``historical-service-time 0`` (one ``multipath.conf`` each, all paths in one group,
  as an administrator writes it) and under the fragment ``mpath dm-config`` writes;
  then ``mpath serve`` on kernel NBD (/dev/nbd0) under ``share``, ``quota`` (weights:
  the priorities dm-config measured) and ``service-time``. 256 KiB sequential reads
  and 4 KiB random reads: MB/s, the share of the sum of the paths alone, p99.
* **Failover stall.** Random 4 KiB writes while path 1 is cut (``down``, ``drop``) or
  held (``hold``), the cut lasting to the end of the run: fio's longest completion
  latency, and the errors fio saw. open-iscsi and multipathd carry the vendors'
  tuned timeouts (:data:`ISCSI_TUNING`, :data:`MULTIPATH_DEFAULTS`); mpath its
  defaults.
* **Stale writes.** The ``hold`` run: after fio has closed the device, the first MiB
  of the LUN's backing file is fingerprinted per 4 KiB chunk, path 1 released, and
  once the target has read what arrived the chunks that changed are counted: each is
  an acknowledged write overwritten by an older one.

It writes the ``vs-dm-multipath`` section of docs/benchmarks.md and with ``--json``
prints ``{"balance": {"alone_mb_s", "dm", "mpath"}, "stall_ms": {"dm", "mpath"},
"stale_chunks": {"dm", "mpath"}, "details": {...}}``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from benchmarks.fencing_stall import SPAN, stale_after_release
from benchmarks.nbd_fio import Export
from benchmarks.report import replace_section
from mpath.lab import LabUnavailableError, in_guest, lab_config, run_in_lab
from mpath.lab.stack import (
    Sessions,
    active_paths,
    iscsi_sessions,
    multipathd,
    nbd_attach,
    nbd_detach,
    reconfigure,
    sh,
    wait_for_map,
)
from mpath.rig import Rig, RigManager
from mpath.units import Rate, parse_rate

ROOT = Path(__file__).resolve().parent.parent
RIG_NAME = "vsdm"
LUN_SIZE = 64 * 1024 * 1024
#: Per-path link rates, per workload: what the emulated CPU carries (each path alone
#: is measured in every run to show it). 4 KiB I/Os cost the same CPU per I/O whatever
#: their size, so their links are a quarter as fast, with the same 1:3 ratio.
SEQ_RATES = ("16mbit", "48mbit")
RAND_RATES = ("4mbit", "12mbit")
PORT = 10809


@dataclass(frozen=True)
class Workload:
    """One balance workload: fio's --rw, block size, queue depth and the links' rates."""

    label: str
    rw: str
    bs: int
    qd: int
    rates: tuple[str, ...]


WORKLOADS = (
    Workload("seq256k", "read", 256 * 1024, 8, SEQ_RATES),
    Workload("rand4k", "randread", 4096, 8, RAND_RATES),
)
#: quota's LUN cap: fio's queue depth (both workloads run at 8).
QUOTA_MAX_COMMANDS = 8
DM_POLICIES = ("service-time", "round-robin", "queue-length", "historical-service-time")
MPATH_POLICIES = ("share", "quota", "service-time")
FAULTS = ("down", "drop", "hold")
RESTORE = {"down": "up", "drop": "clear", "hold": "release"}
#: open-iscsi as the vendors tune it for dm-multipath (Dell EMC SC Series RHEL 7
#: best practices; Red Hat's storage guide gives the same NOP-Out values):
ISCSI_TUNING = {
    "node.conn[0].timeo.noop_out_interval": "5",
    "node.conn[0].timeo.noop_out_timeout": "5",
    "node.session.timeo.replacement_timeout": "5",
}
#: multipath.conf defaults: fast_io_fail_tmo 5 (NetApp's and others' recommendation;
#: multipathd writes it into the iSCSI session's recovery timeout), queueing bounded to
#: 6 checker intervals when every path is gone, no user-friendly names.
MULTIPATH_DEFAULTS = (
    "defaults {\n"
    "\tuser_friendly_names no\n"
    "\tfind_multipaths no\n"
    "\tpolling_interval 5\n"
    "\tfast_io_fail_tmo 5\n"
    "\tno_path_retry 6\n"
    "}\n"
)
#: The stall/stale workload: 4 KiB random writes over the first MiB (the span the stale
#: count reads), queue depth 8.
STALL_SPAN = SPAN
STALL_QD = 8
#: The links of the third stale-write run: fast enough that the shaper queues nothing
#: when the hold replaces it, to tell what a shaped link's queue does from what the
#: stacks do.
FAST_RATES = ("1gbit", "1gbit")
#: When the cut comes in a stall run (seconds after fio starts).
CUT_AT = 3.0


@dataclass(frozen=True)
class Options:
    seconds: int = 8
    ramp: int = 2
    stall_seconds: int = 24
    quick: bool = False


@dataclass(frozen=True)
class Fio:
    """One fio run: throughput, latencies and errors."""

    mb_s: float
    p99_ms: float
    max_ms: float
    errors: int
    ios: int


def fio_argv(device: str, rw: str, bs: int, qd: int, seconds: int, ramp: int) -> list[str]:
    """The fio job both stacks run (libaio, O_DIRECT, time based)."""
    argv = [
        "fio", "--name=vsdm", f"--filename={device}", "--ioengine=libaio", "--direct=1",
        f"--rw={rw}", f"--bs={bs}", f"--iodepth={qd}", "--time_based",
        f"--runtime={seconds}", "--output-format=json", "--percentile_list=99",
        "--continue_on_error=io",
    ]  # fmt: skip
    if ramp:
        argv.append(f"--ramp_time={ramp}")
    if rw.endswith("write"):
        argv += [f"--size={STALL_SPAN}", "--refill_buffers=1"]
    return argv


def run_fio(argv: list[str]) -> Fio:
    writes = any(a.startswith("--rw=") and "write" in a for a in argv)
    done = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    start = done.stdout.find("{")
    if start < 0:
        raise RuntimeError(f"fio printed no JSON ({done.returncode}): {done.stderr[-2000:]}")
    job = json.loads(done.stdout[start:])["jobs"][0]
    side = job["write"] if writes else job["read"]
    clat = side["clat_ns"]
    p99 = float(clat.get("percentile", {}).get("99.000000", 0)) / 1e6
    errors = int(job.get("total_err", 0)) + (1 if job["error"] and not job.get("total_err") else 0)
    return Fio(
        mb_s=side["bw_bytes"] / 1e6,
        p99_ms=p99,
        max_ms=float(clat["max"]) / 1e6,
        errors=errors,
        ios=int(side["total_ios"]),
    )


_T0 = time.monotonic()


def log(text: str) -> None:
    """Progress on stderr, with the seconds since the module was loaded."""
    print(f"vs_dm_multipath: [{time.monotonic() - _T0:4.0f} s] {text}", file=sys.stderr, flush=True)


# -- balance ------------------------------------------------------------------------------


def set_rates(rig: Rig, rates: tuple[str, ...]) -> None:
    manager = RigManager()
    for index, rate in enumerate(rates, 1):
        manager.fault(rig.name, index, "rate", parse_rate(rate))


def balance_runs(rig: Rig, device: str, opts: Options) -> dict[str, dict[str, float]]:
    """Both balance workloads on ``device``, each at its links' rates:
    {label: {mb_s, p99_ms, errors}}. The rig is left at the sequential rates."""
    out = {}
    for load in WORKLOADS[:1] if opts.quick else WORKLOADS:
        set_rates(rig, load.rates)
        result = run_fio(fio_argv(device, load.rw, load.bs, load.qd, opts.seconds, opts.ramp))
        out[load.label] = {"mb_s": round(result.mb_s, 2), "p99_ms": round(result.p99_ms, 1),
                           "errors": result.errors}  # fmt: skip
        log(f"{device} {load.label}: {result.mb_s:.2f} MB/s p99 {result.p99_ms:.1f} ms")
    set_rates(rig, SEQ_RATES)
    return out


def dm_conf(wwid: str, selector: str) -> str:
    """multipath.conf for one selector: the tuned defaults, all paths in one group."""
    return MULTIPATH_DEFAULTS + (
        "multipaths {\n\tmultipath {\n"
        f'\t\twwid "{wwid}"\n'
        '\t\tpath_grouping_policy "multibus"\n'
        f'\t\tpath_selector "{selector} 0"\n'
        "\t}\n}\n"
    )


def selector_missing(policy: str) -> str:
    """Why the running kernel cannot load dm-multipath's ``policy`` selector ("": it can).

    Debian's kernel, for one, is built without ``historical-service-time``
    (``# CONFIG_DM_MULTIPATH_HST is not set``).
    """
    if sh("modprobe", f"dm-{policy}", check=False).returncode == 0:
        return ""
    release = os.uname().release
    return f"not in this kernel ({release}: modprobe dm-{policy} fails)"


def dm_config_fragment(sessions: Sessions, seconds: int) -> tuple[str, list[int]]:
    """``mpath dm-config`` over the two disks: the fragment and its priorities in path
    order (quota's weights on the mpath side)."""
    names = [os.path.basename(d) for d in sessions.disks]
    done = sh(sys.executable, "-m", "mpath", "dm-config", *sessions.disks,
              "--seconds", str(seconds), timeout=300)  # fmt: skip
    (args,) = re.findall(r'prio_args "devname (.*)"', done.stdout)
    words = args.split()
    prio = {words[i].strip("^$"): int(words[i + 1]) for i in range(0, len(words), 2)}
    return done.stdout, [prio[name] for name in names]


# -- stall and stale writes -----------------------------------------------------------------


def _at(delay: float, action: Callable[[], None]) -> threading.Thread:
    def run() -> None:
        time.sleep(delay)  # the fault's scheduled moment in the run
        action()

    thread = threading.Thread(target=run, name="fault", daemon=True)
    thread.start()
    return thread


def stall_run(
    rig: Rig,
    device: str,
    fault: str,
    opts: Options,
    at: float | None = CUT_AT,
    rates: tuple[str, ...] = (),
) -> dict[str, Any]:
    """Random writes on ``device`` with path 1 cut ``at`` s in, for the rest of the run.

    For the stall the cut comes while writes run, so each stack has I/O in flight on
    the path it must give up. ``at=None`` cuts just before fio starts, with the sessions
    idle (the fencing benchmark's hold: whole write commands wait in the network, not
    parts of them; a stack whose path checker fails the idle path first sends none
    there). After a ``hold``, once fio has closed the device, the LUN's first MiB is
    fingerprinted, path 1 released, and the chunks that changed once the target has
    read what arrived are counted. ``rates`` replaces the links' rates for the run.
    """
    manager = RigManager()
    for index in (1, 2):
        manager.fault(rig.name, index, "clear")
    if rates:
        set_rates(rig, rates)
    argv = fio_argv(device, "randwrite", 4096, STALL_QD, opts.stall_seconds, 0)

    def cut() -> None:
        manager.fault(rig.name, 1, fault)

    if at is None:
        cut()
        result = run_fio(argv)
    else:
        thread = _at(at, cut)
        result = run_fio(argv)
        thread.join()
    doc: dict[str, Any] = {"max_ms": round(result.max_ms), "errors": result.errors,
                           "ios": result.ios}  # fmt: skip
    if fault == "hold":
        doc["stale_chunks"] = stale_after_release(rig, 1)
    manager.fault(rig.name, 1, RESTORE[fault])
    manager.fault(rig.name, 1, "clear")
    log(f"{device} {fault}{' before the first write' if at is None else ''}: {doc}")
    return doc


def _poll(what: str, done: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            log(f"{what}: not within {timeout:g} s")
            return False
        time.sleep(0.5)  # path recovery gives no event to await from outside
    return True


def faults(opts: Options) -> tuple[str, ...]:
    """The cuts a run makes: all, or (quick) only the hold, which also counts stale writes."""
    return FAULTS[-1:] if opts.quick else FAULTS


# -- the two stacks ---------------------------------------------------------------------------


def measure_dm(rig: Rig, opts: Options) -> dict[str, Any]:
    """open-iscsi + dm-multipath + multipathd: alone, policies, dm-config, stalls."""
    out: dict[str, Any] = {"alone": [], "policies": {}, "stall": {}}
    with iscsi_sessions(rig, ISCSI_TUNING) as sessions:
        for disk in sessions.disks:
            out["alone"].append(balance_runs(rig, disk, opts))
        fragment, weights = ("", [1, 1]) if opts.quick else dm_config_fragment(sessions, 4)
        out["weights"] = weights
        out["fragment"] = fragment
        wwid = rig.lun.wwid
        node = f"/dev/mapper/{wwid}"
        policies = DM_POLICIES[:1] if opts.quick else DM_POLICIES
        out["unavailable"] = {p: why for p in policies if (why := selector_missing(p))}
        with multipathd(dm_conf(wwid, policies[0])):
            for policy in policies:
                if policy in out["unavailable"]:
                    log(f"dm {policy}: {out['unavailable'][policy]}")
                    out["policies"][policy] = None
                    continue
                reconfigure(dm_conf(wwid, policy))
                table = wait_for_map(wwid, policy, 2)
                log(f"dm table: {table}")
                out["policies"][policy] = balance_runs(rig, node, opts)
            if not opts.quick:
                reconfigure(MULTIPATH_DEFAULTS + fragment)
                wait_for_map(wwid, "service-time", 2)
                out["policies"]["dm-config"] = balance_runs(rig, node, opts)
            reconfigure(dm_conf(wwid, "service-time"))
            wait_for_map(wwid, "service-time", 2)
            for fault in faults(opts):
                out["stall"][fault] = stall_run(rig, node, fault, opts)
                _poll("dm: both paths back", lambda: active_paths(wwid) >= 2, 90)
            if not opts.quick:
                out["stale"] = stall_run(rig, node, "hold", opts, at=None)
                _poll("dm: both paths back", lambda: active_paths(wwid) >= 2, 90)
                out["stale_fast"] = stall_run(rig, node, "hold", opts, rates=FAST_RATES)
                _poll("dm: both paths back", lambda: active_paths(wwid) >= 2, 90)
    return out


#: The reservation key an administrator gives mpath (one per host) where this build has
#: persistent-reservation fencing: on LIO each path is its own target portal group, so
#: a held path can only be fenced by a reservation, not by session reinstatement.
RESERVATION_KEY = "0x6d70617468000000"

#: Whether mpath is given :data:`RESERVATION_KEY`. Not in the published run: the fence
#: did not work on LIO then (it passes tests/lab/test_hold_lio.py since 2026-12-03;
#: turning this on needs the benchmark run again). With its defaults a
#: path alone in its portal group cannot be fenced, and its writes are reissued at once
#: (``unfenceable_writes = reissue``), as dm-multipath's are.
USE_RESERVATION = False


def mpath_config(folder: Path) -> str:
    """/etc/mpath.toml as an administrator writes it for this LUN: empty (mpath's
    defaults), plus ``reservation_key`` where the build knows that setting."""
    from mpath.config.schema import SETTINGS

    text = ""
    if USE_RESERVATION and "reservation_key" in SETTINGS:
        text = f'[defaults]\nreservation_key = "{RESERVATION_KEY}"\n'
    (folder / "mpath.toml").write_text(text)
    return text


@contextlib.contextmanager
def served(
    rig: Rig, folder: Path, policy: str, weights: list[int], urls: list[str] | None = None
) -> Iterator[Export]:
    """``mpath serve`` over the rig's paths (or ``urls``) under ``policy``, attached as
    /dev/nbd0."""
    extra = ["--policy", policy, "-v", "--config", str(folder / "mpath.toml")]
    if policy == "quota":
        # quota splits the LUN's command cap into per-path budgets by weight; with the
        # target's window (far above fio's depth) the heavier path would take every
        # command and the other would wait its turn in the round. An administrator
        # sets the cap to the host's queue depth, so both paths carry I/O at once.
        extra += ["--max-commands", str(QUOTA_MAX_COMMANDS)]
        for weight in weights:
            extra += ["--path-args", str(weight)]
    urls = urls or list(rig.urls)
    export = Export(urls, folder, tuple(extra), listen=f"tcp:127.0.0.1:{PORT}")
    try:
        nbd_attach(PORT, urlparse(export.uri).path.lstrip("/"))
        try:
            yield export
        finally:
            nbd_detach()
    finally:
        export.stop()


def reinstatements(export: Export) -> int:
    """Paths the export's device has reinstated so far (its log says each, with -v)."""
    return export.log.read_text(errors="replace").count(" reinstated")


def _more(export: Export, than: int) -> bool:
    return reinstatements(export) > than


def measure_mpath(rig: Rig, weights: list[int], opts: Options, folder: Path) -> dict[str, Any]:
    out: dict[str, Any] = {"alone": [], "policies": {}, "stall": {}}
    out["config"] = mpath_config(folder)
    if not opts.quick:  # the CPU's ceiling for mpath: each path alone through the export
        for url in rig.urls:
            with served(rig, folder, "share", weights, [url]):
                out["alone"].append(balance_runs(rig, "/dev/nbd0", opts))
    policies = MPATH_POLICIES[:1] if opts.quick else MPATH_POLICIES
    for policy in policies:
        with served(rig, folder, policy, weights):
            out["policies"][policy] = balance_runs(rig, "/dev/nbd0", opts)
    with served(rig, folder, "share", weights) as export:
        for fault in faults(opts):
            reinstated = reinstatements(export)
            out["stall"][fault] = stall_run(rig, "/dev/nbd0", fault, opts)
            _poll("mpath: path 1 back", partial(_more, export, reinstated), 60)
        if not opts.quick:
            reinstated = reinstatements(export)
            out["stale"] = stall_run(rig, "/dev/nbd0", "hold", opts, at=None)
            _poll("mpath: path 1 back", partial(_more, export, reinstated), 60)
            reinstated = reinstatements(export)
            out["stale_fast"] = stall_run(rig, "/dev/nbd0", "hold", opts, rates=FAST_RATES)
            _poll("mpath: path 1 back", partial(_more, export, reinstated), 60)
    return out


def measure(opts: Options) -> dict[str, Any]:
    """Everything, in the lab guest: one rig, dm-multipath first, then mpath."""
    manager = RigManager()
    manager.down(RIG_NAME)
    started = time.monotonic()
    rates: list[Rate | None] = [parse_rate(r) for r in SEQ_RATES]
    folder = Path(tempfile.mkdtemp(prefix="vsdm-"))
    try:
        rig = manager.up(name=RIG_NAME, paths=2, size=LUN_SIZE, backend="lio", rates=rates)
        dm = measure_dm(rig, opts)
        mp = measure_mpath(rig, dm["weights"], opts, folder)
    finally:
        manager.down(RIG_NAME)
    return {"options": asdict(opts), "dm": dm, "mpath": mp,
            "guest_seconds": round(time.monotonic() - started)}  # fmt: skip


# -- the document ---------------------------------------------------------------------------


def stale_chunks(stack: dict[str, Any]) -> int | None:
    """Chunks overwritten late, over the hold runs (mid-run; before the first write;
    mid-run on fast links); None when no hold ran."""
    counts = [
        run["stale_chunks"]
        for run in (stack["stall"].get("hold"), stack.get("stale"), stack.get("stale_fast"))
        if run and "stale_chunks" in run
    ]
    return sum(counts) if counts else None


def document(raw: dict[str, Any]) -> dict[str, Any]:
    """The issue's JSON document (MB/s: 256 KiB sequential reads), plus ``details``."""
    dm, mp = raw["dm"], raw["mpath"]
    alone = [path["seq256k"]["mb_s"] for path in dm["alone"]]
    return {
        "balance": {
            "alone_mb_s": alone,
            "dm": {
                name: row["seq256k"]["mb_s"] if row else None
                for name, row in dm["policies"].items()
            },
            "mpath": {name: row["seq256k"]["mb_s"] for name, row in mp["policies"].items()},
        },
        "stall_ms": {
            "dm": {fault: row["max_ms"] for fault, row in dm["stall"].items()},
            "mpath": {fault: row["max_ms"] for fault, row in mp["stall"].items()},
        },
        "stale_chunks": {"dm": stale_chunks(dm), "mpath": stale_chunks(mp)},
        "details": {
            "rates": {load.label: load.rates for load in WORKLOADS},
            "alone": dm["alone"],
            "mpath_alone": mp["alone"],
            "dm": dm["policies"],
            "mpath": mp["policies"],
            "dm_unavailable": dm.get("unavailable", {}),
            "quota_weights": dm["weights"],
            "mpath_config": mp.get("config", ""),
            "stall": {"dm": dm["stall"], "mpath": mp["stall"]},
            "stale_before_writes": {"dm": dm.get("stale"), "mpath": mp.get("stale")},
            "stale_fast_links": {"dm": dm.get("stale_fast"), "mpath": mp.get("stale_fast")},
            "quota_max_commands": QUOTA_MAX_COMMANDS,
            "iscsi_tuning": ISCSI_TUNING,
            "options": raw["options"],
            "guest_seconds": raw["guest_seconds"],
        },
    }


def verdicts(doc: dict[str, Any]) -> list[str]:
    """The issue's claims, each checked against this run's figures (one line each)."""
    details, lines = doc["details"], []
    for load in WORKLOADS:
        dm = {name: row[load.label]["mb_s"] for name, row in details["dm"].items() if row}
        share = details["mpath"].get("share", {}).get(load.label, {}).get("mb_s")
        if not dm or share is None:
            continue
        best = max(dm, key=lambda name: dm[name])
        gap = share / dm[best] - 1
        verdict = "within 3% or ahead: yes" if gap >= -0.03 else "within 3% or ahead: **no**"
        line = (
            f"* {load.label}: mpath `share` {share:.2f} MB/s vs dm's best `{best}` "
            f"{dm[best]:.2f} ({gap:+.1%}; {verdict})"
        )
        if "round-robin" in dm:
            ahead = share > dm["round-robin"]
            line += (
                f"; vs `round-robin` {dm['round-robin']:.2f} "
                f"({'ahead' if ahead else '**not ahead**'})"
            )
        lines.append(line + ".")
    stall = doc["stall_ms"]
    for fault in ("drop", "hold"):
        dm_ms, mp_ms = stall["dm"].get(fault), stall["mpath"].get(fault)
        if dm_ms and mp_ms is not None:
            ok = mp_ms <= dm_ms / 5
            lines.append(
                f"* `{fault}` stall: mpath {mp_ms} ms vs tuned dm-multipath {dm_ms} ms, "
                f"{mp_ms / dm_ms:.2f}x (at most 0.20x: {'yes' if ok else '**no**'})."
            )
    stale = doc["stale_chunks"]
    caveat = " (but see above: mpath's fence was exercised by the mid-run holds only)"
    lines.append(
        f"* Stale writes after hold, failover, release: dm-multipath {stale['dm']}, "
        f"mpath {stale['mpath']} (0 for mpath: {'yes' if stale['mpath'] == 0 else '**no**'})"
        + (caveat if stale_notes(details) else "")
        + "."
    )
    return lines


def render(doc: dict[str, Any], wall_seconds: float) -> str:
    """The docs/benchmarks.md section: setup, tables, the claims checked, what limits them."""
    details = doc["details"]
    alone = details["alone"]
    sums = {load.label: sum(path[load.label]["mb_s"] for path in alone) for load in WORKLOADS}
    opts = details["options"]
    seq, rand = WORKLOADS
    lines = [
        "## Head to head with dm-multipath (lab VM)",
        "",
        "    flock /tmp/mpath-rig.lock .venv/bin/python -m benchmarks.vs_dm_multipath --json",
        "",
        f"Root; one boot of the lab VM ({details.get('accel', 'tcg')}, 2 vCPUs), "
        f"{wall_seconds:.0f} s in all, measured {time.strftime('%Y-%m-%d')}. Both stacks "
        "run in that one guest, against one LIO rig (64 MiB LUN) whose two paths are tc "
        "tbf links, and get the same fio job (libaio, O_DIRECT, queue depth 8, "
        f"{opts['seconds']} s measured after {opts['ramp']} s unmeasured):",
        "",
        "* **dm-multipath**: open-iscsi logged in to both portals (`/dev/sdX` per path), "
        "multipathd on a `multipath.conf` written for each row, fio on "
        "`/dev/mapper/WWID`. Each policy row is one `multipaths` entry with "
        '`path_grouping_policy "multibus"` and `path_selector "POLICY 0"` (every path '
        "in one group: the best dm can do with two active paths); the `dm-config` row is "
        "the fragment `mpath dm-config /dev/sdX /dev/sdY --seconds 4` wrote "
        "(weightedpath priorities, `group_by_prio`).",
        "* **mpath**: `mpath serve URL1 URL2 --policy P --listen tcp:127.0.0.1:10809` "
        "(its own libiscsi sessions) and `nbd-client 127.0.0.1 10809 /dev/nbd0 -b 4096`; "
        "fio on `/dev/nbd0`. `quota` gets `--path-args W1 --path-args W2`, the "
        "priorities dm-config measured "
        f"({', '.join(map(str, details['quota_weights']))}), and `--max-commands "
        f"{details.get('quota_max_commands', QUOTA_MAX_COMMANDS)}` (fio's queue depth): "
        "quota divides the LUN's command cap into per-path budgets by weight, and under "
        "the target's own window (64) the heavier path would take every command while "
        "the other waited its turn in the round.",
        "",
        f"Links: {seq.label} at {' / '.join(seq.rates)}, {rand.label} at "
        f"{' / '.join(rand.rates)} (path 1 / path 2, `mpath rig fault N rate`). The "
        "emulated CPU (TCG) is what limits small I/O: the kernel stack reaches the links' "
        "speed at both sizes (rows *path N alone*), while `mpath serve` (Python: NBD "
        "server, filter, libiscsi) costs CPU per I/O, so 4 KiB links are a quarter as "
        "fast as 256 KiB ones; rows *mpath, path N alone* show the export over one path.",
        "",
        f"| stack | policy | {seq.label} MB/s | % of paths alone | p99 ms | "
        f"{rand.label} MB/s | % of paths alone | p99 ms |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for index, path in enumerate(alone, 1):
        lines.append(_row(f"path {index} alone", "(`/dev/sdX`)", path, sums))
    for index, path in enumerate(details.get("mpath_alone", []), 1):
        lines.append(_row(f"mpath, path {index} alone", "share", path, sums))
    for name, row in details["dm"].items():
        if row is None:
            why = details["dm_unavailable"].get(name, "not measured")
            lines.append(f"| dm-multipath | `{name}` | {why} | | | | | |")
            continue
        lines.append(_row("dm-multipath", f"`{name}`", row, sums))
    for name, row in details["mpath"].items():
        weights = ",".join(map(str, details["quota_weights"]))
        label = f"`quota` (weights {weights})" if name == "quota" else f"`{name}`"
        lines.append(_row("mpath", label, row, sums))
    tuning = ", ".join(f"`{k} = {v}`" for k, v in ISCSI_TUNING.items())
    lines += [
        "",
        "**Failover stall and stale writes.** 4 KiB random writes over the first MiB, "
        f"queue depth {STALL_QD}, {opts['stall_seconds']} s, links at "
        f"{' / '.join(seq.rates)}; {CUT_AT:g} s in, path 1 is cut (`down`: link down; "
        "`drop`: every packet dropped; `hold`: every packet kept, in order) until the run "
        "ends. The stall is fio's longest completion latency. dm-multipath is tuned as "
        f"storage vendors advise for it: open-iscsi {tuning} (Dell EMC SC Series RHEL "
        "best practices; Red Hat's storage guide gives the same NOP-Out values, the "
        "default is 120 s replacement), multipath.conf `fast_io_fail_tmo 5`, "
        "`polling_interval 5`, `no_path_retry 6`, `service-time 0` over one group. mpath "
        "runs with its defaults (`share`), and with `--config` naming an mpath.toml that "
        + (
            f'sets only `reservation_key = "{RESERVATION_KEY}"` in `[defaults]` (one key '
            "per host, as an administrator sets it: on this rig each path is its own LIO "
            "target portal group, so only a persistent reservation can fence a held path)."
            if details.get("mpath_config")
            else "is empty: mpath's defaults. On this rig each path is its own LIO target "
            "portal group, so session reinstatement through another portal cannot fence a "
            "held path, and this run gives mpath no `reservation_key` "
            "(`USE_RESERVATION` in the benchmark); mpath then "
            "reissues the writes of a path nothing can fence at once "
            "(`unfenceable_writes = reissue`, counted and logged), as dm-multipath does."
        ),
        "",
        "| fault | dm-multipath stall ms | fio errors | mpath stall ms | fio errors | mpath/dm |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    stall = details["stall"]
    for fault, dm_row in stall["dm"].items():
        mp_row = stall["mpath"].get(fault, {})
        ratio = "-"
        if mp_row and dm_row["max_ms"]:
            ratio = f"{mp_row['max_ms'] / dm_row['max_ms']:.2f}x"
        lines.append(
            f"| {fault} | {dm_row['max_ms']} | {dm_row['errors']} | "
            f"{mp_row.get('max_ms', '-')} | {mp_row.get('errors', '-')} | {ratio} |"
        )
    stale = doc["stale_chunks"]
    before = details.get("stale_before_writes", {})
    fast = details.get("stale_fast_links", {})

    def count(run: dict[str, Any] | None) -> str:
        return str((run or {}).get("stale_chunks", "-"))

    per_run = "; ".join(
        f"{name}: {count(stall[key].get('hold'))} after the mid-run hold, "
        f"{count(before.get(key))} after the hold before the first write (longest write "
        f"{(before.get(key) or {}).get('max_ms', '-')} ms), {count(fast.get(key))} after "
        f"the mid-run hold on {FAST_RATES[0]} links (stall "
        f"{(fast.get(key) or {}).get('max_ms', '-')} ms, fio errors "
        f"{(fast.get(key) or {}).get('errors', '-')})"
        for name, key in (("dm-multipath", "dm"), ("mpath", "mpath"))
    )
    lines += [
        "",
        "**Stale writes.** Three runs end in a hold: the `hold` row above; one with path 1 "
        "held just before fio starts, the sessions idle, as in the fencing benchmark "
        "(whole write commands then wait in the network); and one held mid-run on links "
        f"set to {FAST_RATES[0]}, where the shaper queues nothing when the hold "
        "replaces it (to tell the shaper's queue from the stacks' own behaviour). "
        "After each run, once fio has closed the device, the "
        "LUN's backing file is read (first MiB, per 4 KiB chunk), path 1 is released, "
        "and once the target has read what arrived the file is read again. Chunks that "
        "changed are acknowledged writes overwritten by older ones held in the network: "
        "dm-multipath "
        f"**{stale['dm']}**, mpath **{stale['mpath']}** ({per_run}).",
        *(line for note in stale_notes(details) for line in ("", note)),
        "",
        "What this run shows, against the claims:",
        "",
        *verdicts(doc),
        "",
        "Where the comparison is uneven, and why:",
        "",
        "* dm-multipath's `dm-config` row is mpath's own advice to multipathd: weightedpath "
        "priorities in separate path groups, so only the faster group carries I/O (the "
        "fragment is made for failover order, not for spreading load). Its service-time "
        "style (`--style service-time`) is the `service-time` row: multipath.conf cannot "
        "carry per-path relative throughputs (docs/dm-multipath.md).",
        "* `historical-service-time` could not be measured on the dm side: Debian's kernel "
        "is built without it (`# CONFIG_DM_MULTIPATH_HST is not set`).",
        "* The stall of tuned dm-multipath is its timers, not the machine: a silent path "
        "is noticed when a NOP-Out goes unanswered (interval + timeout, 10 s), and its "
        "commands fail over after `replacement_timeout` (5 s). Shorter timers than the "
        "vendors' would narrow the gap and risk failing paths that are only slow; mpath "
        "measures each path's latency and fails a busy path that completes nothing for "
        "4x its smoothed latency, within 0.3..3 s (docs/filter.md).",
        "* The emulated CPU is what sets the link rates: 4 KiB links a quarter as fast as "
        "256 KiB ones, so the export's Python cost per I/O stays below them. Each stack's "
        "*path N alone* rows reach the links' speed at both sizes, so neither stack is "
        "CPU bound in the rows compared.",
    ]
    return "\n".join(lines)


def stale_notes(details: dict[str, Any]) -> list[str]:
    """What the stale-write figures do and do not show, from this run's own numbers."""
    notes = []
    dm_runs = [
        (details["stall"]["dm"].get("hold") or {}).get("stale_chunks"),
        ((details.get("stale_fast_links") or {}).get("dm") or {}).get("stale_chunks"),
        ((details.get("stale_before_writes") or {}).get("dm") or {}).get("stale_chunks"),
    ]
    if dm_runs[0] == 0 and dm_runs[1] == 0 and (dm_runs[2] or 0) > 0:
        notes.append(
            "Only the hold set before the first write made dm-multipath's held writes land "
            "late; after a hold that comes while writes run, on shaped or on fast links, no "
            "chunk changed on either stack. Why (what the target does with a connection's "
            "held data that arrives after the initiator gave up on it mid-stream) this "
            "benchmark does not establish, so those runs do not tell a fence from its "
            "absence."
        )
    before = (details.get("stale_before_writes") or {}).get("mpath") or {}
    if not before or before.get("max_ms", 0) >= 1000:
        return notes
    return [
        *notes,
        "In the run held before the first write, mpath's longest write took "
        f"{before['max_ms']} ms: its path checker (a TEST UNIT READY every second on an "
        "idle path) failed the held path before fio's first write, so no write of mpath's "
        "waited in the hold. That 0 shows detection, not fencing. In the mid-run holds "
        "mpath had writes in flight on path 1. On this rig each LIO path is its own "
        "target portal group, so no login through path 2's portal can end path 1's "
        "session, and without a reservation key mpath reissues such writes "
        "unfenced (`unfenceable_writes = reissue`, logged and counted), as dm-multipath "
        "does: the mid-run rows compare two unfenced stacks (tests/lab/test_hold_lio.py).",
    ]


def _row(stack: str, name: str, row: dict[str, dict[str, float]], sums: dict[str, float]) -> str:
    cells = []
    for load in WORKLOADS:
        got = row[load.label]
        share = 100 * got["mb_s"] / sums[load.label] if sums[load.label] else 0.0
        cells += [f"{got['mb_s']:.2f}", f"{share:.0f}%", f"{got['p99_ms']:.1f}"]
    return f"| {stack} | {name} | " + " | ".join(cells) + " |"


# -- entry points ---------------------------------------------------------------------------


def _options(args: argparse.Namespace) -> Options:
    return Options(
        seconds=args.seconds,
        ramp=args.ramp,
        stall_seconds=args.stall_seconds,
        quick=args.quick,
    )


def _guest(args: argparse.Namespace) -> int:
    raw = measure(_options(args))
    text = json.dumps(raw)
    if args.guest_out:
        Path(args.guest_out).write_text(text)
    else:
        print(text)
    return 0


def _host(args: argparse.Namespace, argv: list[str]) -> int:
    if os.geteuid() != 0:
        print("vs_dm_multipath: needs root (it boots the lab VM)", file=sys.stderr)
        return 1
    try:
        config = lab_config()
    except LabUnavailableError as exc:
        print(f"vs_dm_multipath: cannot start the lab VM: {exc}", file=sys.stderr)
        return 3
    passed = [a for a in argv if a not in ("--json", "--no-docs")]
    with tempfile.TemporaryDirectory(prefix="vsdm-") as tmp:
        out = Path(tmp) / "result.json"
        command = shlex.join(
            [sys.executable, "-m", "benchmarks.vs_dm_multipath", *passed, "--guest-out", str(out)]
        )
        started = time.monotonic()
        result = run_in_lab(
            command, config=config, cwd=ROOT, timeout=args.timeout, workdir=Path(tmp),
            stdout=sys.stderr.buffer,
        )  # fmt: skip
        wall = time.monotonic() - started
        if result.returncode != 0 or not out.exists():
            print(f"vs_dm_multipath: the lab run failed (exit {result.returncode}, "
                  f"{wall:.0f} s)", file=sys.stderr)  # fmt: skip
            return 1
        raw = json.loads(out.read_text())
    doc = document(raw)
    doc["details"]["wall_seconds"] = round(wall)
    doc["details"]["accel"] = config.accel
    if not args.quick:  # the quick form has one workload and one cut: no report
        markdown = render(doc, wall)
        print(markdown, file=sys.stderr)
        if not args.no_docs:
            replace_section("vs-dm-multipath", markdown)
    if args.json:
        print(json.dumps(doc, indent=2))
    return 0


EXAMPLES = """examples (root; each boots the lab VM once):
  flock /tmp/mpath-rig.lock .venv/bin/python -m benchmarks.vs_dm_multipath --json
  .venv/bin/python -m benchmarks.vs_dm_multipath --seconds 4 --ramp 1 --no-docs
  .venv/bin/python -m benchmarks.vs_dm_multipath --quick --seconds 2 --ramp 0 --json
"""


def _seconds(least: float) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < least:
            raise argparse.ArgumentTypeError(f"{value} is below {least:g}")
        return value

    return parse


def main(argv: list[str] | None = None) -> int:
    argv = list(argv if argv is not None else sys.argv[1:])
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.vs_dm_multipath",
        description=(__doc__ or "").split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=EXAMPLES,
    )
    parser.add_argument("--json", action="store_true", help="print the JSON document")
    parser.add_argument(
        "--seconds", type=_seconds(1), default=8, help="measured seconds per balance run (8)"
    )
    parser.add_argument(
        "--ramp", type=_seconds(0), default=2, help="unmeasured seconds before each (2)"
    )
    parser.add_argument(
        "--stall-seconds", type=_seconds(CUT_AT + 1), default=24,
        help="seconds per stall run (24): the cut comes 3 s in and tuned dm-multipath "
        "needs about 15 s more to fail over",
    )  # fmt: skip
    parser.add_argument(
        "--quick", action="store_true",
        help="one policy per stack (service-time, share), 256 KiB reads only, the hold "
        "as the only cut; for tests: no report, docs not written",
    )  # fmt: skip
    parser.add_argument("--no-docs", action="store_true", help="do not write docs/benchmarks.md")
    parser.add_argument("--timeout", type=float, default=1800.0, help="lab VM deadline (s)")
    parser.add_argument("--guest-out", default="", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if in_guest():
        return _guest(args)
    return _host(args, argv)


if __name__ == "__main__":
    sys.exit(main())
