"""``mpath rig``: build and control a real iSCSI test rig (docs/rig.md)."""

from __future__ import annotations

import click

from mpath.cli.common import emit_json, json_option
from mpath.errors import RigUsageError
from mpath.rig.backends import BACKEND_NAMES
from mpath.rig.manager import DEFAULT_NAME, RigManager, parse_rates
from mpath.units import format_size, parse_rate, parse_size

name_option = click.option(
    "--name",
    default=DEFAULT_NAME,
    show_default=True,
    envvar="MPATH_RIG_NAME",
    help="Which rig (several can run side by side). Env: MPATH_RIG_NAME.",
)


@click.group()
def rig() -> None:
    """Build and control a real iSCSI test rig (needs root).

    The rig serves one file-backed LUN from a target inside its own network namespace;
    each path is a veth pair with its own /24 of 198.18.0.0/15, whose speed and health
    you control. It never touches the host's own interfaces, routes or firewall.

    \b
    Examples:
      mpath rig up --paths 2 --rate 400mbit,1600mbit
      mpath rig status --json
      mpath rig fault 1 drop        # packets on path 1 vanish (no RST)
      mpath rig fault 1 clear
      mpath rig down
    """


@rig.command()
@click.option("--paths", "paths", default=2, show_default=True, type=int, help="Number of paths.")
@click.option("--size", default="1G", show_default=True, help="LUN size (K/M/G suffixes).")
@click.option(
    "--rate",
    default=None,
    help="Speed per path, tc units: one value for all or R1,R2,... (e.g. 400mbit,1gbit).",
)
@click.option(
    "--backend",
    type=click.Choice(BACKEND_NAMES),
    default="tgt",
    show_default=True,
    help="tgt: user-space tgtd (works everywhere); lio: kernel target via rtslib-fb.",
)
@name_option
@json_option
def up(paths: int, size: str, rate: str | None, backend: str, name: str, as_json: bool) -> None:
    """Create a target with one LUN and PATHS paths.

    \b
    Examples:
      mpath rig up
      mpath rig up --paths 4 --size 256M --rate 400mbit --name fast
      mpath rig up --paths 2 --json | jq -r '.urls[]'
    """
    built = RigManager().up(
        name=name,
        paths=paths,
        size=parse_size(size),
        rates=parse_rates(rate, paths) if paths >= 1 else None,
        backend=backend,
    )
    if as_json:
        emit_json(built.describe())
        return
    lun = built.lun
    click.echo(
        f"rig {built.name} up ({built.backend}): {built.target.iqn} LUN {lun.number}, "
        f"{format_size(lun.size_bytes)}, wwid {lun.wwid}"
    )
    for path, url in zip(built.paths, built.urls, strict=True):
        rate_text = str(path.rate) if path.rate else "unlimited"
        click.echo(f"  path {path.index}  {url}  rate {rate_text}")


@rig.command()
@name_option
@json_option
def status(name: str, as_json: bool) -> None:
    """Show a rig and the link, fault and rate of each path."""
    built, paths = RigManager().status(name)
    if as_json:
        emit_json({**built.describe(), "paths": [p.describe() for p in paths]})
        return
    click.echo(f"rig {built.name} ({built.backend}): {built.target.iqn} LUN {built.lun.number}")
    click.echo(f"  wwid {built.lun.wwid}  serial {built.lun.serial}  file {built.lun.backing_file}")
    for entry in paths:
        doc = entry.describe()
        click.echo(
            f"  path {doc['index']}  {doc['url']}  link {doc['link']}  fault {doc['fault']}"
            f"  rate {doc['rate'] or 'unlimited'}"
        )


@rig.command(name="list")
@json_option
def list_rigs(as_json: bool) -> None:
    """List the rigs on this host."""
    manager = RigManager()
    names = manager.names()
    if as_json:
        emit_json([manager.load(n).describe() for n in names])
        return
    for n in names:
        click.echo(n)


@rig.command()
@click.argument("path_index", type=int)
@click.argument("action", type=click.Choice(["down", "up", "drop", "clear", "rate", "alua"]))
@click.argument("rate", metavar="[RATE|STATE]", required=False)
@name_option
def fault(path_index: int, action: str, rate: str | None, name: str) -> None:
    """Apply a fault to path PATH_INDEX (counting from 1, in the order of 'urls').

    \b
    ACTION is one of:
      down        take the path's link down
      up          bring the link back up
      drop        silently drop every packet on the path (no RST, no ICMP)
      clear       undo every fault: link up, no drop, the rate given at 'rig up'
      rate RATE   change the path's speed (tc units: 100mbit, 1gbit, 20mbps)
      alua STATE  (lio backend) put the path's target port group in an ALUA state:
                  active-optimized, active-nonoptimized, standby, transitioning,
                  unavailable

    \b
    Examples:
      mpath rig fault 1 down
      mpath rig fault 2 rate 100mbit
      mpath rig fault 1 clear
      mpath rig fault 2 alua standby
    """
    if action == "alua":
        path = RigManager().fault(name, path_index, action, alua_state=rate)
        click.echo(f"path {path.index}: alua {path.alua_state}", err=True)
        return
    if action == "rate" and rate is None:
        raise RigUsageError("'rate' needs a RATE, e.g. 'mpath rig fault 2 rate 100mbit'")
    if action != "rate" and rate is not None:
        raise RigUsageError(f"'{action}' takes no further argument (got {rate!r})")
    parsed = parse_rate(rate) if rate is not None else None
    path = RigManager().fault(name, path_index, action, parsed)
    click.echo(f"path {path.index}: fault {path.fault.value}", err=True)


@rig.command()
@name_option
def down(name: str) -> None:
    """Remove everything 'rig up' created (safe to run twice)."""
    if RigManager().down(name):
        click.echo(f"rig {name} removed", err=True)
    else:
        click.echo(f"no rig named {name}: nothing to remove", err=True)
