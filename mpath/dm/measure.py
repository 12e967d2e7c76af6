"""Measuring iSCSI paths live, through the filter layer (what dm-config and prio need).

Each path is measured *alone*: it is opened as a one-path
:class:`~mpath.filter.device.MultipathDevice` and read sequentially for a while, so the
number is that path's own capacity, not the share a selector happened to give it.
Paths are measured one after the other (measuring them together would make them
compete for the target's CPU and disk and flatten the differences). Before anything is
read, every path that opens must report the same LUN identity: numbers for paths to
different LUNs would be meaningless, and mixing them is the mistake mpath refuses
everywhere.

Nothing here writes to the LUN.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mpath.dm.prio import Health
from mpath.dm.store import Measurement
from mpath.errors import DeviceError, IdentityMismatchError, MpathError
from mpath.filter.device import MultipathDevice
from mpath.scsi.probe import LunInfo
from mpath.settings import DeviceSettings
from mpath.transports import open_transport
from mpath.transports.base import Transport
from mpath.workload.bench import BenchRun, BenchSpec

if TYPE_CHECKING:
    from mpath.config import Config

log = logging.getLogger(__name__)

#: Read size and depth: large sequential reads, enough in flight to fill a fast link.
READ_BLOCK = 256 * 1024
READ_DEPTH = 8
#: Only the first part of the LUN is read (the target's cache then serves it, so the
#: network path, not the backing disk, is what gets measured).
READ_SPAN = 64 * 1024 * 1024
#: A path being measured must fail fast, not wait for itself to come back.
MEASURE_SETTINGS = DeviceSettings(policy="round-robin", no_path_retry=0.0)

TransportFactory = Callable[[str], Transport]


def _transport_factory(login_timeout: float, config: Config | None = None) -> TransportFactory:
    def factory(url: str) -> Transport:
        return open_transport(url, config=config, login_timeout=login_timeout)

    return factory


@dataclass(frozen=True, slots=True)
class MeasuredLun:
    """The LUN the paths lead to, and one measurement per path (in the given order)."""

    lun: LunInfo
    measurements: list[Measurement]


async def _open(url: str, factory: TransportFactory) -> MultipathDevice:
    return await MultipathDevice.open([url], MEASURE_SETTINGS, transport_factory=factory)


async def _read_for(
    device: MultipathDevice, url: str, seconds: float, depth: int, source: str
) -> Measurement:
    """Read ``device`` for ``seconds`` and describe the path."""
    span = min(READ_SPAN, device.size_bytes)
    unit = device.block_size
    block = max(unit, min(READ_BLOCK, span) // unit * unit)
    depth = max(1, min(depth, span // block))
    spec = BenchSpec(rw="read", block_size=block, queue_depth=depth, seconds=seconds, span=span)
    started = time.time()
    result = await BenchRun(device, spec).run()
    mean_latency = (
        sum(result.latencies) / len(result.latencies) * 1000 if len(result.latencies) else None
    )
    up = result.ios > 0 and all(p["state"] == "active" for p in device.paths)
    return Measurement(
        path=url,
        health=Health.UP if up else Health.FAILED,
        wwid=device.lun.wwid if device.lun else None,
        mb_per_s=round(result.bytes / result.seconds / 1e6, 3) if result.seconds else None,
        latency_ms=round(mean_latency, 3) if mean_latency is not None else None,
        ios=result.ios,
        errors=result.errors,
        seconds=round(result.seconds, 3),
        measured_at=started,
        source=source,
    )


def _failed(url: str, source: str, wwid: str | None = None) -> Measurement:
    return Measurement(
        path=url, health=Health.FAILED, wwid=wwid, measured_at=time.time(), source=source
    )


async def measure_urls(
    urls: Sequence[str],
    *,
    seconds: float,
    depth: int = READ_DEPTH,
    login_timeout: float = 5.0,
    source: str = "dm-config",
    transport_factory: TransportFactory | None = None,
    config: Config | None = None,
) -> MeasuredLun:
    """Open every path, check they are one LUN, then read each alone for ``seconds``.

    A path that cannot be opened is reported failed (health ``failed``, no speed).
    Raises :class:`IdentityMismatchError` when paths lead to different LUNs and
    :class:`DeviceError` when no path opens at all.
    """
    factory = transport_factory or _transport_factory(login_timeout, config)
    outcomes = await asyncio.gather(*(_open(url, factory) for url in urls), return_exceptions=True)
    devices: dict[str, MultipathDevice] = {}
    reasons: list[str] = []
    try:
        for url, outcome in zip(urls, outcomes, strict=True):
            if isinstance(outcome, MultipathDevice):
                devices[url] = outcome
            elif isinstance(outcome, MpathError):
                reasons.append(str(outcome))
            elif isinstance(outcome, BaseException):
                raise outcome
        if not devices:
            raise DeviceError(f"no path could be opened: {'; '.join(reasons)}")
        first_url, first = next(iter(devices.items()))
        assert first.lun is not None
        for url, device in devices.items():
            assert device.lun is not None
            if device.lun.wwid != first.lun.wwid:
                raise IdentityMismatchError(first_url, first.lun.wwid, url, device.lun.wwid)
        measurements = []
        for url in urls:
            device_or_none = devices.get(url)
            if device_or_none is None:
                measurements.append(_failed(url, source, first.lun.wwid))
                continue
            measurements.append(await _read_for(device_or_none, url, seconds, depth, source))
        return MeasuredLun(first.lun, measurements)
    finally:
        await asyncio.gather(*(d.close() for d in devices.values()), return_exceptions=True)


async def probe_url(
    url: str,
    *,
    timeout: float,
    read_seconds: float,
    depth: int = 4,
    transport_factory: TransportFactory | None = None,
    config: Config | None = None,
) -> tuple[Measurement, LunInfo | None]:
    """A short health-and-speed probe of one path, bounded by ``timeout`` as a whole.

    Login, identity, then ``read_seconds`` of reads. A path that does not answer in
    time, refuses the login or fails its reads is reported failed.
    """
    factory = transport_factory or _transport_factory(max(0.1, timeout), config)
    deadline = time.monotonic() + timeout

    async def run() -> tuple[Measurement, LunInfo | None]:
        device = await _open(url, factory)
        try:
            left = deadline - time.monotonic()
            budget = max(0.05, min(read_seconds, left * 0.8))
            return await _read_for(device, url, budget, depth, "prio-probe"), device.lun
        finally:
            await device.close()

    try:
        return await asyncio.wait_for(run(), timeout)
    except TimeoutError:
        log.warning("%s: probe got no answer within %g s", url, timeout)
        return _failed(url, "prio-probe"), None
    except MpathError as exc:
        log.warning("%s: probe failed: %s", url, exc)
        return _failed(url, "prio-probe"), None
