"""``mpath dm-config``: a multipath.conf fragment from measured path speeds."""

from __future__ import annotations

import click

from mpath.cli.common import emit_json, json_option
from mpath.dm.dmconfig import DmConfigRequest, build
from mpath.dm.fragment import Match, Style
from mpath.dm.store import DEFAULT_MAX_AGE, MeasurementStore
from mpath.errors import DeviceError
from mpath.sysfs.tree import Sysfs


@click.command("dm-config")
@click.argument("paths", nargs=-1, required=True)
@click.option(
    "--style",
    type=click.Choice([s.value for s in Style]),
    default=Style.WEIGHTEDPATH.value,
    show_default=True,
    help="weightedpath: per-path priorities, fastest group active. service-time: all "
    "paths active (relative throughputs as comments: multipath.conf cannot pass them).",
)
@click.option(
    "--match",
    type=click.Choice([m.value for m in Match]),
    default=Match.DEVNAME.value,
    show_default=True,
    help="How weightedpath's prio_args name paths: kernel name (sdb) or SCSI H:C:T:L.",
)
@click.option(
    "--step",
    type=click.IntRange(1, 100),
    default=10,
    show_default=True,
    help="Round priorities to multiples of STEP so nearly equal paths share a group.",
)
@click.option(
    "--seconds",
    type=click.FloatRange(0.1, 600.0),
    default=3.0,
    show_default=True,
    help="How long each iscsi:// path is read (alone) to measure it.",
)
@click.option(
    "--from-store",
    is_flag=True,
    help="Use stored measurements of iscsi:// paths instead of measuring them now.",
)
@click.option(
    "--max-age",
    type=click.FloatRange(0.0),
    default=DEFAULT_MAX_AGE,
    show_default=True,
    help="Ignore stored measurements older than this many seconds.",
)
@click.option(
    "--kernel-name",
    "kernel_names",
    multiple=True,
    metavar="PATH=NAME",
    help="The kernel's name for PATH (sdX, or H:C:T:L) when sysfs cannot tell; PATH may "
    "be its position (1=sdb). Repeatable.",
)
@click.option(
    "--store",
    "store_file",
    metavar="FILE",
    default=None,
    help="Measurement store (default: $MPATH_MEASUREMENTS, else /var/lib/mpath/paths.json).",
)
@click.option(
    "--record/--no-record",
    default=True,
    show_default=True,
    help="Record the measurements in the store (for 'mpath prio').",
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
    help="mpath configuration for the LUN's alias (default: $MPATH_CONFIG, /etc/mpath.toml).",
)
@click.option(
    "--check",
    is_flag=True,
    help="Also run multipath-tools' parser (multipath -t) on the fragment, in a private "
    "mount namespace (root); exit 1 if it complains.",
)
@json_option
def dm_config(
    paths: tuple[str, ...],
    style: str,
    match: str,
    step: int,
    seconds: float,
    from_store: bool,
    max_age: float,
    kernel_names: tuple[str, ...],
    store_file: str | None,
    record: bool,
    sysfs_root: str | None,
    config_file: str | None,
    check: bool,
    as_json: bool,
) -> None:
    """Print a multipath.conf fragment for the LUN behind PATH... from measured speeds.

    PATH is an iscsi:// URL (measured now by reading it alone for --seconds, or taken
    from the measurement store with --from-store), or a block device (/dev/sdb, sdb,
    8:16: judged from the store, else sysfs counters). All PATHs must lead to one LUN.
    weightedpath needs each path's kernel name: found in sysfs for open-iscsi sessions,
    else give --kernel-name. See docs/dm-multipath.md for what each line does.

    \b
    Examples:
      mpath dm-config /dev/sdb /dev/sdc
      mpath dm-config URL1 URL2 --seconds 5 > /etc/multipath/conf.d/mpath.conf
      mpath dm-config URL1 URL2 --kernel-name 1=sdb --kernel-name 2=sdc --check
      mpath dm-config URL1 URL2 --style service-time --json
      mpath dm-config sdb sdc --match hbtl --step 25
    """
    result = build(
        DmConfigRequest(
            paths=paths,
            style=Style(style),
            match=Match(match),
            step=step,
            seconds=seconds,
            from_store=from_store,
            max_age=max_age,
            kernel_names=kernel_names,
            record=record,
            config_file=config_file,
        ),
        sysfs=Sysfs(sysfs_root),
        store=MeasurementStore(store_file),
    )
    rejected = None
    if check:
        from mpath.dm.parser_check import check_fragment

        parsed = check_fragment(result.fragment.text)
        result.parser = {
            "command": " ".join(parsed.command),
            "accepted": parsed.accepted,
            "complaints": parsed.complaints,
        }
        if not parsed.accepted:
            rejected = "; ".join(parsed.complaints) or f"exit {parsed.returncode}"
    if as_json:
        emit_json(result.describe())
    else:
        click.echo(result.fragment.text, nl=False)
        if check and rejected is None:
            click.echo("mpath: multipath -t accepts the fragment", err=True)
    if rejected is not None:
        raise DeviceError(f"multipath -t rejects the fragment: {rejected}")
