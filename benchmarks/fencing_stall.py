"""What fencing costs and what it saves, on the real rig, against mpath before fencing.

As root:

    .venv/bin/python -m benchmarks.fencing_stall [--rounds 3] [--baseline REV] [--json]

One 2-path rig. Each round runs the same write workload (what ``mpath bench --rw
randwrite --bs 4K --qd 16 --span 1M --verify --seconds 5 --policy round-robin`` does,
through ``benchmarks/fencing_child.py``) once per build and fault, the builds
alternating: **before** is the revision ``--baseline`` (default: the last one without
fencing), checked out into a temporary git worktree and run with ``PYTHONPATH`` pointing
at it; **after** is this tree. The faults are applied from here to path 1:

* ``down`` at 1.5 s (restored with ``up`` at 3 s) and ``drop`` (restored with
  ``clear``): the failover stall is the run's longest I/O; fencing adds one login
  through path 2.
* ``hold`` from before the first write: path 1 keeps its packets. After the run ends,
  the backing file is fingerprinted per 4 KiB block, path 1 is released, and once the
  target has read what arrived the blocks that changed are counted: each is a stale
  write that overwrote data the run had acknowledged (and verified).

The medians of the rounds go to docs/benchmarks.md (section ``fencing-rig``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.report import replace_section
from mpath.rig import Rig, RigManager

#: The last revision of main before fencing (the "before" build).
DEFAULT_BASELINE = "20668f0"
ROOT = Path(__file__).resolve().parent.parent
#: Random 4 KiB writes over the first MiB of the LUN, 16 at a time, for 5 s.
BLOCK = 4096
CHUNK = 4096
SPAN = 1024 * 1024
SECONDS = 5.0
FAULTS: dict[str, tuple[str, str | None]] = {
    "down": ("down", "up"),
    "drop": ("drop", "clear"),
    "hold": ("hold", None),
}
RIG_NAME = "bench-fencing"
QUIET_TIMEOUT = 30.0
#: Time allowed for writes the target read to reach its backing file.
SETTLE = 1.0


def _chunks(rig: Rig) -> list[bytes]:
    with open(rig.lun.backing_file, "rb") as backing:
        data = backing.read(SPAN)
    return [hashlib.blake2b(data[i : i + CHUNK]).digest() for i in range(0, SPAN, CHUNK)]


def _target_quiet(rig: Rig, index: int) -> None:
    """Wait until the target has read everything that arrived from path ``index``.

    The connections themselves may stay (a build without fencing leaves sessions the
    target never hears the end of); what matters is that no byte the release delivered
    is still unread. Then a moment for the target's backing store to finish what it
    read (tgt writes it from its own threads, out of sight).
    """
    host_ip = rig.path(index).host_ip
    deadline = time.monotonic() + QUIET_TIMEOUT
    while time.monotonic() < deadline:
        out = subprocess.run(
            ["ss", "-Htn", "-N", rig.namespace, "state", "all", "dst", host_ip],
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
        unread = [ln for ln in out.splitlines() if len(ln.split()) > 1 and ln.split()[1] != "0"]
        if not unread:
            time.sleep(SETTLE)  # the backing store's writes in flight, which ss cannot see
            return
        time.sleep(0.05)  # polling ss: no event for a socket's queue emptying
    raise RuntimeError(f"target still has unread data from {host_ip}")


def _one_run(rig: Rig, build: Path | None, fault: str) -> dict[str, Any]:
    """One run of ``build`` (None: this tree) with ``fault`` on path 1.

    The run is ``benchmarks/fencing_child.py`` in the build's own folder (``python``
    puts the script's folder first on sys.path, so ``mpath`` comes from PYTHONPATH, the
    build under test). ``down``/``drop`` come 1.5 s into the writes and are undone at
    3 s; ``hold`` starts before the first write, with the sessions idle, so whole write
    commands wait in the network (on a busy path a hold catches mostly parts of
    commands); it is released after the run.
    """
    env = dict(os.environ)
    env["PYTHONPATH"] = str(build if build is not None else ROOT)
    child = Path(__file__).with_name("fencing_child.py")
    argv = [sys.executable, str(child), str(BLOCK), str(SECONDS), *rig.urls]
    manager = RigManager()
    cut, restore = FAULTS[fault]
    process = subprocess.Popen(
        argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env=env, text=True,
    )  # fmt: skip
    assert process.stdin is not None and process.stdout is not None
    if process.stdout.readline().strip() != "ready":
        process.kill()
        raise RuntimeError(f"the run did not start: {process.communicate()[1][-2000:]}")
    if fault == "hold":
        manager.fault(rig.name, 1, cut)
    process.stdin.write("go\n")
    process.stdin.flush()
    if fault != "hold":
        time.sleep(1.5)  # the fault's scheduled time
        manager.fault(rig.name, 1, cut)
        time.sleep(1.5)  # the restore's scheduled time
        assert restore is not None
        manager.fault(rig.name, 1, restore)
    out, err = process.communicate(timeout=120)
    if process.returncode != 0:
        raise RuntimeError(f"run exit {process.returncode}: {err[-2000:]}")
    doc: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    if fault == "hold":
        doc["stale_chunks"] = stale_after_release(rig, 1)
    manager.fault(rig.name, 1, "clear")
    return doc


def stale_after_release(rig: Rig, index: int) -> int:
    """Release held path ``index`` and count the LUN's chunks (of the first ``SPAN``)
    that change once the target has read what arrived: acknowledged data overwritten
    by older writes. Call it after the writer has closed the device."""
    before = _chunks(rig)
    RigManager().fault(rig.name, index, "release")
    _target_quiet(rig, index)
    after = _chunks(rig)
    return sum(a != b for a, b in zip(before, after, strict=True))


def _baseline(rev: str) -> Path | None:
    folder = Path(tempfile.mkdtemp(prefix="mpath-baseline-"))
    made = subprocess.run(
        ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(folder), rev],
        capture_output=True, text=True,
    )  # fmt: skip
    if made.returncode:
        print(f"no baseline build: {made.stderr.strip()}", file=sys.stderr)
        return None
    return folder


def measure(rounds: int, baseline_rev: str) -> dict[str, Any]:
    manager = RigManager()
    manager.down(RIG_NAME)
    rig = manager.up(name=RIG_NAME, paths=2, size=256 * 1024 * 1024)
    baseline = _baseline(baseline_rev)
    builds: dict[str, Path | None] = {"after": None}
    if baseline is not None:
        builds = {"before": baseline, "after": None}
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {b: {f: [] for f in FAULTS} for b in builds}
    try:
        for round_no in range(rounds):
            for fault in FAULTS:
                for build, path in builds.items():
                    doc = _one_run(rig, path, fault)
                    runs[build][fault].append(doc)
                    print(
                        f"round {round_no + 1} {build:6} {fault:4}: max "
                        f"{doc['latency_ms']['max']:.0f} ms, errors {doc['errors']}, "
                        f"mismatches {doc['verify_mismatches']}, "
                        f"stale {doc.get('stale_chunks', '-')}",
                        file=sys.stderr,
                    )
    finally:
        manager.down(RIG_NAME)
        if baseline is not None:
            subprocess.run(
                ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(baseline)],
                capture_output=True,
            )
    summary: dict[str, Any] = {"rounds": rounds, "baseline": baseline_rev, "builds": {}}
    for build, by_fault in runs.items():
        summary["builds"][build] = {
            fault: {
                "max_ms": [d["latency_ms"]["max"] for d in docs],
                "median_max_ms": statistics.median(d["latency_ms"]["max"] for d in docs),
                "errors": sum(d["errors"] for d in docs),
                "mismatches": sum(d["verify_mismatches"] for d in docs),
                "fences": sum(d.get("fences", 0) for d in docs),
                "stale_chunks": sum(d.get("stale_chunks", 0) for d in docs),
            }
            for fault, docs in by_fault.items()
        }
    return summary


def render(summary: dict[str, Any]) -> str:
    builds = summary["builds"]
    lines = [
        "## Fencing: failover stall and stale writes, before and after",
        "",
        "`python -m benchmarks.fencing_stall --rounds "
        f"{summary['rounds']}` (root). One 2-path rig (unlimited paths, 256 MiB LUN); "
        "each run writes 4 KiB blocks at random over the first MiB, 16 at a time, for 5 s "
        "with verification, under round-robin (`benchmarks/fencing_child.py`: what "
        "`mpath bench --rw randwrite --bs 4K --qd 16 --span 1M --verify` does). Faults on "
        "path 1: `down`/`drop` at 1.5 s, undone at 3 s; `hold` from before the first "
        "write, released after the run. **before** is revision "
        f"`{summary['baseline']}` (no fencing), **after** this tree; the two alternate "
        "within each round. The stall is the run's longest I/O (median of the rounds, "
        "every round in brackets). Stale blocks are 4 KiB blocks of the backing file that "
        "changed after the run ended, when the held packets were released: acknowledged "
        "(and verified) data overwritten by an older write.",
        "",
        "| fault | build | errors | mismatches | fences | **stall ms** | stale blocks |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for fault in FAULTS:
        for build in builds:
            row = builds[build][fault]
            each = ", ".join(f"{m:.0f}" for m in row["max_ms"])
            stale = row["stale_chunks"] if fault == "hold" else "-"
            lines.append(
                f"| {fault} | {build} | {row['errors']} | {row['mismatches']} | "
                f"{row['fences']} | **{row['median_max_ms']:.0f}** ({each}) | {stale} |"
            )
    if "before" in builds:
        lines.append("")
        for fault in ("down", "drop", "hold"):
            before = builds["before"][fault]["median_max_ms"]
            after = builds["after"][fault]["median_max_ms"]
            lines.append(
                f"* `{fault}`: after/before stall {after / before:.2f}x ({after - before:+.0f} ms)."
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--baseline", default=DEFAULT_BASELINE)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv if argv is not None else sys.argv[1:])
    summary = measure(args.rounds, args.baseline)
    replace_section("fencing-rig", render(summary))
    if args.json:
        print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
