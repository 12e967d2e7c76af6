"""``mpath show``: one multipath device's topology, the way ``multipath -ll`` prints it.

The device is opened with the path checkers (docs/checkers.md) as its monitor, one
round of checks runs on every path, and the result is printed: the LUN, the settings
in force, and per priority group its paths with their state (does the device send I/O
there), their checker state (what the last check found), their share of the I/O and
their counters.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from typing import Any, Final

import click

from mpath.checkers import CHECKER_NAMES, DEFAULT_CHECK_TIMEOUT, DEFAULT_CHECKER
from mpath.checkers.monitor import CheckerMonitor
from mpath.checkers.settings import DEFAULT_LOGIN_TIMEOUT, CheckerSettings
from mpath.cli.common import emit_json, json_option, rig_option
from mpath.cli.config import config_file_option
from mpath.cli.paths import (
    DeviceRequest,
    OpenedDevice,
    device_nodes,
    open_device,
    open_settings_options,
    request_from_context,
)
from mpath.cli.paths import resolve_paths as _resolve_paths
from mpath.cli.rigmatch import check_rig_lun, rig_of_paths
from mpath.errors import UsageError
from mpath.filter.path import PathState as DeviceState
from mpath.rig.manager import RigManager
from mpath.rig.model import Rig
from mpath.scsi.states import CheckerState as PathState
from mpath.sysfs.tree import Sysfs
from mpath.units import format_size

#: Interval of the checks while ``show`` waits for its round (seconds): the first
#: check of each path is spread over this, so the round completes at once.
ROUND_INTERVAL: Final = 0.05
#: The checker vocabulary of the CLI contract, and what other checker states show as.
CONTRACT_CHECKER_STATES: Final = frozenset({"up", "down", "ghost", "pending", "shaky"})
_CHECKER_AS: Final[dict[PathState, str]] = {
    PathState.TIMEOUT: "down",
    PathState.REMOVED: "down",
    PathState.UNCHECKED: "pending",
    PathState.WILD: "pending",
    PathState.DELAYED: "shaky",
}


def contract_checker_state(state: PathState) -> str:
    """The checker state in the contract's words (up/down/ghost/pending/shaky).

    ``timeout`` and ``removed`` are down; ``unchecked``/``wild`` (no verdict yet, or
    a checker that cannot judge this path) are pending; ``delayed`` is shaky.
    """
    if state.value in CONTRACT_CHECKER_STATES:
        return state.value
    return _CHECKER_AS.get(state, "pending")


@click.command()
@click.argument("paths", nargs=-1)
@click.option(
    "--checker",
    type=click.Choice(CHECKER_NAMES),
    default=DEFAULT_CHECKER,
    show_default=True,
    help="Path checker of the round of checks (docs/checkers.md).",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0.01),
    default=DEFAULT_CHECK_TIMEOUT,
    show_default=True,
    help="Seconds one check may take.",
)
@rig_option("Show this rig's LUN over all its paths; with PATHs, the rig they must lead to.")
@open_settings_options
@config_file_option
@json_option
def show(
    paths: tuple[str, ...],
    checker: str,
    timeout: float,
    rig_name: str | None,
    config_file: str | None,
    as_json: bool,
    **settings_options: object,
) -> None:
    """Show the multipath device over PATH...: LUN, priority groups, path states.

    PATH is an iscsi:// URL or a block device node; give every path to the LUN (paths
    of different LUNs are refused). The device is opened with the configuration
    file's settings (--config), one round of path checks runs, and the topology is
    printed like 'multipath -ll':

    \b
      WWID VENDOR,PRODUCT size=SIZE policy=POLICY max_commands=N
      `-+- policy='POLICY' prio=N status=active
        |- PATH STATE CHECKER share=S bytes=B ios=N [alua group G ALUA] [SESSION]
        `- PATH STATE CHECKER share=S bytes=B ios=N [alua group G ALUA] [SESSION]

    STATE is whether the device sends I/O down the path (active/failed); CHECKER is
    what the check found (up/down/ghost/pending/shaky). On an ALUA LU, ALUA is the
    path's target port group state (active-optimized, active-nonoptimized, standby,
    transitioning, unavailable): only the best usable state carries I/O. For an
    open-iscsi disk (/dev/sdX), SESSION is its session: NAME TARGET ADDRESS:PORT.
    Exit 0 when the device could be opened (even with failed paths), 1 when no path
    could, 2 for bad input or a blacklisted device.

    \b
    Examples:
      mpath show iscsi://198.18.1.2/iqn.2026-11.org.mpath:rig.mpath/1 \\
                 iscsi://198.18.2.2/iqn.2026-11.org.mpath:rig.mpath/1
      mpath show /dev/loop0 /dev/loop1 --json
      mpath show --rig mpath --policy round-robin
    """
    paths = device_nodes(paths)
    if paths:
        rig = rig_of_paths(paths, rig_name, what="--rig") if rig_name else None
    else:
        rig = RigManager().load(rig_name) if rig_name else None
    urls = _resolve_paths(paths, rig, block=True)
    request = request_from_context(click.get_current_context(), urls, config_file)
    checker_settings = CheckerSettings(
        checker=checker,
        timeout=timeout,
        polling_interval=ROUND_INTERVAL,
        max_polling_interval=ROUND_INTERVAL,
        login_timeout=DEFAULT_LOGIN_TIMEOUT,
    )
    document = asyncio.run(_show(request, checker_settings, rig))
    if as_json:
        emit_json(document)
    else:
        for line in render(document):
            click.echo(line)


async def _show(
    request: DeviceRequest, settings: CheckerSettings, rig: Rig | None = None
) -> dict[str, Any]:
    """Open the device, run one round of checks on every path, describe it, close it."""
    monitors: list[CheckerMonitor] = []

    def monitor_factory(device: Any) -> CheckerMonitor:
        monitor = CheckerMonitor(device, settings)
        monitors.append(monitor)
        return monitor

    opened = await open_device(request, monitor=monitor_factory, reserve=False)
    try:
        lun = opened.device.lun
        if rig is not None and lun is not None:
            check_rig_lun(rig, lun.wwid, what="--rig")
        monitor = monitors[0]
        paths = opened.device.path_objects
        bound = settings.timeout + settings.login_timeout + 1.0
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(
                monitor.wait_until(lambda: all(monitor.watch(p).checks >= 1 for p in paths)),
                bound,
            )
        return describe(opened, monitor)
    finally:
        await opened.device.close()


def describe(opened: OpenedDevice, monitor: CheckerMonitor) -> dict[str, Any]:
    """The ``mpath show --json`` document (keys fixed by the CLI contract)."""
    device = opened.device
    lun = device.lun
    if lun is None:
        raise UsageError("device is not open")
    by_path = {id(p): view for p, view in zip(device.path_objects, device.paths, strict=True)}
    groups: dict[int, list[dict[str, Any]]] = {}
    for path in device.path_objects:
        view = by_path[id(path)]
        watch = monitor.watch(path)
        state = monitor.checker_state(path)
        groups.setdefault(path.priority, []).append(
            {
                "url": path.url,
                "state": path.state.value,
                "checker": contract_checker_state(state),
                "priority": path.priority,
                "share": round(float(view["share"]), 4),
                "checker_state": state.value,
                "checker_message": watch.result.message if watch.result else "",
                "bytes": path.bytes,
                "ios": path.ios,
                "errors": path.errors,
                "failures": path.failures,
                "last_failure": path.last_failure or None,
                "fence": device.fence_info(path),
                "alua_group": path.alua_group,
                "alua_state": view["alua_state"],
                "iscsi_session": _iscsi_session(path.url),
            }
        )
    active = [p.priority for p in device.path_objects if p.state is DeviceState.ACTIVE]
    carrying = max(active, default=None)
    group_docs = []
    for priority in sorted(groups, reverse=True):
        members = groups[priority]
        if priority == carrying:
            status = "active"
        elif any(m["state"] == DeviceState.ACTIVE.value for m in members):
            status = "enabled"
        else:
            status = "failed"
        group_docs.append({"priority": priority, "status": status, "paths": members})
    resolution = opened.resolution
    return {
        "wwid": lun.wwid,
        "alias": resolution.alias.value,
        "vendor": lun.vendor,
        "product": lun.product,
        "revision": lun.revision,
        "size_bytes": lun.size_bytes,
        "block_size": lun.block_size,
        "policy": device.policy,
        "policy_args": list(device.settings.policy_args),
        "max_commands": device.max_commands,
        "no_path_retry": device.settings.no_path_retry,
        "config_file": str(resolution.config_file) if resolution.config_file else None,
        "groups": group_docs,
    }


def _iscsi_session(url: str) -> dict[str, Any] | None:
    """The open-iscsi session of a block path (/dev/sdX), from sysfs; None otherwise."""
    if not url.startswith("/dev/"):
        return None
    session = Sysfs().iscsi_session(os.path.basename(os.path.realpath(url)))
    return None if session is None else session.describe()


def _path_extras(path: dict[str, Any]) -> str:
    """The ALUA and open-iscsi session fields of a path line, when known."""
    extras = ""
    if path.get("alua_state") is not None:
        extras += f" alua group {path['alua_group']} {path['alua_state']}"
    session = path.get("iscsi_session")
    if session:
        portal = f"{session['address']}:{session['port']}" if session["address"] else "-"
        extras += f" {session['name']} {session['target']} {portal}"
    return extras


def _policy_text(document: dict[str, Any]) -> str:
    return " ".join([str(document["policy"]), *map(str, document["policy_args"])])


def render(document: dict[str, Any]) -> list[str]:
    """The tree ``mpath show`` prints, one string per line."""
    head = (
        f"{document['wwid']} {document['vendor']},{document['product']} "
        f"size={format_size(document['size_bytes'])} policy={document['policy']} "
        f"max_commands={document['max_commands']}"
    )
    if document.get("alias"):
        head += f" alias={document['alias']}"
    lines = [head]
    groups = document["groups"]
    for g_index, group in enumerate(groups):
        last_group = g_index == len(groups) - 1
        lines.append(
            f"{'`' if last_group else '|'}-+- policy='{_policy_text(document)}' "
            f"prio={group['priority']} status={group['status']}"
        )
        indent = "  " if last_group else "| "
        members = group["paths"]
        for p_index, path in enumerate(members):
            branch = "`-" if p_index == len(members) - 1 else "|-"
            lines.append(
                f"{indent}{branch} {path['url']} {path['state']} {path['checker']} "
                f"share={path['share']:.2f} bytes={path['bytes']} ios={path['ios']}"
                + _path_extras(path)
            )
    return lines
