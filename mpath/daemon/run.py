"""Running the daemon: start, signals, systemd notifications, shutdown.

* SIGHUP (systemd's ExecReload) and ``mpath ctl reconfigure`` reload the configuration
  (:meth:`~mpath.daemon.service.Daemon.reload`); an invalid file is logged and changes
  nothing.
* SIGTERM or SIGINT stops: no new clients, requests in flight finish (bounded), every
  LUN flushed and closed, as ``mpath serve`` does; a second one abandons what is still
  in flight.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mpath.daemon.config import MetricsAddress
from mpath.daemon.control import ControlServer
from mpath.daemon.metrics import MetricsServer
from mpath.daemon.notify import Notifier
from mpath.daemon.service import Daemon
from mpath.errors import MpathError
from mpath.nbd import ListenAddress

log = logging.getLogger(__name__)
ReadyCallback = Callable[[dict[str, Any]], None]


class Runner:
    """One daemon's life on the running event loop."""

    def __init__(self, daemon: Daemon, notifier: Notifier) -> None:
        self.daemon = daemon
        self.notifier = notifier
        self.stop = asyncio.Event()
        self.signals: list[str] = []
        self.tasks: set[asyncio.Task[Any]] = set()
        self.control: ControlServer | None = None
        self.metrics: MetricsServer | None = None

    async def reload(self) -> dict[str, Any]:
        self.notifier.reloading()
        try:
            return (await self.daemon.reload()).describe()
        finally:
            self.notifier.send(READY=1, STATUS=status_line(self.daemon))

    def _spawn(self, coro: Any) -> None:
        task: asyncio.Task[Any] = asyncio.ensure_future(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def on_hup(self) -> None:
        async def run() -> None:
            try:
                await self.reload()
            except MpathError as exc:
                log.error("reload failed, configuration unchanged: %s", exc)

        self._spawn(run())

    def on_stop(self, signum: signal.Signals) -> None:
        self.signals.append(signum.name)
        if len(self.signals) > 1:
            log.warning("%s again: abandoning requests in flight", signum.name)
            self.daemon.abort()
        self.stop.set()

    async def start(self) -> dict[str, Any]:
        """Open the maps, then the control socket and metrics; what is ready, as JSON."""
        self.notifier.status("opening maps")
        await self.daemon.start()
        self.control = ControlServer(self.daemon, self.daemon.daemon_config.control_socket,
                                     self.reload)  # fmt: skip
        await self.control.start()
        if self.daemon.daemon_config.metrics is not None:
            self.metrics = MetricsServer(self.daemon, self.daemon.daemon_config.metrics)
            await self.metrics.start()
        if self.notifier.watchdog_interval is not None:
            self._spawn(_watchdog(self.notifier, self.notifier.watchdog_interval))
        self.notifier.ready(status_line(self.daemon))
        log.info("%s", status_line(self.daemon))
        metrics = self.metrics
        nbd = self.daemon.nbd
        return {
            "control_socket": str(self.control.path),
            "nbd": [] if nbd is None else nbd.uris_for(""),
            "metrics": None
            if metrics is None
            else f"http://{metrics.address.host}:{metrics.port}/metrics",
            "maps": {name: m.uri for name, m in self.daemon.maps.items()},
            "problems": list(self.daemon.problems),
        }

    async def close(self) -> bool:
        for task in list(self.tasks):
            task.cancel()
        if self.control is not None:
            await self.control.close()
        if self.metrics is not None:
            await self.metrics.close()
        return await self.daemon.stop()


async def run_daemon(
    config_file: str | None,
    *,
    listen_dir: Path | None = None,
    metrics: MetricsAddress | None = None,
    nbd_tcp: ListenAddress | None = None,
    on_ready: ReadyCallback | None = None,
    notifier: Notifier | None = None,
) -> bool:
    """Serve until SIGTERM/SIGINT; True when shutdown lost nothing."""
    overrides: dict[str, Any] = {}
    if metrics is not None:
        overrides["metrics"] = metrics
    if nbd_tcp is not None:
        overrides["nbd_tcp"] = nbd_tcp
    runner = Runner(
        Daemon(config_file, listen_dir=listen_dir, overrides=overrides), notifier or Notifier()
    )
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGHUP, runner.on_hup)
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, runner.on_stop, signum)
    try:
        ready = await runner.start()
        if on_ready is not None:
            on_ready(ready)
        await runner.stop.wait()
        log.info("%s: stopping", runner.signals[0])
        runner.notifier.stopping()
    finally:
        for signum in (signal.SIGHUP, signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
        clean = await runner.close()
    log.info("stopped%s", "" if clean else " (some requests were abandoned)")
    return clean


def status_line(daemon: Daemon) -> str:
    """What ``systemctl status`` shows: maps, paths up, problems."""
    paths = [p for m in daemon.maps.values() for p in m.device.path_objects]
    up = sum(1 for p in paths if p.state.value == "active")
    problems = f", {len(daemon.problems)} problem(s)" if daemon.problems else ""
    return f"serving {len(daemon.maps)} map(s), {up}/{len(paths)} paths up{problems}"


async def _watchdog(notifier: Notifier, interval: float) -> None:
    """Tell systemd the loop is alive; a stuck loop stops these and gets restarted."""
    while True:
        notifier.watchdog()
        await asyncio.sleep(interval)  # periodic keep-alive, not synchronisation
