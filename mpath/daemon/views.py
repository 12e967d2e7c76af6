"""What ``mpath ctl show ...`` and the metrics report, read from memory only.

Every function here is synchronous and touches no transport: it reads the devices'
counters, the monitors' last verdicts and the daemon's bookkeeping. That is what lets
``show`` answer at once while a path hangs or a reload runs (docs/daemon.md).
"""

from __future__ import annotations

import os
import time
from typing import Any

from mpath.daemon.service import Daemon, DaemonMap
from mpath.filter.path import Path as DevicePath
from mpath.filter.path import PathState


def _checker(entry: DaemonMap, path: DevicePath) -> str:
    monitor = entry.holds.monitor
    return monitor.checker_state(path).value if monitor is not None else "unchecked"


def _checking(entry: DaemonMap, path: DevicePath) -> bool:
    """A check (or a re-login) of the path is running now: it may be hanging."""
    monitor = entry.holds.monitor
    return monitor is not None and monitor.watch(path).checking


def path_rows(entry: DaemonMap) -> list[dict[str, Any]]:
    device = entry.device
    shares = {row["url"]: row.get("share") for row in device.paths}
    rows = []
    for path in device.path_objects:
        rows.append(
            {
                "map": entry.name,
                "index": path.index,
                "name": f"{entry.name}:{path.index}",
                "url": path.url,
                "state": path.state.value,
                "checker": _checker(entry, path),
                "checking": _checking(entry, path),
                "held_by_admin": path in entry.holds.held,
                "priority": path.priority,
                "share": shares.get(path.url),
                "in_flight": path.in_flight,
                **path.counters(),
                "latency_ms": round(path.latency * 1000, 3),
                "last_failure": path.last_failure or None,
            }
        )
    return rows


def map_row(entry: DaemonMap) -> dict[str, Any]:
    device = entry.device
    lun = device.lun
    paths = device.path_objects
    up = sum(1 for p in paths if p.state is PathState.ACTIVE)
    return {
        "name": entry.name,
        "wwid": entry.wwid,
        "vendor": lun.vendor if lun is not None else None,
        "product": lun.product if lun is not None else None,
        "size_bytes": device.size_bytes,
        "block_size": device.block_size,
        "policy": device.policy,
        "max_commands": device.max_commands,
        "paths_up": up,
        "paths_total": len(paths),
        "export": entry.export.name,
        "uri": entry.uri,
        "tcp_uri": entry.tcp_uri,
        "socket": str(entry.socket),
        "clients": entry.clients,
        "paths": path_rows(entry),
    }


def show_maps(daemon: Daemon) -> list[dict[str, Any]]:
    return [map_row(m) for m in daemon.maps.values()]


def show_paths(daemon: Daemon) -> list[dict[str, Any]]:
    return [row for m in daemon.maps.values() for row in path_rows(m)]


def show_topology(daemon: Daemon) -> list[dict[str, Any]]:
    """Maps with their paths grouped by priority, best group first (``multipath -ll``)."""
    maps = []
    for entry in daemon.maps.values():
        row = map_row(entry)
        rows = row.pop("paths")
        priorities = sorted({r["priority"] for r in rows}, reverse=True)
        status = entry.device.selector_status()
        groups = status.get("groups")
        if groups is None:  # one group, no priorities: active while a path is
            active = {p for p in priorities if any(r["state"] == "active" for r in rows)}
        else:
            active = {g["priority"] for g in groups if g["active"]}
        switched = status.get("switched")
        row["groups"] = [
            {
                "group": number,  # what 'ctl switchgroup NAME N' takes
                "priority": p,
                "active": p in active,
                "switched": p == switched,
                "paths": [r for r in rows if r["priority"] == p],
            }
            for number, p in enumerate(priorities, 1)
        ]
        maps.append(row)
    return maps


def show_config(daemon: Daemon) -> dict[str, Any]:
    """The daemon's settings and every map's resolved settings with their origins."""
    config = daemon.config
    maps = []
    for entry in daemon.maps.values():
        resolution = entry.opened.resolution
        maps.append(
            {
                "name": entry.name,
                "wwid": resolution.wwid,
                "alias": {
                    "value": resolution.alias.value,
                    "origin": resolution.alias.origin,
                    "location": resolution.alias.location,
                },
                "settings": {
                    name: {
                        "value": _plain(setting.value),
                        "origin": setting.origin,
                        "location": setting.location,
                    }
                    for name, setting in resolution.settings.items()
                },
            }
        )
    return {
        "config_file": str(config.file) if config.file is not None else None,
        "config_file_found": config.found,
        "daemon": daemon.daemon_config.describe(),
        "maps": maps,
    }


def _plain(value: object) -> object:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return str(value)


def stats_row(entry: DaemonMap) -> dict[str, Any]:
    device = entry.device
    paths = device.path_objects
    served = entry.export.stats
    return {
        "map": entry.name,
        **device.stats.describe(),
        "path_failures": sum(p.failures for p in paths),
        "paths_up": sum(1 for p in paths if p.state is PathState.ACTIVE),
        "paths_total": len(paths),
        "table_loads": entry.counters.table_loads,
        "admin_fails": entry.counters.admin_fails,
        "admin_reinstates": entry.counters.admin_reinstates,
        "group_switches": entry.counters.group_switches,
        "resizes": entry.counters.resizes,
        "nbd": {
            "clients": entry.clients,
            "connections": served.sessions,
            "requests": served.requests,
            "bytes_read": served.bytes_read,
            "bytes_written": served.bytes_written,
            "errors": served.errors,
        },
        "paths": [
            {
                "name": f"{entry.name}:{p.index}",
                "url": p.url,
                **p.counters(),
            }
            for p in paths
        ],
    }


def show_stats(daemon: Daemon) -> dict[str, Any]:
    return {
        "pid": os.getpid(),
        "uptime_s": round(time.time() - daemon.started_at, 3),
        "reloads": daemon.reloads,
        "last_reload": daemon.last_reload,
        "problems": list(daemon.problems),
        "maps": [stats_row(m) for m in daemon.maps.values()],
    }
