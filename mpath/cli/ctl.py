"""``mpath ctl``: talk to a running ``mpath daemon`` over its control socket."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import click

from mpath.cli.common import emit_json, json_option
from mpath.daemon.config import CONTROL_SOCKET_NAME, DEFAULT_LISTEN_DIR
from mpath.daemon.control import request
from mpath.errors import UsageError
from mpath.units import format_size

SOCKET_ENV = "MPATH_CONTROL_SOCKET"
DEFAULT_SOCKET = DEFAULT_LISTEN_DIR / CONTROL_SOCKET_NAME

format_option = click.option(
    "--format",
    "fmt",
    metavar="TEMPLATE",
    default=None,
    help="One line per row from a template with {placeholders} named like the --json keys, "
    "e.g. '{name} {state} {checker}'.",
)


def _socket(ctx: click.Context) -> Path:
    obj = ctx.find_object(dict)
    return Path(obj["socket"]) if obj else DEFAULT_SOCKET


def _ask(command: list[str]) -> Any:
    return request(_socket(click.get_current_context()), command)


def _rows(rows: list[dict[str, Any]], fmt: str) -> None:
    for row in rows:
        try:
            click.echo(fmt.format_map(row))
        except (KeyError, IndexError, ValueError) as exc:
            known = ", ".join(row)
            raise UsageError(f"--format: bad placeholder {exc} (known: {known})") from None


def _table(rows: list[list[str]]) -> None:
    if not rows:
        return
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


@click.group("ctl")
@click.option(
    "--socket",
    "socket_path",
    metavar="PATH",
    envvar=SOCKET_ENV,
    default=str(DEFAULT_SOCKET),
    show_default=True,
    help=f"The daemon's control socket (env {SOCKET_ENV}).",
)
@click.pass_context
def ctl(ctx: click.Context, socket_path: str) -> None:
    """Ask a running mpath daemon about its maps and paths, or change them.

    Anyone who can reach the socket may run 'show'; everything else needs root.
    Paths are named MAP:INDEX (INDEX from 1, as 'show paths' lists them) or by URL.

    \b
    Examples:
      mpath ctl show maps
      mpath ctl show paths --format '{name} {state} {checker} {url}'
      mpath ctl show map mpatha --json
      mpath ctl show stats
      mpath ctl show config
      mpath ctl fail path mpatha:1
      mpath ctl reinstate path mpatha:1
      mpath ctl switchgroup mpatha 2
      mpath ctl resize map mpatha
      mpath ctl reconfigure
    """
    ctx.ensure_object(dict)["socket"] = os.path.abspath(socket_path)


@ctl.group("show")
def show() -> None:
    """Show the daemon's maps, paths, topology, configuration or counters.

    \b
    Examples:
      mpath ctl show maps
      mpath ctl show paths --json
    """


@show.command("maps")
@json_option
@format_option
def show_maps(as_json: bool, fmt: str | None) -> None:
    """One line per map: name, WWID, policy, paths up, NBD clients, NBD URI.

    Every map is an export of the daemon's one NBD server, named after the map, on
    LISTEN_DIR/nbd.sock: the URI names the export and the socket
    (nbd+unix:///NAME?socket=/run/mpath/nbd.sock); with nbd_tcp set, --json also gives
    tcp_uri. 'nbdinfo --list' on the socket lists every map.

    \b
    Examples:
      mpath ctl show maps
      mpath ctl show maps --json | jq '.[].paths | length'
      mpath ctl show maps --format '{name} {uri}'
    """
    maps = _ask(["show", "maps"])
    if as_json:
        emit_json(maps)
    elif fmt:
        _rows(maps, fmt)
    else:
        rows = [["NAME", "WWID", "SIZE", "POLICY", "PATHS", "CLIENTS", "URI"]]
        rows += [
            [
                m["name"],
                m["wwid"],
                format_size(m["size_bytes"]),
                m["policy"],
                f"{m['paths_up']}/{m['paths_total']}",
                str(m["clients"]),
                m["uri"],
            ]
            for m in maps
        ]
        _table(rows)


def _path_table(paths: list[dict[str, Any]]) -> None:
    rows = [["PATH", "STATE", "CHECKER", "PRIO", "SHARE", "IOS", "READ", "WRITTEN", "FAILURES",
             "URL"]]  # fmt: skip
    for p in paths:
        state = p["state"] + (" (admin)" if p["held_by_admin"] else "")
        share = "-" if p["share"] is None else f"{p['share']:.2f}"
        rows.append(
            [
                p["name"],
                state,
                p["checker"],
                str(p["priority"]),
                share,
                str(p["ios"]),
                format_size(p["read_bytes"]),
                format_size(p["written_bytes"]),
                str(p["failures"]),
                p["url"],
            ]
        )
    _table(rows)


@show.command("paths")
@json_option
@format_option
def show_paths(as_json: bool, fmt: str | None) -> None:
    """One line per path of every map: state, checker verdict, share, counters.

    \b
    Examples:
      mpath ctl show paths
      mpath ctl show paths --format '{name} {state} {checker} {latency_ms}'
    """
    paths = _ask(["show", "paths"])
    if as_json:
        emit_json(paths)
    elif fmt:
        _rows(paths, fmt)
    else:
        _path_table(paths)


@show.command("topology")
@json_option
def show_topology(as_json: bool) -> None:
    """Every map with its paths in priority groups, like 'multipath -ll'.

    \b
    Examples:
      mpath ctl show topology
    """
    maps = _ask(["show", "topology"])
    if as_json:
        emit_json(maps)
        return
    for m in maps:
        click.echo(
            f"{m['name']} ({m['wwid']}) {m['vendor']},{m['product']} "
            f"size={format_size(m['size_bytes'])} policy={m['policy']} "
            f"paths={m['paths_up']}/{m['paths_total']}"
        )
        for group in m["groups"]:
            status = "active" if group["active"] else "enabled"
            if group["switched"]:
                status += ", switched"
            click.echo(f"`-+- group {group['group']} priority={group['priority']} status={status}")
            for p in group["paths"]:
                click.echo(f"  |- {p['index']} {p['url']} {p['state']} {p['checker']}")


@show.command("map")
@click.argument("name")
@json_option
def show_map(name: str, as_json: bool) -> None:
    """One map and its paths.

    \b
    Examples:
      mpath ctl show map mpatha
      mpath ctl show map mpatha --json
    """
    entry = _ask(["show", "map", name])
    if as_json:
        emit_json(entry)
        return
    for key in ("name", "wwid", "vendor", "product", "policy", "max_commands", "export",
                "socket", "uri", "tcp_uri"):  # fmt: skip
        if key != "tcp_uri" or entry.get(key):
            click.echo(f"{key}: {entry[key]}")
    click.echo(f"size: {format_size(entry['size_bytes'])} ({entry['block_size']}-byte blocks)")
    click.echo(f"paths: {entry['paths_up']}/{entry['paths_total']} up, clients: {entry['clients']}")
    _path_table(entry["paths"])


@show.command("config")
@json_option
def show_config(as_json: bool) -> None:
    """The daemon's settings and each map's resolved settings with their origins.

    \b
    Examples:
      mpath ctl show config
      mpath ctl show config --json | jq '.maps[] | {name, policy: .settings.policy}'
    """
    config = _ask(["show", "config"])
    if as_json:
        emit_json(config)
        return
    found = "" if config["config_file_found"] else " (not found: built-in defaults)"
    click.echo(f"configuration file: {config['config_file']}{found}")
    daemon = config["daemon"]
    origins = daemon["origins"]
    for key in ("listen_dir", "control_socket", "nbd_socket", "nbd_tcp", "state_file", "metrics",
                "portals"):  # fmt: skip
        # The sockets are in listen_dir: they come from where it came from.
        inherited = origins.get("listen_dir") if key.endswith("_socket") else None
        origin = origins.get(key, inherited or "built-in default")
        click.echo(f"daemon {key} = {daemon[key]}  ({origin})")
    for m in config["maps"]:
        click.echo(f"map {m['name']} ({m['wwid']}):")
        for name, setting in m["settings"].items():
            where = f", {setting['location']}" if setting["location"] else ""
            click.echo(f"  {name} = {setting['value']}  ({setting['origin']}{where})")


@show.command("stats")
@json_option
def show_stats(as_json: bool) -> None:
    """Counters per map (I/Os, bytes, errors, path faults, reloads) and per path.

    \b
    Examples:
      mpath ctl show stats
      mpath ctl show stats --json | jq '.maps[] | {map, failovers}'
    """
    stats = _ask(["show", "stats"])
    if as_json:
        emit_json(stats)
        return
    click.echo(f"pid {stats['pid']}, up {stats['uptime_s']:.0f} s, {stats['reloads']} reload(s)")
    for problem in stats["problems"]:
        click.echo(f"problem: {problem}")
    for m in stats["maps"]:
        click.echo(
            f"{m['map']}: ios={m['ios']} read={format_size(m['bytes_read'])} "
            f"written={format_size(m['bytes_written'])} errors={m['errors']} "
            f"path_faults={m['failovers']} path_failures={m['path_failures']} "
            f"retries={m['retries']} fences={m['fences']} "
            f"queueing={m['queueing_seconds']:.3f}s fail_io={m['fail_io']} "
            f"table_loads={m['table_loads']} "
            f"admin_fails={m['admin_fails']} paths_up={m['paths_up']}/{m['paths_total']}"
        )
        for p in m["paths"]:
            click.echo(
                f"  {p['name']}: ios={p['ios']} reads={p['reads']} "
                f"read={format_size(p['read_bytes'])} writes={p['writes']} "
                f"written={format_size(p['written_bytes'])} "
                f"errors={p['errors']} failures={p['failures']} {p['url']}"
            )


def _print_change(result: dict[str, Any], as_json: bool, verb: str) -> None:
    if as_json:
        emit_json(result)
        return
    pending = (
        " (pending: the checker reinstates it once it logs in)" if result.get("pending") else ""
    )
    click.echo(f"{result['map']}:{result['path']} {verb}: now {result['state']}{pending}")


@ctl.group("fail")
def fail() -> None:
    """Take a path out of use (root).

    \b
    Examples:
      mpath ctl fail path mpatha:1
    """


@fail.command("path")
@click.argument("path")
@json_option
def fail_path(path: str, as_json: bool) -> None:
    """Fail PATH: I/O moves to the map's other paths; it stays failed until
    'mpath ctl reinstate path' (the checker keeps watching it).

    \b
    Examples:
      mpath ctl fail path mpatha:2
      mpath ctl fail path iscsi://198.18.2.2/iqn.2026-01.org.example:lun/1
    """
    _print_change(_ask(["fail", "path", path]), as_json, "failed")


@ctl.group("reinstate")
def reinstate() -> None:
    """Put a path back into use (root).

    \b
    Examples:
      mpath ctl reinstate path mpatha:1
    """


@reinstate.command("path")
@click.argument("path")
@json_option
def reinstate_path(path: str, as_json: bool) -> None:
    """Reinstate PATH (failed by 'fail path' or by the checkers).

    \b
    Examples:
      mpath ctl reinstate path mpatha:2
    """
    _print_change(_ask(["reinstate", "path", path]), as_json, "reinstated")


@ctl.group("add")
def add() -> None:
    """Add a map (root).

    \b
    Examples:
      mpath ctl add map --alias db iscsi://198.18.1.2/iqn.2026-01.org.example:db/1
    """


@add.command("map")
@click.argument("paths", nargs=-1, required=True, metavar="PATH...")
@click.option("--alias", metavar="NAME", default=None,
              help="Name of the map and its NBD export (default: a [[multipaths]] alias, "
              "else a persistent binding such as mpathc).")  # fmt: skip
@json_option
def add_map(paths: tuple[str, ...], alias: str | None, as_json: bool) -> None:
    """Open the LUN behind PATH... (iSCSI URLs or block devices, as 'mpath serve' takes)
    as a new map and export it on the daemon's NBD server, now.

    The map lasts until the next reload (SIGHUP, 'ctl reconfigure'), which applies
    the configuration file as written: add it to [[daemon.maps]] to keep it.

    \b
    Examples:
      mpath ctl add map /dev/sdc /dev/sdd
      mpath ctl add map --alias db iscsi://198.18.1.2/iqn.2026-01.org.example:db/1 \\
          iscsi://198.18.2.2/iqn.2026-01.org.example:db/1
    """
    words = ["add", "map", *(["--alias", alias] if alias is not None else []), *paths]
    entry = _ask(words)
    if as_json:
        emit_json(entry)
        return
    click.echo(f"{entry['name']} added: {entry['wwid']}, {entry['paths_up']}/"
               f"{entry['paths_total']} paths up, at {entry['uri']}")  # fmt: skip


@ctl.group("del")
def delete() -> None:
    """Remove a map (root).

    \b
    Examples:
      mpath ctl del map mpathc
    """


@delete.command("map")
@click.argument("name")
@json_option
def del_map(name: str, as_json: bool) -> None:
    """Stop serving map NAME: its NBD export is removed (unlisted and refused to new
    clients at once; its clients' requests in flight finish, then they are
    disconnected), the LUN flushed and closed. Exit 1 if requests had to be abandoned.

    The map comes back at the next reload if the configuration names it.

    \b
    Examples:
      mpath ctl del map mpathc
    """
    result = _ask(["del", "map", name])
    if as_json:
        emit_json(result)
    else:
        click.echo(f"{name} removed" + ("" if result["clean"] else " (requests abandoned)"))
    if not result["clean"]:
        raise SystemExit(1)


@ctl.group("resize")
def resize() -> None:
    """Re-read a map's size after its LUN grew (root).

    \b
    Examples:
      mpath ctl resize map mpatha
    """


@resize.command("map")
@click.argument("name")
@json_option
def resize_map(name: str, as_json: bool) -> None:
    """Re-read READ CAPACITY of map NAME's LUN on every path in use, after the LUN
    was grown on the target, and serve the new size.

    Every path that answers must report the same size (failed paths are left out;
    they are checked before they carry I/O again). A LUN that shrank is refused
    (exit 1) and the old size kept: data past the new end would vanish under its
    users. New NBD clients see the new size; clients already connected keep the size
    they were told (NBD cannot announce a change) until they reconnect. A path that
    reports CAPACITY DATA HAS CHANGED makes the daemon re-read the size by itself;
    this forces it.

    \b
    Examples:
      mpath ctl resize map mpatha
      mpath ctl resize map mpatha --json | jq .size_bytes
    """
    result = _ask(["resize", "map", name])
    if as_json:
        emit_json(result)
        return
    old, new = format_size(result["old_size_bytes"]), format_size(result["size_bytes"])
    if result["grown"]:
        click.echo(f"{name} resized: {old} -> {new} ({result['size_bytes']} bytes)")
    else:
        click.echo(f"{name} unchanged: {new} ({result['size_bytes']} bytes)")


@ctl.command("switchgroup")
@click.argument("name")
@click.argument("group", type=int, metavar="N")
@json_option
def switchgroup(name: str, group: int, as_json: bool) -> None:
    """Make path group N of map NAME carry its I/O (root), until failback moves it.

    Groups are numbered from 1, best priority first, as 'show topology' lists them.
    The switch holds while the group has a usable path, until a path of a better
    group comes back and the failback setting lets it take over (at once under
    'immediate', after its delay when deferred, never by itself under 'manual').
    If the group loses its last path, I/O fails over as usual. N out of range is
    refused (exit 2), and so is a group with no usable path (exit 1).

    \b
    Examples:
      mpath ctl show topology
      mpath ctl switchgroup mpatha 2
      mpath ctl switchgroup mpatha 1 --json
    """
    result = _ask(["switchgroup", name, str(group)])
    if as_json:
        emit_json(result)
        return
    click.echo(f"{name}: path group {result['group']} (priority {result['priority']}) now "
               "carries the I/O")  # fmt: skip


@ctl.command("reconfigure")
@json_option
def reconfigure(as_json: bool) -> None:
    """Re-read the configuration file (as SIGHUP does) and print what changed.

    Maps whose paths and settings did not change are left alone; changed ones are
    drained and reopened; removed ones drained and closed.

    \b
    Examples:
      mpath ctl reconfigure
    """
    report = _ask(["reconfigure"])
    if as_json:
        emit_json(report)
        return
    for key, names in report.items():
        click.echo(f"{key}: {', '.join(names) or '-'}")


@ctl.group("reset")
def reset() -> None:
    """Reset counters (root).

    \b
    Examples:
      mpath ctl reset stats
    """


@reset.command("stats")
def reset_stats() -> None:
    """Reset the daemon's own per-map counters (admin fails, table loads).

    \b
    Examples:
      mpath ctl reset stats
    """
    _ask(["reset", "stats"])
    click.echo("statistics reset")
