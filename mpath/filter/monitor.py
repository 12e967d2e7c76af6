"""Who watches failed paths and brings them back: the monitor seam of the filter layer.

The device fails a path itself the moment a command shows it broken (error, stall,
path-error sense): that is the fast half of failure reporting. Bringing a path back —
and noticing failures between I/Os — is a monitor's job. The device tells its monitor
about each failure; the monitor calls :meth:`MultipathDevice.verify_identity` and
:meth:`MultipathDevice.reinstate` (or :meth:`MultipathDevice.fail`) when it decides.

:class:`ReconnectMonitor` is the simple built-in one: it retries the login of a failed
path every ``reconnect_interval`` seconds and reinstates it as soon as it works. The
path checkers (mpath.checkers) provide a monitor with health checks of idle paths,
flap damping and failback policies.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from mpath.filter.path import Path
    from mpath.settings import DeviceSettings


class MonitoredDevice(Protocol):
    """What a monitor uses of its device (a :class:`~mpath.filter.device.MultipathDevice`
    provides it). A protocol, not the class, so this seam does not import the device
    that imports it."""

    @property
    def settings(self) -> DeviceSettings: ...

    @property
    def path_objects(self) -> list[Path]: ...

    async def fail(self, path: Path, reason: str) -> None: ...

    async def verify_identity(self, path: Path) -> str | None: ...

    def reinstate(self, path: Path) -> None: ...

    def selector_status(self) -> dict[str, Any]:
        """The selector's state (the checker monitor logs its plan at debug level)."""
        ...


class PathMonitor(Protocol):
    """What a device asks of its monitor."""

    def start(self) -> None:
        """The device is open: begin watching (create tasks on the running loop)."""

    def path_failed(self, path: Path) -> None:
        """The device just failed ``path`` (its session is being torn down)."""

    async def close(self) -> None:
        """Stop every task; the device is closing."""


MonitorFactory = Callable[[MonitoredDevice], PathMonitor]


class ReconnectMonitor:
    """Reinstate a failed path as soon as it logs in again and shows the same LUN."""

    def __init__(self, device: MonitoredDevice) -> None:
        self._device = device
        self._tasks: dict[Path, asyncio.Task[None]] = {}

    def start(self) -> None:
        """Nothing to do until a path fails."""

    def path_failed(self, path: Path) -> None:
        if path not in self._tasks:
            self._tasks[path] = asyncio.ensure_future(self._recover(path))

    async def _recover(self, path: Path) -> None:
        try:
            while True:
                await asyncio.sleep(self._device.settings.reconnect_interval)  # retry pacing
                reason = await self._device.verify_identity(path)
                if reason is None:
                    self._device.reinstate(path)
                    return
                path.last_failure = reason
                if reason.startswith("identity changed"):
                    return
        finally:
            self._tasks.pop(path, None)

    async def close(self) -> None:
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
