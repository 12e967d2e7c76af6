"""``mpath prio DEVICE``: the classic dm-multipath prioritizer callout.

The contract (multipath-tools' old ``prio_callout``): print one integer on stdout and
exit 0, quickly, for any device name, however odd. So this command never fails: a
device it cannot judge gets the lowest priority, 0, with one line on stderr saying
why. No shell is run and the name is never interpolated into one.
"""

from __future__ import annotations

import click

from mpath.cli.common import emit_json, json_option
from mpath.dm.callout import DEFAULT_PROBE_SECONDS, DEFAULT_TIMEOUT, PrioReport, device_priority
from mpath.dm.prio import PRIO_FAILED
from mpath.dm.store import DEFAULT_MAX_AGE, MeasurementStore
from mpath.sysfs.tree import Sysfs


@click.command("prio")
@click.argument("device")
@click.option(
    "--timeout",
    type=click.FloatRange(0.05, 60.0),
    default=DEFAULT_TIMEOUT,
    show_default=True,
    help="Seconds an iscsi:// probe may take in all (login, identity, reads).",
)
@click.option(
    "--probe-seconds",
    type=click.FloatRange(0.01, 10.0),
    default=DEFAULT_PROBE_SECONDS,
    show_default=True,
    help="Seconds of reads in an iscsi:// probe (within --timeout).",
)
@click.option(
    "--max-age",
    type=click.FloatRange(0.0),
    default=DEFAULT_MAX_AGE,
    show_default=True,
    help="Ignore stored measurements older than this many seconds.",
)
@click.option(
    "--store",
    "store_file",
    metavar="FILE",
    default=None,
    help="Measurement store (default: $MPATH_MEASUREMENTS, else /var/lib/mpath/paths.json).",
)
@click.option(
    "--sysfs-root",
    metavar="DIR",
    default=None,
    help="sysfs to read (default: $MPATH_SYSFS_ROOT, else /sys); for tests.",
)
@click.option(
    "--config",
    "config_file",
    metavar="FILE",
    default=None,
    help="Configuration for an iscsi:// probe's CHAP login (default: $MPATH_CONFIG, "
    "else /etc/mpath.toml).",
)
@click.option(
    "--record/--no-record",
    default=True,
    show_default=True,
    help="Store an iscsi:// probe when the store has no fresh record for that path.",
)
@json_option
def prio(
    device: str,
    timeout: float,
    probe_seconds: float,
    max_age: float,
    store_file: str | None,
    sysfs_root: str | None,
    record: bool,
    config_file: str | None,
    as_json: bool,
) -> None:
    """Print DEVICE's priority: one integer, 0 (failed or unknown) to 100 (fastest).

    DEVICE is a kernel name (sdb, multipathd's %n), MAJ:MIN (%d), a /dev node or an
    iscsi:// URL. 1..100 is the path's measured throughput relative to the fastest
    known path of the same LUN (100 = fastest; 1 = up but never measured), lowered by
    the share of its I/Os that failed. Block devices are judged from sysfs and the
    measurement store (fill it with 'mpath dm-config'); iscsi:// URLs by a short live
    probe. Always exits 0: a device that cannot be judged gets 0. See
    docs/dm-multipath.md.

    \b
    Examples:
      mpath prio sdb
      mpath prio 8:16
      mpath prio iscsi://198.18.1.2/iqn.2026-11.org.mpath:rig.mpath/1
      mpath prio sdb --json          how the number was reached
      mpath prio iscsi://... --config /etc/mpath.toml   (CHAP for the probe)
    """
    try:
        config = None
        if device.startswith("iscsi://"):  # only a live probe logs in (and needs CHAP)
            from mpath.config import load_config

            config = load_config(config_file)
        report = device_priority(
            device,
            sysfs=Sysfs(sysfs_root),
            store=MeasurementStore(store_file),
            max_age=max_age,
            timeout=timeout,
            probe_seconds=probe_seconds,
            record=record,
            config=config,
        )
    except Exception as exc:  # the callout contract: always an integer, never a traceback
        report = PrioReport(device=device, priority=PRIO_FAILED, reason=f"internal error: {exc}")
    if as_json:
        emit_json(report.describe())
        return
    if report.priority == PRIO_FAILED and report.reason:
        click.echo(f"mpath prio: {device!r}: {report.reason}; priority 0", err=True)
    click.echo(str(report.priority))
