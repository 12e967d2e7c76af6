"""Paths an administrator failed (``mpath ctl fail path``) stay failed until reinstated.

The path checkers bring a failed path back as soon as it answers again; that is right
for a path that broke, wrong for one an operator took out of use (to service a switch,
say). :class:`AdminHolds` sits between the device and its checker monitor: the monitor
does not log a held path in again (its identity check answers "held by the
administrator", which the monitor records as the path being down), and any
reinstatement is withheld until ``mpath ctl reinstate path`` lifts the hold.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mpath.checkers.monitor import CheckerMonitor
from mpath.checkers.settings import CheckerSettings
from mpath.filter.monitor import MonitoredDevice, PathMonitor
from mpath.filter.path import Path
from mpath.settings import DeviceSettings

#: The checking the one-shot commands use (mpath.api.open_device): 1 s base interval
#: and a 1 s login bound, so a restored path is back within seconds.
CHECKER_SETTINGS = CheckerSettings(polling_interval=1.0, login_timeout=1.0)

HELD_REASON = "held out of use by the administrator (mpath ctl reinstate path)"


class AdminHolds:
    """The device as its monitor sees it, minus reinstatement of held paths."""

    def __init__(self) -> None:
        self.held: set[Path] = set()
        self._device: MonitoredDevice | None = None
        self.monitor: CheckerMonitor | None = None

    def factory(self) -> Callable[[MonitoredDevice], PathMonitor]:
        """The monitor factory to open the device with (a checker monitor, wrapped)."""

        def make(device: MonitoredDevice) -> PathMonitor:
            self._device = device
            self.monitor = CheckerMonitor(self, CHECKER_SETTINGS)
            return self.monitor

        return make

    @property
    def device(self) -> MonitoredDevice:
        if self._device is None:
            raise RuntimeError("AdminHolds used before its device was opened")
        return self._device

    # -- what the monitor uses of the device ----------------------------------------------

    @property
    def settings(self) -> DeviceSettings:
        return self.device.settings

    @property
    def path_objects(self) -> list[Path]:
        return self.device.path_objects

    async def fail(self, path: Path, reason: str) -> None:
        await self.device.fail(path, reason)

    async def verify_identity(self, path: Path) -> str | None:
        if path in self.held:
            return HELD_REASON
        return await self.device.verify_identity(path)

    def reinstate(self, path: Path) -> None:
        if path not in self.held:
            self.device.reinstate(path)

    def selector_status(self) -> dict[str, Any]:
        return self.device.selector_status()
