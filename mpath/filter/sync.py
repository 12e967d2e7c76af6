"""A small synchronous wrapper around MultipathDevice, for scripts.

The device lives on an event loop in a background thread; each method submits the
coroutine to it and waits. Use it as a context manager so the loop and the sessions
are always shut down::

    urls = ["iscsi://198.18.1.2/iqn.../1", "iscsi://198.18.2.2/iqn.../1"]
    with SyncMultipathDevice.open(urls) as dev:
        dev.write(0, b"\\0" * 4096)
        data = dev.read(0, 4096)
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine, Sequence
from typing import Any, TypeVar

from mpath.filter.device import MultipathDevice
from mpath.settings import DeviceSettings
from mpath.transports.base import ScsiResult, Transport

T = TypeVar("T")


class SyncMultipathDevice:
    """Blocking calls onto a MultipathDevice running in its own thread."""

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="mpath-loop", daemon=True
        )
        self._thread.start()
        self._device: MultipathDevice | None = None

    @classmethod
    def open(
        cls, paths: Sequence[str | Transport], settings: DeviceSettings | None = None
    ) -> SyncMultipathDevice:
        wrapper = cls()
        try:
            wrapper._device = wrapper._call(MultipathDevice.open(paths, settings))
        except BaseException:
            wrapper._stop()
            raise
        return wrapper

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    @property
    def device(self) -> MultipathDevice:
        if self._device is None:
            raise RuntimeError("device is closed")
        return self._device

    @property
    def paths(self) -> list[dict[str, Any]]:
        return self.device.paths

    @property
    def stats(self) -> dict[str, int | float]:
        return self.device.stats.describe()

    def read(self, offset: int, length: int) -> bytes:
        return self._call(self.device.read(offset, length))

    def write(self, offset: int, data: bytes, *, fua: bool = False) -> None:
        self._call(self.device.write(offset, data, fua=fua))

    def flush(self) -> None:
        self._call(self.device.flush())

    def passthrough(
        self, cdb: bytes, *, data_out: bytes | None = None, data_in_length: int = 0
    ) -> ScsiResult:
        return self._call(
            self.device.passthrough(cdb, data_out=data_out, data_in_length=data_in_length)
        )

    def close(self) -> None:
        if self._device is not None:
            device, self._device = self._device, None
            self._call(device.close())
        self._stop()

    def _stop(self) -> None:
        if self._loop.is_running():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join()
        self._loop.close()

    def __enter__(self) -> SyncMultipathDevice:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
