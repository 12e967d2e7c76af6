"""``mpath rig``: build and control a real iSCSI test rig (docs/rig.md)."""

from __future__ import annotations

import sys
import time
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FuturesTimeout

import click
from click.shell_completion import CompletionItem

from mpath.cli.common import complete_rig_names, emit_json, json_option
from mpath.errors import RigNotFoundError, RigUsageError
from mpath.rig.backends import BACKEND_NAMES
from mpath.rig.manager import (
    DEFAULT_NAME,
    FAULT_ACTIONS,
    TARGET_ACTIONS,
    RigManager,
    parse_rates,
    require_root,
)
from mpath.units import format_size, parse_rate, parse_size

name_option = click.option(
    "--name",
    default=DEFAULT_NAME,
    show_default=True,
    envvar="MPATH_RIG_NAME",
    shell_complete=complete_rig_names,
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
    """Show a rig and the link, fault and rate of each path.

    \b
    Examples:
      mpath rig status
      mpath rig status --name fast
      mpath rig status --json | jq -r '.paths[] | "\\(.index) \\(.fault)"'
    """
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
    """List the rigs on this host (their names; --json: each rig's description).

    \b
    Examples:
      mpath rig list
      mpath rig list --json | jq -r '.[] | "\\(.name) \\(.target)"'
    """
    manager = RigManager()
    names = manager.names()
    if as_json:
        emit_json([manager.load(n).describe() for n in names])
        return
    for n in names:
        click.echo(n)


def _complete_where(
    ctx: click.Context, param: click.Parameter, incomplete: str
) -> list[CompletionItem]:
    return [CompletionItem(w) for w in ("target", "lun") if w.startswith(incomplete)]


def _complete_action(
    ctx: click.Context, param: click.Parameter, incomplete: str
) -> list[CompletionItem]:
    """The actions that fit WHERE ('delay' is left out: it is always refused)."""
    where = ctx.params.get("where")
    if where == "target":
        actions: tuple[str, ...] = TARGET_ACTIONS
    elif where == "lun":
        actions = ("resize",)
    else:
        actions = tuple(a for a in FAULT_ACTIONS if a != "delay")
    return [CompletionItem(a) for a in actions if a.startswith(incomplete)]


@rig.command()
@click.argument("where", metavar="PATH_INDEX|target|lun", shell_complete=_complete_where)
@click.argument("action", shell_complete=_complete_action)
@click.argument("argument", metavar="[RATE|STATE|PCT|SIZE]", required=False)
@name_option
def fault(where: str, action: str, argument: str | None, name: str) -> None:
    """Apply a fault to one path (PATH_INDEX, from 1 in the order of 'urls'), the target
    or the LUN.

    \b
    On a path, ACTION is one of:
      down        take the path's link down
      up          bring the link back up
      drop        silently drop every packet on the path (no RST, no ICMP)
      loss PCT    lose PCT % of the packets both ways at random (0 stops it)
      reset       the target aborts the path's connections with a TCP reset
      hold        keep every packet sent either way, in order, and deliver none
                  (a congested switch, a hung NIC queue)
      release     deliver everything held, in order, then carry on as before
      clear       undo every fault: link up, no drop, no loss, release what is
                  held, and the rate given at 'rig up'
      rate RATE   change the path's speed (tc units: 100mbit, 1gbit, 20mbps);
                  packets a hold keeps are never dropped by the change
      alua STATE  (lio backend) put the path's target port group in an ALUA state:
                  active-optimized, active-nonoptimized, standby, transitioning,
                  unavailable
      delay MS    refused, with the reason: this kernel cannot delay packets

    \b
    On the target:
      restart     kill the target and serve the same LUN again: every path's
                  connection goes at once (tgt: SIGKILL of tgtd)
      slow        (tgt) hold the target to 20 ms of CPU a second: it stops
                  answering on every path for up to about 1 s at a time, then
                  catches up, as a busy array does
      fast        end 'slow'

    \b
    On the LUN:
      resize SIZE grow the LUN while it is served (tgt; data kept)

    \b
    Examples:
      mpath rig fault 1 down
      mpath rig fault 2 rate 100mbit
      mpath rig fault 1 loss 5
      mpath rig fault 1 hold        # writes wait in the network...
      mpath rig fault 1 release     # ...and arrive late, in order
      mpath rig fault 1 clear
      mpath rig fault 2 alua standby
      mpath rig fault target restart
      mpath rig fault target slow
      mpath rig fault lun resize 2G
    """
    manager = RigManager()
    if where == "target":
        _no_argument(action, argument)
        manager.target_fault(name, action)
        click.echo(f"target: {action}", err=True)
        return
    if where == "lun":
        if action != "resize" or argument is None:
            raise RigUsageError("on the LUN the fault is 'resize SIZE', e.g. 'lun resize 2G'")
        built = manager.resize_lun(name, parse_size(argument))
        click.echo(f"lun: {format_size(built.lun.size_bytes)}", err=True)
        return
    try:
        index = int(where)
    except ValueError:
        raise RigUsageError(
            f"{where!r} is not a path index, 'target' or 'lun' (e.g. 'mpath rig fault 1 down')"
        ) from None
    if action not in FAULT_ACTIONS:
        raise RigUsageError(f"unknown fault {action!r}: choose one of {', '.join(FAULT_ACTIONS)}")
    if action == "alua":
        path = manager.fault(name, index, action, alua_state=argument)
        click.echo(f"path {path.index}: alua {path.alua_state}", err=True)
        return
    if action == "loss":
        path = manager.fault(name, index, action, loss_pct=_percentage(argument))
        click.echo(f"path {path.index}: loss {path.loss_pct}%", err=True)
        return
    if action == "rate" and argument is None:
        raise RigUsageError("'rate' needs a RATE, e.g. 'mpath rig fault 2 rate 100mbit'")
    if action not in ("rate", "delay"):
        _no_argument(action, argument)
    parsed = parse_rate(argument) if action == "rate" and argument is not None else None
    path = manager.fault(name, index, action, parsed)
    click.echo(f"path {path.index}: fault {path.fault.value}", err=True)


def _no_argument(action: str, argument: str | None) -> None:
    if argument is not None:
        raise RigUsageError(f"'{action}' takes no further argument (got {argument!r})")


def _percentage(text: str | None) -> int:
    """A loss percentage, 0..100, as a whole number ('5' or '5%')."""
    if text is None:
        raise RigUsageError("'loss' needs a percentage, e.g. 'mpath rig fault 1 loss 5'")
    try:
        value = int(text.removesuffix("%"))
    except ValueError:
        raise RigUsageError(
            f"loss percentage must be a whole number 0..100, not {text!r}"
        ) from None
    if not 0 <= value <= 100:
        raise RigUsageError(f"loss percentage must be 0..100, not {value}")
    return value


@rig.command()
@name_option
@click.option(
    "--progress/--no-progress", default=None, help="Live progress on stderr (default: on a tty)."
)
def down(name: str, progress: bool | None) -> None:
    """Remove everything 'rig up' created (safe to run twice).

    The target daemon is stopped, each path's veth pair and the rig's namespace are
    deleted, and the rig's state folder removed; this takes up to half a minute. A
    line on stderr says what is being removed, a live count of seconds follows on a
    tty, and the last line says how long it took.

    \b
    Examples:
      mpath rig down
      mpath rig down --name fast
      MPATH_RIG_NAME=fast mpath rig down --no-progress
    """
    manager = RigManager()
    require_root()  # before saying anything is being removed
    try:
        built = manager.load(name)
    except RigNotFoundError:
        click.echo(f"no rig named {name}: nothing to remove", err=True)
        return
    live = sys.stderr.isatty() if progress is None else progress
    click.echo(
        f"removing rig {name}: {built.backend} target, {len(built.paths)} path(s), "
        f"namespace {built.namespace} ...",
        err=True,
    )
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=1) as pool:
        removal = pool.submit(manager.down, name)
        while live:
            try:
                removal.result(timeout=1.0)
                break
            except FuturesTimeout:
                click.echo(f"\r  {time.monotonic() - started:4.0f} s", err=True, nl=False)
        removed = removal.result()
    if live:
        click.echo("", err=True)
    took = time.monotonic() - started
    if removed:
        click.echo(f"rig {name} removed in {took:.1f} s", err=True)
    else:
        click.echo(f"no rig named {name}: nothing to remove", err=True)
