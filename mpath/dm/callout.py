"""``mpath prio DEVICE``: gather a path's measurement, then score it with get_prio.

Where the numbers come from, fast:

* **Block devices** (``sdb``, ``/dev/sdb``, ``8:16``): sysfs only, no I/O. Health is
  ``device/state`` (anything but ``running`` scores 0; a device without a SCSI state
  that exists counts as up). Speed is taken from the measurement store when it has a
  fresh record for this device *and* for every healthy peer (same ``device/wwid``);
  otherwise all of them are judged by the kernel's own counters in ``stat``: bytes
  moved divided by the time the device was busy, and mean I/O time. Errors are
  ``device/ioerr_cnt`` over ``device/iorequest_cnt``.
* **iSCSI URLs**: a live probe (login, identity, a fraction of a second of reads)
  within ``timeout`` gives health, and speed when the store has none for this path.
  The reference is the fastest fresh record in the store for the same WWID. The probe
  is recorded when the store has no fresh record of its own for the path, so the next
  call for a sibling path has something to compare with.

Every failure to learn something (unknown device, unreadable sysfs, damaged store,
unreachable portal) gives priority 0, never an exception: a callout must answer.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mpath.dm.devices import DeviceRef, parse_device
from mpath.dm.prio import Health, PrioInput, get_prio
from mpath.dm.store import DEFAULT_MAX_AGE, Measurement, MeasurementStore
from mpath.errors import MpathError
from mpath.sysfs.tree import Sysfs

if TYPE_CHECKING:
    from mpath.config import Config

DEFAULT_TIMEOUT = 2.0
DEFAULT_PROBE_SECONDS = 0.5
_RUNNING = "running"


@dataclass(slots=True)
class PrioReport:
    """The priority and how it was reached (``mpath prio --json``)."""

    device: str
    priority: int = 0
    key: str | None = None
    health: str = Health.UNKNOWN.value
    source: str = "none"
    wwid: str | None = None
    mb_per_s: float | None = None
    best_mb_per_s: float | None = None
    latency_ms: float | None = None
    best_latency_ms: float | None = None
    error_ratio: float = 0.0
    peers: list[str] = field(default_factory=list)
    reason: str | None = None

    def describe(self) -> dict[str, Any]:
        return {
            "device": self.device,
            "key": self.key,
            "priority": self.priority,
            "health": self.health,
            "source": self.source,
            "wwid": self.wwid,
            "mb_per_s": self.mb_per_s,
            "best_mb_per_s": self.best_mb_per_s,
            "latency_ms": self.latency_ms,
            "best_latency_ms": self.best_latency_ms,
            "error_ratio": round(self.error_ratio, 4),
            "peers": self.peers,
            "reason": self.reason,
        }

    def score(self) -> PrioReport:
        self.priority = get_prio(
            PrioInput(
                health=Health(self.health),
                mb_per_s=self.mb_per_s,
                best_mb_per_s=self.best_mb_per_s,
                latency_ms=self.latency_ms,
                best_latency_ms=self.best_latency_ms,
                error_ratio=self.error_ratio,
            )
        )
        if self.priority == 1 and self.reason is None and self.mb_per_s is None:
            self.reason = "up, but no speed measurement"
        return self


def _best(values: list[float | None], *, highest: bool) -> float | None:
    known = [v for v in values if v is not None and v > 0]
    if not known:
        return None
    return max(known) if highest else min(known)


def _block_health(sysfs: Sysfs, name: str) -> tuple[Health, str | None]:
    if not sysfs.exists(name):
        return Health.UNKNOWN, "no such block device in sysfs"
    state = sysfs.state(name)
    if state is None or state == _RUNNING:
        return Health.UP, None
    return Health.FAILED, f"device state is {state!r}"


def block_priority(
    ref: DeviceRef,
    report: PrioReport,
    sysfs: Sysfs,
    records: dict[str, Measurement],
    now: float,
    max_age: float,
) -> PrioReport:
    name = ref.key
    health, reason = _block_health(sysfs, name)
    report.health, report.reason = health.value, reason
    if health is not Health.UP:
        return report.score()
    report.wwid = sysfs.wwid(name)
    peers = [p for p in sysfs.peers(name) if _block_health(sysfs, p)[0] is Health.UP]
    report.peers = [p for p in peers if p != name]
    fresh = {
        p: records[p]
        for p in peers
        if p in records and records[p].is_fresh(now, max_age) and records[p].mb_per_s
    }
    if name in fresh and set(fresh) == set(peers):
        report.source = "store"
        speeds = {p: fresh[p].mb_per_s for p in peers}
        latencies = {p: fresh[p].latency_ms for p in peers}
        report.error_ratio = fresh[name].error_ratio
    else:
        report.source = "sysfs"
        stats = {p: sysfs.stat(p) for p in peers}
        speeds = {p: s.mb_per_s if s else None for p, s in stats.items()}
        latencies = {p: s.latency_ms if s else None for p, s in stats.items()}
        report.error_ratio = sysfs.io_error_ratio(name) or 0.0
    report.mb_per_s, report.latency_ms = speeds.get(name), latencies.get(name)
    report.best_mb_per_s = _best(list(speeds.values()), highest=True)
    report.best_latency_ms = _best(list(latencies.values()), highest=False)
    return report.score()


async def url_priority(
    ref: DeviceRef,
    report: PrioReport,
    store: MeasurementStore,
    records: dict[str, Measurement],
    now: float,
    max_age: float,
    timeout: float,
    probe_seconds: float,
    record: bool,
    config: Config | None = None,
) -> PrioReport:
    from mpath.dm.measure import probe_url

    probe, lun = await probe_url(
        ref.key, timeout=timeout, read_seconds=probe_seconds, config=config
    )
    report.health = probe.health.value
    if probe.health is not Health.UP or lun is None:
        report.reason = "the probe failed (no login, no answer or failed reads within timeout)"
        report.source = "probe"
        return report.score()
    report.wwid = lun.wwid
    own = records.get(ref.key)
    own_fresh = own is not None and own.is_fresh(now, max_age) and own.mb_per_s is not None
    if own_fresh and own is not None and own.wwid in (None, lun.wwid):
        report.source = "store+probe"
        report.mb_per_s, report.latency_ms = own.mb_per_s, own.latency_ms
        report.error_ratio = max(own.error_ratio, probe.error_ratio)
    else:
        report.source = "probe"
        report.mb_per_s, report.latency_ms = probe.mb_per_s, probe.latency_ms
        report.error_ratio = probe.error_ratio
        if record:
            store.try_record([probe])
    peers = [
        m
        for key, m in records.items()
        if key != ref.key
        and m.wwid == lun.wwid
        and m.health is Health.UP
        and m.is_fresh(now, max_age)
    ]
    report.peers = sorted(m.path for m in peers)
    report.best_mb_per_s = _best([report.mb_per_s, *(m.mb_per_s for m in peers)], highest=True)
    report.best_latency_ms = _best(
        [report.latency_ms, *(m.latency_ms for m in peers)], highest=False
    )
    return report.score()


def device_priority(
    device: str,
    *,
    sysfs: Sysfs | None = None,
    store: MeasurementStore | None = None,
    now: float | None = None,
    max_age: float = DEFAULT_MAX_AGE,
    timeout: float = DEFAULT_TIMEOUT,
    probe_seconds: float = DEFAULT_PROBE_SECONDS,
    record: bool = True,
    config: Config | None = None,
) -> PrioReport:
    """The priority of ``device`` with the reasons; never raises for a bad device.

    ``config`` gives an ``iscsi://`` probe its CHAP credentials (``[[chap]]``).
    """
    report = PrioReport(device=device)
    sysfs = sysfs or Sysfs()
    store = store or MeasurementStore()
    try:
        ref = parse_device(device, sysfs)
    except MpathError as exc:
        report.reason = str(exc)
        return report
    report.key = ref.key
    records = store.load()
    moment = time.time() if now is None else now
    if ref.is_iscsi:
        return asyncio.run(
            url_priority(
                ref,
                report,
                store,
                records,
                moment,
                max_age,
                timeout,
                probe_seconds,
                record,
                config,
            )
        )
    return block_priority(ref, report, sysfs, records, moment, max_age)
