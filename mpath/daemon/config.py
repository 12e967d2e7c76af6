"""The ``[daemon]`` section of the configuration file: what the service owns and where.

The device settings (policy, timeouts, blacklist, aliases in ``[[multipaths]]``, CHAP)
stay where every command reads them (docs/config.md); this section adds only what a
long-running service needs::

    [daemon]
    listen_dir = "/run/mpath"                  # control.sock, and nbd.sock: every map's export
    nbd_tcp = "127.0.0.1:10809"                # the same exports on loopback TCP as well
    state_file = "/var/lib/mpath/bindings.json"  # WWID -> name, stable across restarts
    metrics = "127.0.0.1:9586"                 # Prometheus endpoint (loopback only)
    portals = ["198.18.1.2", "198.18.2.2"]     # SendTargets discovery: every LUN found
    targets = []                               # limit discovery to these IQNs

    [[daemon.maps]]                            # a LUN by its paths, without discovery
    paths = ["iscsi://198.18.3.2/iqn.2026-01.org.example:lun/1", "/dev/sdc"]
    alias = "db"                               # else [[multipaths]] alias, else a binding
    priorities = [50, 10]                      # one per path: path groups, best first
    path_args = ["4", "1"]                     # one per path: the policy's path arguments

The file is read with the same strictness as the rest: unknown keys (with a "did you
mean"), wrong types and bad addresses raise :class:`~mpath.config.ConfigError` naming
the file and line.
"""

from __future__ import annotations

import difflib
import ipaddress
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mpath.config import ConfigError
from mpath.config.source import KeyPath, SourceMap
from mpath.errors import MpathError
from mpath.nbd.listen import ListenAddress

DEFAULT_LISTEN_DIR = Path("/run/mpath")
DEFAULT_STATE_FILE = Path("/var/lib/mpath/bindings.json")
CONTROL_SOCKET_NAME = "control.sock"
NBD_SOCKET_NAME = "nbd.sock"
KEYS = ("listen_dir", "state_file", "metrics", "nbd_tcp", "portals", "targets", "maps")
MAP_KEYS = ("paths", "alias", "priorities", "path_args")
#: Largest priority accepted (dm-multipath's prioritizers answer far below it).
MAX_PRIORITY = 1_000_000
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+-]{0,63}")


@dataclass(frozen=True, slots=True)
class MapSpec:
    """A LUN named in ``[[daemon.maps]]``: its paths and, optionally, its name, one
    priority per path (paths of equal priority form a path group; the best group with
    a usable path carries the I/O, as ``DeviceSettings.priorities``), and the policy's
    arguments per path (as ``--path-args``: ``DeviceSettings.path_args``)."""

    paths: tuple[str, ...]
    alias: str | None = None
    priorities: tuple[int, ...] | None = None
    path_args: tuple[tuple[str, ...], ...] | None = None

    def per_path(self) -> frozenset[tuple[str, int | None, tuple[str, ...] | None]]:
        """Each path with its priority and arguments: what a reload compares (the
        order of ``paths`` in the file does not matter, what each path gets does)."""
        priorities = self.priorities or (None,) * len(self.paths)
        path_args = self.path_args or (None,) * len(self.paths)
        return frozenset(zip(self.paths, priorities, path_args, strict=True))

    def describe(self) -> dict[str, Any]:
        return {
            "paths": list(self.paths),
            "alias": self.alias,
            "priorities": None if self.priorities is None else list(self.priorities),
            "path_args": None if self.path_args is None else [" ".join(a) for a in self.path_args],
        }


@dataclass(frozen=True, slots=True)
class MetricsAddress:
    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class DaemonConfig:
    """The service's own settings, with where each came from (for ``show config``)."""

    listen_dir: Path = DEFAULT_LISTEN_DIR
    state_file: Path = DEFAULT_STATE_FILE
    metrics: MetricsAddress | None = None
    nbd_tcp: ListenAddress | None = None
    portals: tuple[str, ...] = ()
    targets: tuple[str, ...] = ()
    maps: tuple[MapSpec, ...] = ()
    origins: dict[str, str] = field(default_factory=dict)

    @property
    def control_socket(self) -> Path:
        return self.listen_dir / CONTROL_SOCKET_NAME

    @property
    def nbd_socket(self) -> Path:
        """The one NBD server's Unix socket: every map is an export on it."""
        return self.listen_dir / NBD_SOCKET_NAME

    @property
    def nbd_addresses(self) -> tuple[ListenAddress, ...]:
        unix = ListenAddress("unix", path=str(self.nbd_socket))
        return (unix,) if self.nbd_tcp is None else (unix, self.nbd_tcp)

    def describe(self) -> dict[str, Any]:
        return {
            "listen_dir": str(self.listen_dir),
            "control_socket": str(self.control_socket),
            "nbd_socket": str(self.nbd_socket),
            "nbd_tcp": None if self.nbd_tcp is None else str(self.nbd_tcp),
            "state_file": str(self.state_file),
            "metrics": None if self.metrics is None else str(self.metrics),
            "portals": list(self.portals),
            "targets": list(self.targets),
            "maps": [m.describe() for m in self.maps],
            "origins": dict(self.origins),
        }


def parse_metrics_address(text: str) -> MetricsAddress:
    """``HOST:PORT`` on a loopback address: the endpoint has no authentication."""
    host, sep, port_text = text.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ValueError(f"metrics address {text!r}: expected HOST:PORT, e.g. 127.0.0.1:9586")
    if host != "localhost":
        try:
            loopback = ipaddress.ip_address(host).is_loopback
        except ValueError:
            raise ValueError(f"metrics address {text!r}: HOST must be an IP address") from None
        if not loopback:
            raise ValueError(
                f"metrics address {text!r}: only loopback is served (no authentication)"
            )
    return MetricsAddress(host, int(port_text))


def parse_nbd_tcp(text: str) -> ListenAddress:
    """``HOST:PORT`` of the NBD exports on TCP: loopback only (an export has no
    authentication); port 0 picks one."""
    try:
        address = ListenAddress.parse(f"tcp:{text}")
    except MpathError:
        raise ValueError(
            f"NBD address {text!r}: expected HOST:PORT with an IP address, e.g. 127.0.0.1:10809"
        ) from None
    if not address.is_local:
        raise ValueError(
            f"NBD address {text!r}: only loopback is served (an NBD export has no "
            "authentication; tunnel it with ssh -L)"
        )
    return address


def load_daemon_config(file: Path | None, *, found: bool = True) -> DaemonConfig:
    """Read ``[daemon]`` from ``file`` (the file :func:`mpath.config.load_config` read;
    None or not found: built-in defaults). The rest of the file was validated there."""
    if file is None or not found:
        return DaemonConfig()
    try:
        text = file.read_text(encoding="utf-8")
        document = tomllib.loads(text)
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read: {exc}", file=file) from None
    return _Reader(file, SourceMap(text)).daemon(document.get("daemon", {}))


class _Reader:
    def __init__(self, file: Path, source: SourceMap) -> None:
        self.file = file
        self.source = source

    def error(self, path: KeyPath, problem: str) -> ConfigError:
        return ConfigError(problem, file=self.file, line=self.source.line_of(path))

    def origin(self, path: KeyPath) -> str:
        line = self.source.line_of(path)
        return f"{self.file}:{line}" if line else str(self.file)

    def strings(self, value: object, path: KeyPath, what: str) -> tuple[str, ...]:
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise self.error(path, f"{what} must be an array of non-empty strings")
        return tuple(value)

    def daemon(self, table: object) -> DaemonConfig:
        if not isinstance(table, dict):
            raise self.error(("daemon",), "[daemon] must be a table")
        for key in table:
            if key not in KEYS:
                close = difflib.get_close_matches(key, KEYS, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else f" (known: {', '.join(KEYS)})"
                raise self.error(("daemon", key), f"unknown key {key!r} in [daemon]{hint}")
        values: dict[str, Any] = {}
        origins: dict[str, str] = {}
        for key in ("listen_dir", "state_file"):
            if key in table:
                raw = table[key]
                if not isinstance(raw, str) or not raw.startswith("/"):
                    raise self.error(("daemon", key), f"{key} must be an absolute path")
                values[key] = Path(raw)
                origins[key] = self.origin(("daemon", key))
        if "metrics" in table:
            raw = table["metrics"]
            if not isinstance(raw, str):
                raise self.error(("daemon", "metrics"), "metrics must be a string HOST:PORT")
            try:
                values["metrics"] = parse_metrics_address(raw)
            except ValueError as exc:
                raise self.error(("daemon", "metrics"), str(exc)) from None
            origins["metrics"] = self.origin(("daemon", "metrics"))
        if "nbd_tcp" in table:
            raw = table["nbd_tcp"]
            if not isinstance(raw, str):
                raise self.error(("daemon", "nbd_tcp"), "nbd_tcp must be a string HOST:PORT")
            try:
                values["nbd_tcp"] = parse_nbd_tcp(raw)
            except ValueError as exc:
                raise self.error(("daemon", "nbd_tcp"), str(exc)) from None
            origins["nbd_tcp"] = self.origin(("daemon", "nbd_tcp"))
        for key in ("portals", "targets"):
            if key in table:
                values[key] = self.strings(table[key], ("daemon", key), key)
                origins[key] = self.origin(("daemon", key))
        if "maps" in table:
            values["maps"] = self.maps(table["maps"])
        return DaemonConfig(**values, origins=origins)

    def maps(self, value: object) -> tuple[MapSpec, ...]:
        if not isinstance(value, list):
            raise self.error(("daemon", "maps"), "maps must be an array of tables: [[daemon.maps]]")
        specs: list[MapSpec] = []
        aliases: set[str] = set()
        for index, item in enumerate(value):
            path: KeyPath = ("daemon", "maps", index)
            if not isinstance(item, dict):
                raise self.error(path, f"[[daemon.maps]] entry {index + 1} must be a table")
            for key in item:
                if key not in MAP_KEYS:
                    raise self.error(
                        (*path, key),
                        f"unknown key {key!r} in [[daemon.maps]] (known: {', '.join(MAP_KEYS)})",
                    )
            if "paths" not in item:
                raise self.error(path, f"[[daemon.maps]] entry {index + 1} needs paths")
            paths = self.strings(item["paths"], (*path, "paths"), "paths")
            alias = item.get("alias")
            if alias is not None:
                if not isinstance(alias, str) or not _NAME.fullmatch(alias):
                    raise self.error(
                        (*path, "alias"),
                        "alias must be 1-64 letters, digits, '_', '.', '+', '-' "
                        "(it is the NBD export name, part of a URI)",
                    )
                if alias in aliases:
                    raise self.error((*path, "alias"), f"alias {alias!r} given twice")
                aliases.add(alias)
            priorities = self.priorities(item, path, len(paths))
            path_args = self.path_args(item, path, len(paths))
            specs.append(MapSpec(paths, alias, priorities, path_args))
        return tuple(specs)

    def priorities(self, item: dict[str, Any], path: KeyPath, count: int) -> tuple[int, ...] | None:
        if "priorities" not in item:
            return None
        raw = item["priorities"]
        where = (*path, "priorities")
        if not isinstance(raw, list) or not all(
            isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= MAX_PRIORITY for v in raw
        ):
            raise self.error(
                where, f"priorities must be an array of integers 0..{MAX_PRIORITY}, one per path"
            )
        if len(raw) != count:
            raise self.error(
                where,
                f"priorities has {len(raw)} value(s) for {count} path(s): give one per path, "
                "in the order of paths",
            )
        return tuple(raw)

    def path_args(
        self, item: dict[str, Any], path: KeyPath, count: int
    ) -> tuple[tuple[str, ...], ...] | None:
        if "path_args" not in item:
            return None
        raw = item["path_args"]
        where = (*path, "path_args")
        if not isinstance(raw, list) or not all(isinstance(v, str) for v in raw):
            raise self.error(
                where,
                'path_args must be an array of strings, one per path (e.g. ["4", "1"] for '
                "quota's weights; docs/selectors.md)",
            )
        if len(raw) != count:
            raise self.error(
                where,
                f"path_args has {len(raw)} value(s) for {count} path(s): give one per path, "
                "in the order of paths",
            )
        return tuple(tuple(text.split()) for text in raw)


def valid_map_name(name: str) -> bool:
    """A map's name is its NBD export name, written in URIs and file names of scripts:
    letters, digits and ``_.+-`` only, not starting with a dot."""
    return bool(_NAME.fullmatch(name))


__all__ = [
    "CONTROL_SOCKET_NAME",
    "DaemonConfig",
    "MapSpec",
    "MetricsAddress",
    "load_daemon_config",
    "parse_metrics_address",
    "parse_nbd_tcp",
    "valid_map_name",
]
