"""``mpath bench``: drive I/O through the filter layer and measure it."""

from __future__ import annotations

import asyncio
import sys

import click

from mpath.cli.common import emit_json, json_option, rig_option
from mpath.cli.config import config_file_option
from mpath.cli.paths import (
    device_nodes,
    open_device,
    open_settings_options,
    request_from_context,
    resolve_paths,
)
from mpath.cli.rigmatch import check_rig_lun, fault_rig, rig_of_paths
from mpath.rig.manager import DEFAULT_NAME, RigManager
from mpath.rig.model import Rig
from mpath.transports import is_block_path
from mpath.units import parse_rate, parse_size
from mpath.workload.bench import RW_MODES, BenchRun, BenchSpec, FaultStep


@click.command()
@click.argument("paths", nargs=-1)
@click.option("--seconds", default=10.0, show_default=True, type=float, help="Run time.")
@click.option("--rw", type=click.Choice(RW_MODES), default="read", show_default=True)
@click.option("--bs", default=None, help="I/O size (default 256K for read/write, 4K for rand*).")
@click.option("--qd", default=32, show_default=True, type=int, help="I/Os kept outstanding.")
@click.option("--span", default=None, help="Use only the first SIZE bytes of the LUN.")
@click.option("--verify", is_flag=True, help="Write self-describing data and check it on read.")
@click.option(
    "--fault",
    "faults",
    multiple=True,
    metavar="T:INDEX:ACTION",
    help=(
        "Apply a rig fault at T seconds (down, up, drop, hold, release, clear, rate=RATE). "
        "Repeatable."
    ),
)
@rig_option(
    "Rig whose paths to use when no PATH is given [default: mpath]; with PATHs, the "
    "rig they lead to (checked; --fault acts on it, found from the paths when not given)."
)
@click.option("--seed", type=int, default=None, help="Seed of the random offsets.")
@click.option(
    "--ack-log",
    "ack_log",
    type=click.Path(dir_okay=False, writable=True),
    default=None,
    metavar="FILE",
    help=(
        "Append one line per acknowledged write (chunk, generation) to FILE as it "
        "completes, for checking the LUN from outside (docs/reliability.md)."
    ),
)
@click.option(
    "--trace",
    "trace_interval",
    type=float,
    default=None,
    metavar="S",
    help="Record each path's MB/s and split every S seconds (JSON key 'trace').",
)
@click.option(
    "--progress/--no-progress", default=None, help="Live progress on stderr (default: on a tty)."
)
@open_settings_options
@config_file_option
@json_option
def bench(
    paths: tuple[str, ...],
    seconds: float,
    rw: str,
    bs: str | None,
    qd: int,
    span: str | None,
    verify: bool,
    faults: tuple[str, ...],
    rig_name: str | None,
    seed: int | None,
    ack_log: str | None,
    trace_interval: float | None,
    progress: bool | None,
    config_file: str | None,
    as_json: bool,
    **settings_options: object,
) -> None:
    """Drive I/O through mpath over PATH... and report throughput, latency and failovers.

    PATH is an iscsi:// URL or a block device node (repeat it for each path to the
    LUN). With --rig and no PATH, the rig's paths are used. Settings not given here
    come from the configuration file (--config, docs/config.md).

    \b
    Examples:
      mpath bench --rig mpath --seconds 10
      mpath bench URL1 URL2 --rw randwrite --bs 4K --qd 32 --json
      mpath bench --rig mpath --rw write --verify --fault 3:1:down --fault 6:1:up
      mpath bench --rig mpath --policy round-robin --rw read --bs 256K
      mpath bench /dev/loop0 /dev/loop1 --verify --rw randwrite --seconds 3 --span 32M
      mpath bench --rig mpath --verify --rw randrw --bs 4K --ack-log /tmp/acks.log
    """
    paths = device_nodes(paths)
    fault_steps = tuple(FaultStep.parse(text) for text in faults)
    for step in fault_steps:
        if step.rate is not None:
            parse_rate(step.rate)
    block_size = parse_size(bs) if bs else (256 * 1024 if rw in ("read", "write") else 4096)
    spec = BenchSpec(
        rw=rw,
        block_size=block_size,
        queue_depth=qd,
        seconds=seconds,
        span=parse_size(span) if span else None,
        verify=verify,
        faults=fault_steps,
        seed=seed,
        trace_interval=trace_interval,
        ack_log=ack_log,
    )
    if not paths:
        rig: Rig | None = RigManager().load(rig_name or DEFAULT_NAME)
    elif fault_steps:
        rig = fault_rig(paths, rig_name, [step.index for step in fault_steps])
    else:
        rig = rig_of_paths(paths, rig_name, what="--rig") if rig_name else None
    urls = resolve_paths(paths, rig, block=True)
    if rig is not None:
        for step in fault_steps:
            rig.path(step.index)
    request = request_from_context(click.get_current_context(), urls, config_file)
    show_progress = sys.stderr.isatty() if progress is None else progress

    async def apply_fault(step: FaultStep) -> None:
        assert rig is not None
        rate = parse_rate(step.rate) if step.rate else None
        await asyncio.to_thread(RigManager().fault, rig.name, step.index, step.action, rate)
        click.echo(f"\n[{step.at:g}s] rig path {step.index}: {step.action}", err=True)

    def report(elapsed: float, run: BenchRun) -> None:
        rate = run.bytes / elapsed / 1e6 if elapsed else 0.0
        states = " ".join(
            f"{i + 1}:{p['state']}:{p['share']:.0%}" for i, p in enumerate(run.device.paths)
        )
        click.echo(
            f"\r{elapsed:6.1f}s {rate:9.1f} MB/s {run.ios / elapsed:9.0f} IOPS  "
            f"paths {states}  failovers {run.device.stats.failovers}  errors {run.errors}   ",
            err=True,
            nl=False,
        )

    async def main() -> dict[str, object]:
        device = (await open_device(request)).device
        try:
            if rig is not None and device.lun is not None and any(map(is_block_path, urls)):
                check_rig_lun(rig, device.lun.wwid, what="--fault" if fault_steps else "--rig")
            run = BenchRun(device, spec)
            result = await run.run(
                progress=report if show_progress else None,
                apply_fault=apply_fault if fault_steps else None,
            )
        finally:
            await device.close()
        if show_progress:
            click.echo("", err=True)
        return result.describe()

    document = asyncio.run(main())
    if as_json:
        emit_json(document)
    else:
        _print_summary(document)
    if document["errors"] or document["verify_mismatches"]:
        sys.exit(1)


def _print_summary(doc: dict[str, object]) -> None:
    latency = doc["latency_ms"]
    assert isinstance(latency, dict)
    click.echo(
        f"policy {doc['policy']}: {doc['mb_per_s']} MB/s, {doc['iops']} IOPS over "
        f"{doc['seconds']} s; latency ms p50 {latency['p50']} p99 {latency['p99']} "
        f"max {latency['max']}"
    )
    click.echo(
        f"errors {doc['errors']}, verify mismatches {doc['verify_mismatches']}, "
        f"failovers {doc['failovers']}"
    )
    paths = doc["paths"]
    assert isinstance(paths, list)
    for path in paths:
        moved = f"{path['bytes'] / 1e6:.1f} MB"
        if "verify_bytes" in path:  # --verify: which bytes were the workload's
            parts = [f"workload {path['workload_bytes'] / 1e6:.1f}"]
            if path["prefill_bytes"]:
                parts.insert(0, f"prefill {path['prefill_bytes'] / 1e6:.1f}")
            parts.append(f"read-back {path['verify_bytes'] / 1e6:.1f}")
            moved += f" ({' + '.join(parts)})"
        click.echo(
            f"  {path['url']}  {path['state']}  {moved}  "
            f"{path['ios']} I/Os  share {path['share']:.2f}  errors {path['errors']}"
        )
    if doc.get("first_error"):
        click.echo(f"first error: {doc['first_error']}", err=True)


__all__ = ["bench"]
