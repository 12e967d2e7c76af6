"""The service: many multipath devices ("maps"), each exported over NBD.

:class:`Daemon` is a thin owner of library objects. Each map is one
:class:`~mpath.filter.device.MultipathDevice` opened through the one device opener
(:func:`mpath.api.open_device`, so the configuration, blacklist and checkers apply as
for every command) and one export, named after the map, of the daemon's one
:class:`~mpath.nbd.NbdServer` (Unix socket ``LISTEN_DIR/nbd.sock``, and loopback TCP
if ``nbd_tcp`` is set), so ``nbdinfo --list`` on that socket names every map.

Everything runs on one event loop. What ``show`` reports is read from memory (the
devices' counters, the monitors' verdicts); nothing on the way to an answer awaits a
path, a login or a reload, so a hung path or a slow reconfigure never delays it.
Reloads (SIGHUP, ``ctl reconfigure``) run one at a time in the background: maps whose
paths and resolved settings did not change are left alone (their clients see
nothing), changed ones are drained and reopened, removed ones drained and closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mpath.api import DeviceRequest, OpenedDevice, open_device
from mpath.config import Config, load_config
from mpath.daemon.bindings import Bindings
from mpath.daemon.config import DaemonConfig, MapSpec, load_daemon_config, valid_map_name
from mpath.daemon.holds import AdminHolds
from mpath.errors import MpathError, UsageError
from mpath.filter.device import MultipathDevice
from mpath.filter.path import Path as DevicePath
from mpath.filter.path import PathState
from mpath.filter.provisioning import Provisioned
from mpath.nbd import Export, NbdServer, ServeSettings

log = logging.getLogger(__name__)

#: How long ``fail path`` waits for the path's session to close before answering.
FAIL_PATH_TIMEOUT = 2.0


@dataclass(slots=True)
class MapCounters:
    """Counters the daemon keeps per map (the device keeps its own I/O counters)."""

    table_loads: int = 1
    admin_fails: int = 0
    admin_reinstates: int = 0
    group_switches: int = 0
    resizes: int = 0


@dataclass(slots=True)
class DaemonMap:
    """One LUN the daemon owns: its device, its export and its bookkeeping."""

    name: str
    key: frozenset[str]
    spec: MapSpec
    opened: OpenedDevice
    holds: AdminHolds
    export: Export
    socket: Path  # the daemon's NBD socket, shared by every map
    uris: list[str]  # the export's URIs: Unix socket first, then TCP if configured
    opened_at: float
    counters: MapCounters = field(default_factory=MapCounters)

    @property
    def device(self) -> MultipathDevice:
        return self.opened.device

    @property
    def wwid(self) -> str:
        lun = self.device.lun
        return lun.wwid if lun is not None else ""

    @property
    def uri(self) -> str:
        return self.uris[0]

    @property
    def tcp_uri(self) -> str | None:
        return self.uris[1] if len(self.uris) > 1 else None

    @property
    def clients(self) -> int:
        """NBD clients using the map's export now."""
        return len(self.export.clients)

    def path(self, spec: str) -> DevicePath:
        """A path of this map by its index (from 1) or its URL."""
        for path in self.device.path_objects:
            if spec in (str(path.index), path.url):
                return path
        raise UsageError(f"map {self.name} has no path {spec!r}")


@dataclass(slots=True)
class ReloadReport:
    kept: list[str] = field(default_factory=list)
    reopened: list[str] = field(default_factory=list)
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)

    def describe(self) -> dict[str, list[str]]:
        return dataclasses.asdict(self)


class Daemon:
    """Owns the maps, applies reloads, and answers the control commands."""

    def __init__(
        self,
        config_file: str | None = None,
        *,
        listen_dir: Path | None = None,
        overrides: dict[str, Any] | None = None,
    ) -> None:
        self.config_file = config_file
        self._listen_dir_override = listen_dir
        self._overrides = overrides or {}
        self.config = Config()
        self.daemon_config = DaemonConfig()
        self.maps: dict[str, DaemonMap] = {}
        self.problems: list[str] = []
        self.started_at = time.time()
        self.reloads = 0
        self.last_reload: dict[str, Any] | None = None
        self._reload_lock = asyncio.Lock()
        self._bindings: Bindings | None = None
        self.nbd: NbdServer | None = None  # one server, one export per map
        self._tasks: set[asyncio.Task[None]] = set()

    # -- configuration --------------------------------------------------------------------

    def _load(self) -> tuple[Config, DaemonConfig]:
        config = load_config(self.config_file)
        daemon = load_daemon_config(config.file, found=config.found)
        if self._listen_dir_override is not None:
            daemon = dataclasses.replace(
                daemon,
                listen_dir=self._listen_dir_override,
                origins={**daemon.origins, "listen_dir": "command line"},
            )
        for key, value in self._overrides.items():
            daemon = dataclasses.replace(
                daemon, **{key: value}, origins={**daemon.origins, key: "command line"}
            )
        return config, daemon

    async def _specs(self, config: Config, daemon: DaemonConfig) -> list[MapSpec]:
        """The LUNs to own: ``[[daemon.maps]]`` plus every LUN discovery finds."""
        specs = list(daemon.maps)
        if daemon.portals:
            from mpath.discovery.iscsi import discover

            result = await discover(daemon.portals, chap=config.chap, targets=daemon.targets)
            for problem in result.problems:
                log.warning("discovery: %s", problem.line())
            named = {frozenset(s.paths) for s in specs}
            for device in result.devices:
                urls = tuple(p.url for p in device.paths)
                if frozenset(urls) not in named:
                    specs.append(MapSpec(urls))
        return specs

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Read the configuration and open every map (those that fail are reported and
        retried at the next reload; the daemon runs with the rest)."""
        self.config, self.daemon_config = self._load()
        self._prepare_listen_dir()
        self._bindings = Bindings(self.daemon_config.state_file)
        nbd = NbdServer()
        await nbd.start(*self.daemon_config.nbd_addresses)
        self.nbd = nbd
        specs = await self._specs(self.config, self.daemon_config)
        results = await asyncio.gather(
            *(self._open_map(spec) for spec in specs), return_exceptions=True
        )
        for spec, result in zip(specs, results, strict=True):
            if isinstance(result, BaseException):
                if not isinstance(result, MpathError):
                    raise result
                self._problem(spec, result)

    def _prepare_listen_dir(self) -> None:
        directory = self.daemon_config.listen_dir
        try:
            directory.mkdir(parents=True, exist_ok=True)
            # Non-root users reach the control socket (for ``show``) through it.
            os.chmod(directory, 0o755)
        except OSError as exc:
            raise UsageError(f"cannot use listen_dir {directory}: {exc.strerror or exc}") from None

    def _problem(self, spec: MapSpec, error: BaseException) -> None:
        line = f"map {spec.alias or ' '.join(spec.paths)}: {error}"
        log.error("%s", line)
        self.problems.append(line)

    async def _open_map(self, spec: MapSpec) -> DaemonMap:
        nbd = self.nbd
        assert nbd is not None, "start() listens before maps are opened"
        holds = AdminHolds()
        request = DeviceRequest(
            list(spec.paths),
            self.config_file,
            path_args=spec.path_args,
            priorities=spec.priorities,
        )
        opened = await open_device(request, monitor=holds.factory())
        try:
            name = self._name(spec, opened)
            device = opened.device
            description = (
                f"mpath map {name}: LUN {opened.resolution.wwid} over "
                f"{len(spec.paths)} path(s), policy {device.policy}"
            )
            export = nbd.add(
                name, device, ServeSettings(description=description), Provisioned(device)
            )
        except BaseException:
            await opened.device.close()
            raise
        entry = DaemonMap(
            name,
            frozenset(spec.paths),
            spec,
            opened,
            holds,
            export,
            self.daemon_config.nbd_socket,
            nbd.uris_for(name),
            time.time(),
        )
        self.maps[name] = entry
        log.info(
            "map %s: %s over %d path(s), policy %s, exported at %s",
            name,
            entry.wwid,
            len(spec.paths),
            device.policy,
            entry.uri,
        )
        return entry

    def _name(self, spec: MapSpec, opened: OpenedDevice) -> str:
        wwid = opened.resolution.wwid or ""
        name = spec.alias or opened.resolution.alias.value
        if name is None:
            assert self._bindings is not None
            taken = set(self.maps)
            name = self._bindings.name_for(wwid, taken)
        if not valid_map_name(name):
            raise UsageError(
                f"map name {name!r} (LUN {wwid}) cannot be an export name: use letters, "
                "digits, '_', '.', '+', '-'"
            )
        if name in self.maps:
            raise UsageError(f"map name {name!r} (LUN {wwid}) is already used by another LUN")
        return name

    async def _close_map(self, entry: DaemonMap) -> bool:
        """Remove the export (unlisted and refused to new clients at once; its clients'
        requests in flight finish, then they are disconnected), flush, close the device."""
        self.maps.pop(entry.name, None)
        clean = True
        nbd = self.nbd
        if nbd is not None and not nbd.shutting_down and entry.name in nbd.exports:
            clean = await nbd.remove(entry.name)
        await entry.device.close()
        log.info("map %s closed%s", entry.name, "" if clean else " (requests abandoned)")
        return clean

    async def stop(self) -> bool:
        """Close every map (as ``mpath serve`` does on SIGTERM); True when nothing was lost.

        The NBD server stops first (no new clients; every export drains at once), then
        each device is closed.
        """
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        clean = True
        if self.nbd is not None:
            clean = await self.nbd.shutdown()
        results = await asyncio.gather(*(self._close_map(m) for m in list(self.maps.values())))
        return clean and all(results)

    def abort(self) -> None:
        """A second SIGTERM: stop waiting for requests in flight."""
        if self.nbd is not None:
            self.nbd.abort()

    async def reload(self) -> ReloadReport:
        """Apply the configuration file as it is now. One reload at a time.

        Raises :class:`~mpath.config.ConfigError` (and changes nothing) when the new
        file is invalid.
        """
        async with self._reload_lock:
            config, daemon = self._load()
            if daemon.listen_dir != self.daemon_config.listen_dir:
                log.warning("listen_dir changes only at restart; keeping %s",
                            self.daemon_config.listen_dir)  # fmt: skip
                daemon = dataclasses.replace(daemon, listen_dir=self.daemon_config.listen_dir)
            if daemon.nbd_tcp != self.daemon_config.nbd_tcp:
                log.warning("nbd_tcp changes only at restart; keeping %s",
                            self.daemon_config.nbd_tcp or "none")  # fmt: skip
                daemon = dataclasses.replace(daemon, nbd_tcp=self.daemon_config.nbd_tcp)
            specs = await self._specs(config, daemon)
            self.config, self.daemon_config = config, daemon
            report = ReloadReport()
            by_key = {m.key: m for m in self.maps.values()}
            wanted = {frozenset(s.paths): s for s in specs}
            for key, gone in by_key.items():
                if key not in wanted:
                    await self._close_map(gone)
                    report.removed.append(gone.name)
            for key, spec in wanted.items():
                entry = by_key.get(key)
                try:
                    if entry is None:
                        report.added.append((await self._open_map(spec)).name)
                    elif self._unchanged(entry, spec, config):
                        report.kept.append(entry.name)
                    else:
                        counters = entry.counters
                        await self._close_map(entry)
                        reopened = await self._open_map(spec)
                        reopened.counters = counters
                        counters.table_loads += 1
                        report.reopened.append(reopened.name)
                except MpathError as exc:
                    self._problem(spec, exc)
                    report.failed.append(spec.alias or " ".join(spec.paths))
            self.reloads += 1
            self.last_reload = {"at": time.time(), **report.describe()}
            log.info(
                "reconfigured: kept %s, reopened %s, added %s, removed %s, failed %s",
                *(", ".join(v) or "none" for v in report.describe().values()),
            )
            return report

    def _unchanged(self, entry: DaemonMap, spec: MapSpec, config: Config) -> bool:
        """Same paths (each with the same priority and arguments), same name and same
        resolved settings: nothing to do (the resolution is refreshed so ``show
        config`` names the origins as written now)."""
        old = entry.opened.resolution
        new = config.resolve(wwid=old.wwid, vendor=old.vendor, product=old.product)
        if spec.alias != entry.spec.alias or new.alias.value != old.alias.value:
            return False
        if spec.per_path() != entry.spec.per_path():
            return False
        if new.device_settings() != old.device_settings():
            return False
        entry.opened.resolution = new
        entry.opened.config = config
        return True

    # -- control commands that change things --------------------------------------------------

    async def add_map(self, paths: Sequence[str], alias: str | None = None) -> DaemonMap:
        """Open a LUN by its paths and export it now (``ctl add map``), until the next
        reload, which applies the configuration file as written.

        Not while a reload runs (it waits for it). Refuses paths another map uses and a
        bad or taken name, with a :class:`UsageError`.
        """
        if not paths:
            raise UsageError("add map: give the LUN's paths (iSCSI URLs or block devices)")
        if alias is not None and not valid_map_name(alias):
            raise UsageError(
                f"alias {alias!r}: use 1-64 letters, digits, '_', '.', '+', '-' "
                "(it is the NBD export name)"
            )
        async with self._reload_lock:
            for entry in self.maps.values():
                shared = [p for p in paths if p in entry.key]
                if shared:
                    raise UsageError(f"path {shared[0]} is already in map {entry.name}")
            entry = await self._open_map(MapSpec(tuple(paths), alias))
        log.info("map %s added by the administrator", entry.name)
        return entry

    async def del_map(self, name: str) -> bool:
        """Stop serving map ``name`` (``ctl del map``) until the next reload: its export
        is removed (requests in flight finish), the LUN flushed and closed. True when
        nothing was abandoned."""
        async with self._reload_lock:
            entry = self.map(name)
            clean = await self._close_map(entry)
        log.info("map %s removed by the administrator", name)
        return clean

    def find_path(self, spec: str) -> tuple[DaemonMap, DevicePath]:
        """A path named ``MAP:INDEX``, ``MAP:URL`` or by its URL alone."""
        name, sep, rest = spec.partition(":")
        if sep and name in self.maps:
            entry = self.maps[name]
            return entry, entry.path(rest)
        found = [
            (entry, path)
            for entry in self.maps.values()
            for path in entry.device.path_objects
            if path.url == spec
        ]
        if not found:
            known = ", ".join(f"{m}:1" for m in self.maps) or "no maps"
            raise UsageError(f"no path {spec!r} (name one as MAP:INDEX or by URL; e.g. {known})")
        if len(found) > 1:
            raise UsageError(f"path {spec!r} belongs to several maps: name it as MAP:INDEX")
        return found[0]

    async def fail_path(self, spec: str) -> dict[str, Any]:
        """Take a path out of use until ``reinstate path``; I/O moves to the others."""
        entry, path = self.find_path(spec)
        entry.holds.held.add(path)
        entry.counters.admin_fails += 1
        failing = asyncio.ensure_future(entry.device.fail(path, "failed by the administrator"))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(failing), FAIL_PATH_TIMEOUT)
        log.warning("map %s path %d (%s): failed by the administrator", entry.name,
                    path.index, path.url)  # fmt: skip
        return {"map": entry.name, "path": path.index, "url": path.url, "state": path.state.value}

    def reinstate_path(self, spec: str) -> dict[str, Any]:
        """Lift an administrator's hold and bring the path back: at once if it is
        logged in, else after a login in the background (the answer says ``pending``)."""
        entry, path = self.find_path(spec)
        entry.holds.held.discard(path)
        entry.counters.admin_reinstates += 1
        if path.state is PathState.FAILED:
            if path.transport.connected:
                entry.device.reinstate(path)
            else:
                self._spawn(self._log_in_and_reinstate(entry, path))
        log.info("map %s path %d (%s): reinstated by the administrator%s", entry.name,
                 path.index, path.url,
                 "" if path.state is PathState.ACTIVE else " (logging in)")  # fmt: skip
        return {
            "map": entry.name,
            "path": path.index,
            "url": path.url,
            "state": path.state.value,
            "pending": path.state is not PathState.ACTIVE,
        }

    async def _log_in_and_reinstate(self, entry: DaemonMap, path: DevicePath) -> None:
        """Log a reinstated path in and check its identity (as the checker would)."""
        try:
            async with asyncio.timeout(FAIL_PATH_TIMEOUT * 5):
                reason = await entry.device.verify_identity(path)
        except TimeoutError:
            reason = "login timed out"
        if path.state is not PathState.FAILED or path in entry.holds.held:
            return
        if reason is None:
            entry.device.reinstate(path)
        else:
            log.warning("map %s path %d (%s): not reinstated yet: %s (the checker retries)",
                        entry.name, path.index, path.url, reason)  # fmt: skip

    def _spawn(self, coro: Any) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def resize_map(self, name: str) -> dict[str, Any]:
        """Re-read map ``name``'s capacity after its LUN grew (``ctl resize map``).

        New NBD clients are told the new size; connected ones keep the size they were
        told at connection (NBD cannot announce a change) until they reconnect. A LUN
        that shrank is refused (:class:`~mpath.errors.DeviceError`), the size kept.
        """
        entry = self.map(name)
        change = await entry.device.refresh_capacity()
        if change.grown:
            entry.counters.resizes += 1
        log.info("map %s: resize: %d -> %d bytes", name, change.old_bytes, change.new_bytes)
        return {
            "map": name,
            "old_size_bytes": change.old_bytes,
            "size_bytes": change.new_bytes,
            "grown": change.grown,
            "paths": change.reports,
        }

    def switch_group(self, name: str, number: int) -> dict[str, Any]:
        """Make path group ``number`` of map ``name`` carry its I/O (``ctl switchgroup``)."""
        entry = self.map(name)
        priority = entry.device.switch_group(number)
        entry.counters.group_switches += 1
        log.info("map %s: switched to path group %d (priority %d) by the administrator",
                 name, number, priority)  # fmt: skip
        return {"map": name, "group": number, "priority": priority}

    def reset_stats(self) -> None:
        for entry in self.maps.values():
            entry.counters = MapCounters(table_loads=0)

    def map(self, name: str) -> DaemonMap:
        entry = self.maps.get(name)
        if entry is None:
            known = ", ".join(sorted(self.maps)) or "none"
            raise UsageError(f"no map named {name!r} (maps: {known})")
        return entry

    def require_maps(self, names: Sequence[str]) -> list[DaemonMap]:
        return [self.map(n) for n in names] if names else list(self.maps.values())
