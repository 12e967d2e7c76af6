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

from benchmarks.fencing_stall import _chunks, _target_quiet
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
#: Per-path link rates: what the emulated CPU carries with room to spare (each path
#: alone is measured in every run to show it).
RATES = ("16mbit", "48mbit")
PORT = 10809
#: The balance workloads: (label, fio --rw, block size, queue depth).
WORKLOADS = (
    ("seq256k", "read", 256 * 1024, 8),
    ("rand4k", "randread", 4096, 8),
)
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
#: The stall/stale workload: 4 KiB random writes over the first MiB, queue depth 8.
STALL_SPAN = 1024 * 1024
STALL_QD = 8
#: When the cut comes in a stall run (seconds after fio starts; hold: before it starts).
CUT_AT = 3.0


@dataclass(frozen=True)
class Options:
    seconds: int = 8
    ramp: int = 2
    stall_seconds: int = 24
    rates: tuple[str, ...] = RATES
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


def log(text: str) -> None:
    print(f"vs_dm_multipath: {text}", file=sys.stderr, flush=True)


# -- balance ------------------------------------------------------------------------------


def balance_runs(device: str, opts: Options) -> dict[str, dict[str, float]]:
    """Both balance workloads on ``device``: {label: {mb_s, p99_ms, errors}}."""
    out = {}
    for label, rw, bs, qd in WORKLOADS:
        result = run_fio(fio_argv(device, rw, bs, qd, opts.seconds, opts.ramp))
        out[label] = {"mb_s": round(result.mb_s, 2), "p99_ms": round(result.p99_ms, 1),
                      "errors": result.errors}  # fmt: skip
        log(f"{device} {label}: {result.mb_s:.2f} MB/s p99 {result.p99_ms:.1f} ms")
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


def stall_run(rig: Rig, device: str, fault: str, opts: Options) -> dict[str, Any]:
    """Random writes on ``device`` with path 1 cut for the rest of the run.

    ``hold`` starts before the first write (whole write commands then wait in the
    network, not parts of them) and after fio has closed the device the LUN's first
    MiB is fingerprinted, path 1 released, and the chunks that changed counted.
    """
    manager = RigManager()
    for index in (1, 2):
        manager.fault(rig.name, index, "clear")
    argv = fio_argv(device, "randwrite", 4096, STALL_QD, opts.stall_seconds, 0)
    thread = None

    def cut() -> None:
        manager.fault(rig.name, 1, fault)

    if fault == "hold":
        cut()
    else:
        thread = _at(CUT_AT, cut)
    result = run_fio(argv)
    if thread is not None:
        thread.join()
    doc: dict[str, Any] = {"max_ms": round(result.max_ms), "errors": result.errors,
                           "ios": result.ios}  # fmt: skip
    if fault == "hold":
        before = _chunks(rig)
        manager.fault(rig.name, 1, "release")
        _target_quiet(rig, 1)
        after = _chunks(rig)
        doc["stale_chunks"] = sum(a != b for a, b in zip(before, after, strict=True))
    manager.fault(rig.name, 1, RESTORE[fault])
    manager.fault(rig.name, 1, "clear")
    log(f"{device} {fault}: {doc}")
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
            out["alone"].append(balance_runs(disk, opts))
        fragment, weights = dm_config_fragment(sessions, 2 if opts.quick else 4)
        out["weights"] = weights
        out["fragment"] = fragment
        wwid = rig.lun.wwid
        node = f"/dev/mapper/{wwid}"
        policies = DM_POLICIES[:1] if opts.quick else DM_POLICIES
        with multipathd(dm_conf(wwid, policies[0])):
            for policy in policies:
                reconfigure(dm_conf(wwid, policy))
                table = wait_for_map(wwid, policy, 2)
                log(f"dm table: {table}")
                out["policies"][policy] = balance_runs(node, opts)
            if not opts.quick:
                reconfigure(MULTIPATH_DEFAULTS + fragment)
                wait_for_map(wwid, "service-time", 2)
                out["policies"]["dm-config"] = balance_runs(node, opts)
            reconfigure(dm_conf(wwid, "service-time"))
            wait_for_map(wwid, "service-time", 2)
            for fault in faults(opts):
                out["stall"][fault] = stall_run(rig, node, fault, opts)
                _poll("dm: both paths back", lambda: active_paths(wwid) >= 2, 90)
    return out


@contextlib.contextmanager
def served(rig: Rig, folder: Path, policy: str, weights: list[int]) -> Iterator[Export]:
    """``mpath serve`` over the rig's paths under ``policy``, attached as /dev/nbd0."""
    extra = ["--policy", policy, "-v"]
    if policy == "quota":
        for weight in weights:
            extra += ["--path-args", str(weight)]
    export = Export(rig.urls, folder, tuple(extra), listen=f"tcp:127.0.0.1:{PORT}")
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
    out: dict[str, Any] = {"policies": {}, "stall": {}}
    policies = MPATH_POLICIES[:1] if opts.quick else MPATH_POLICIES
    for policy in policies:
        with served(rig, folder, policy, weights):
            out["policies"][policy] = balance_runs("/dev/nbd0", opts)
    with served(rig, folder, "share", weights) as export:
        for fault in faults(opts):
            reinstated = reinstatements(export)
            out["stall"][fault] = stall_run(rig, "/dev/nbd0", fault, opts)
            _poll("mpath: path 1 back", partial(_more, export, reinstated), 60)
    return out


def measure(opts: Options) -> dict[str, Any]:
    """Everything, in the lab guest: one rig, dm-multipath first, then mpath."""
    manager = RigManager()
    manager.down(RIG_NAME)
    started = time.monotonic()
    rates: list[Rate | None] = [parse_rate(r) for r in opts.rates]
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


def document(raw: dict[str, Any]) -> dict[str, Any]:
    """The issue's JSON document (MB/s: 256 KiB sequential reads), plus ``details``."""
    dm, mp = raw["dm"], raw["mpath"]
    alone = [path["seq256k"]["mb_s"] for path in dm["alone"]]
    return {
        "balance": {
            "alone_mb_s": alone,
            "dm": {name: row["seq256k"]["mb_s"] for name, row in dm["policies"].items()},
            "mpath": {name: row["seq256k"]["mb_s"] for name, row in mp["policies"].items()},
        },
        "stall_ms": {
            "dm": {fault: row["max_ms"] for fault, row in dm["stall"].items()},
            "mpath": {fault: row["max_ms"] for fault, row in mp["stall"].items()},
        },
        "stale_chunks": {
            "dm": dm["stall"].get("hold", {}).get("stale_chunks"),
            "mpath": mp["stall"].get("hold", {}).get("stale_chunks"),
        },
        "details": {
            "rates": raw["options"]["rates"],
            "alone": dm["alone"],
            "dm": dm["policies"],
            "mpath": mp["policies"],
            "quota_weights": dm["weights"],
            "stall": {"dm": dm["stall"], "mpath": mp["stall"]},
            "iscsi_tuning": ISCSI_TUNING,
            "options": raw["options"],
            "guest_seconds": raw["guest_seconds"],
        },
    }


def render(doc: dict[str, Any], wall_seconds: float) -> str:
    """The docs/benchmarks.md section."""
    details = doc["details"]
    alone = details["alone"]
    sums = {label: sum(path[label]["mb_s"] for path in alone) for label, *_ in WORKLOADS}
    opts = details["options"]
    lines = [
        "## Head to head with dm-multipath (lab VM)",
        "",
        f"`flock /tmp/mpath-rig.lock .venv/bin/python -m benchmarks.vs_dm_multipath --json` "
        f"(root; one boot of the lab VM, {wall_seconds:.0f} s in all). One LIO rig in the "
        f"guest, 64 MiB LUN, path 1 shaped to {details['rates'][0]} and path 2 to "
        f"{details['rates'][1]} (tc tbf). Both stacks get the same fio job (libaio, "
        f"O_DIRECT, {opts['seconds']} s after {opts['ramp']} s unmeasured, queue depth 8): "
        "dm-multipath on `/dev/mapper/WWID` over open-iscsi's two `/dev/sdX`; mpath as "
        "`mpath serve URL1 URL2 --policy P` attached with `nbd-client` as `/dev/nbd0`.",
        "",
        "### Balance",
        "",
        "| stack | policy | 256 KiB seq MB/s | % of paths alone | p99 ms | 4 KiB rand MB/s "
        "| % of paths alone | p99 ms |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for index, path in enumerate(alone, 1):
        lines.append(_row(f"path {index} alone", "(/dev/sdX)", path, sums))
    for name, row in details["dm"].items():
        lines.append(_row("dm-multipath", name, row, sums))
    for name, row in details["mpath"].items():
        label = f"quota (weights {','.join(map(str, details['quota_weights']))})"
        lines.append(_row("mpath", label if name == "quota" else name, row, sums))
    lines += [
        "",
        "### Failover stall and stale writes",
        "",
        "4 KiB random writes over the first MiB, queue depth 8, "
        f"{opts['stall_seconds']} s; path 1 cut {CUT_AT:g} s in (`down`, `drop`) or held "
        "from before the first write (`hold`) until the run ends. The stall is fio's "
        "longest completion latency. open-iscsi: "
        + ", ".join(f"`{k} = {v}`" for k, v in ISCSI_TUNING.items())
        + "; multipath.conf: `fast_io_fail_tmo 5`, `polling_interval 5`, `no_path_retry 6`, "
        "`service-time 0`, one path group. mpath: its defaults (`share`).",
        "",
        "| fault | dm-multipath stall ms | fio errors | mpath stall ms | fio errors | mpath/dm |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    stall = details["stall"]
    for fault in stall["dm"]:
        dm_row, mp_row = stall["dm"][fault], stall["mpath"].get(fault, {})
        ratio = f"{mp_row['max_ms'] / dm_row['max_ms']:.2f}" if mp_row and dm_row["max_ms"] else "-"
        lines.append(
            f"| {fault} | {dm_row['max_ms']} | {dm_row['errors']} | "
            f"{mp_row.get('max_ms', '-')} | {mp_row.get('errors', '-')} | {ratio} |"
        )
    stale = doc["stale_chunks"]
    lines += [
        "",
        f"Stale writes (4 KiB chunks of the backing file that changed after fio closed the "
        f"device, when path 1 was released): dm-multipath **{stale['dm']}**, mpath "
        f"**{stale['mpath']}**.",
    ]
    return "\n".join(lines)


def _row(stack: str, name: str, row: dict[str, dict[str, float]], sums: dict[str, float]) -> str:
    cells = []
    for label, *_ in WORKLOADS:
        got = row[label]
        share = 100 * got["mb_s"] / sums[label] if sums[label] else 0.0
        cells += [f"{got['mb_s']:.2f}", f"{share:.0f}%", f"{got['p99_ms']:.1f}"]
    return f"| {stack} | {name} | " + " | ".join(cells) + " |"


# -- entry points ---------------------------------------------------------------------------


def _options(args: argparse.Namespace) -> Options:
    return Options(
        seconds=args.seconds,
        ramp=args.ramp,
        stall_seconds=args.stall_seconds,
        rates=tuple(args.rates.split(",")),
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
    markdown = render(doc, wall)
    print(markdown, file=sys.stderr)
    if not args.no_docs and not args.quick:
        replace_section("vs-dm-multipath", markdown)
    if args.json:
        print(json.dumps(doc, indent=2))
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(argv if argv is not None else sys.argv[1:])
    parser = argparse.ArgumentParser(
        description=(__doc__ or "").split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--json", action="store_true", help="print the JSON document")
    parser.add_argument("--seconds", type=int, default=8, help="measured seconds per balance run")
    parser.add_argument("--ramp", type=int, default=2, help="unmeasured seconds before each")
    parser.add_argument("--stall-seconds", type=int, default=24, help="seconds per stall run")
    parser.add_argument("--rates", default=",".join(RATES), help="path link rates, R1,R2")
    parser.add_argument(
        "--quick", action="store_true",
        help="one policy per stack (service-time, share), for tests; docs not written",
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
