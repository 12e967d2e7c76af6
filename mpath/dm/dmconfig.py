"""``mpath dm-config``: name the paths, measure them, and write the fragment.

The steps, each replaceable in tests:

1. every PATH is resolved like ``mpath prio``'s DEVICE (URL, ``/dev/sdX``, ``sdX``,
   ``MAJ:MIN``) and given the names multipath.conf can use: the kernel name and
   SCSI address from sysfs (an iSCSI URL through open-iscsi's session in sysfs), or
   from ``--kernel-name PATH=NAME``;
2. each path gets a measurement: iSCSI URLs are read alone for ``--seconds`` through
   the filter layer (or taken from the measurement store with ``--from-store``); block
   devices come from the store, else from the kernel's I/O counters in sysfs;
3. all paths must be one LUN (one WWID), which names the ``multipaths`` entry; the
   alias comes from mpath's own configuration when it has one for that WWID;
4. live measurements are recorded in the store (for ``mpath prio``), and the fragment
   is rendered (mpath/dm/fragment.py).
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from mpath import __version__
from mpath.config import Config, load_config
from mpath.dm.devices import DeviceRef, parse_device
from mpath.dm.fragment import (
    Fragment,
    FragmentPath,
    Match,
    Style,
    missing_names_error,
    render,
)
from mpath.dm.prio import Health
from mpath.dm.store import DEFAULT_MAX_AGE, Measurement, MeasurementStore
from mpath.errors import IdentityMismatchError, UsageError
from mpath.sysfs.tree import Sysfs, valid_block_name

_HBTL = re.compile(r"\d+:\d+:\d+:\d+")


@dataclass(slots=True)
class Target:
    """One PATH argument, resolved and named."""

    given: str
    ref: DeviceRef
    kernel_name: str | None = None
    hbtl: str | None = None
    devnum: str | None = None
    measurement: Measurement | None = None


@dataclass(slots=True)
class DmConfigRequest:
    paths: Sequence[str]
    style: Style = Style.WEIGHTEDPATH
    match: Match = Match.DEVNAME
    step: int = 10
    seconds: float = 3.0
    from_store: bool = False
    max_age: float = DEFAULT_MAX_AGE
    kernel_names: Sequence[str] = ()
    record: bool = True
    config_file: str | None = None
    login_timeout: float = 5.0


@dataclass(slots=True)
class DmConfigResult:
    fragment: Fragment
    style: Style
    match: Match
    step: int
    wwid: str
    vendor: str | None
    product: str | None
    alias: str | None
    measured: str
    parser: dict[str, Any] | None = field(default=None)

    def describe(self) -> dict[str, Any]:
        return {
            "style": self.style.value,
            "match": self.match.value,
            "step": self.step,
            "wwid": self.wwid,
            "vendor": self.vendor,
            "product": self.product,
            "alias": self.alias,
            "measured": self.measured,
            "paths": [
                {
                    "path": row.path,
                    "device": row.device,
                    "hbtl": row.hbtl,
                    "devnum": row.devnum,
                    "health": row.health,
                    "mb_per_s": row.mb_per_s,
                    "latency_ms": row.latency_ms,
                    "priority": row.priority,
                    "relative_throughput": row.relative_throughput,
                    "source": row.source,
                }
                for row in self.fragment.rows
            ],
            "multipath": self.fragment.settings,
            "fragment": self.fragment.text,
            "parser": self.parser,
        }


def _kernel_name_map(items: Sequence[str], targets: Sequence[Target]) -> dict[int, str]:
    """``--kernel-name PATH=NAME`` (PATH as given, canonical, or its 1-based position)."""
    names: dict[int, str] = {}
    for item in items:
        path, sep, name = item.rpartition("=")
        if not sep or not path or not name:
            raise UsageError(f"bad --kernel-name {item!r}: expected PATH=NAME, e.g. 1=sdb")
        if not (valid_block_name(name) or _HBTL.fullmatch(name)):
            raise UsageError(f"bad --kernel-name {item!r}: {name!r} is not sdX nor H:C:T:L")
        index = None
        if path.isdigit() and 1 <= int(path) <= len(targets):
            index = int(path) - 1
        else:
            for i, target in enumerate(targets):
                if path in (target.given, target.ref.key):
                    index = i
        if index is None:
            raise UsageError(f"bad --kernel-name {item!r}: {path!r} is not one of the PATHs")
        names[index] = name
    return names


def resolve_targets(
    paths: Sequence[str], kernel_names: Sequence[str], sysfs: Sysfs
) -> list[Target]:
    """Parse every PATH and find the names multipath.conf can match it by."""
    if not paths:
        raise UsageError("give at least one PATH (iscsi://HOST/IQN/LUN, /dev/sdX, sdX or MAJ:MIN)")
    targets = [Target(text, parse_device(text, sysfs)) for text in paths]
    keys = [t.ref.key for t in targets]
    if len(set(keys)) != len(keys):
        raise UsageError("the same path is given twice")
    given = _kernel_name_map(kernel_names, targets)
    for index, target in enumerate(targets):
        name = given.get(index)
        if name is not None and _HBTL.fullmatch(name):
            target.hbtl = name
        elif name is not None:
            target.kernel_name = name
        elif target.ref.url is not None:
            target.kernel_name = sysfs.iscsi_disk(target.ref.url)
        else:
            target.kernel_name = target.ref.key
        if target.kernel_name and sysfs.exists(target.kernel_name):
            target.hbtl = target.hbtl or sysfs.hbtl(target.kernel_name)
            target.devnum = sysfs.devnum(target.kernel_name)
    return targets


def _block_measurement(
    name: str, sysfs: Sysfs, records: Mapping[str, Measurement], now: float, max_age: float
) -> Measurement:
    stored = records.get(name)
    if stored is not None and stored.is_fresh(now, max_age):
        return stored
    if not sysfs.exists(name):
        raise UsageError(f"{name}: no such block device (and no stored measurement)")
    state = sysfs.state(name)
    health = Health.UP if state in (None, "running") else Health.FAILED
    stat = sysfs.stat(name)
    return Measurement(
        path=name,
        health=health,
        wwid=sysfs.wwid(name),
        mb_per_s=round(stat.mb_per_s, 3) if stat and stat.mb_per_s else None,
        latency_ms=round(stat.latency_ms, 3) if stat and stat.latency_ms else None,
        ios=stat.ios if stat else 0,
        measured_at=now,
        source="sysfs",
    )


def measure(
    request: DmConfigRequest,
    targets: list[Target],
    sysfs: Sysfs,
    store: MeasurementStore,
    config: Config | None = None,
) -> tuple[str | None, str | None, str]:
    """Fill every target's measurement; return the INQUIRY vendor/product and how."""
    now = time.time()
    records = store.load()
    vendor = product = None
    urls = [t for t in targets if t.ref.url is not None]
    how = []
    if urls and not request.from_store:
        from mpath.dm.measure import measure_urls

        measured = asyncio.run(
            measure_urls(
                [t.ref.key for t in urls],
                seconds=request.seconds,
                login_timeout=request.login_timeout,
                config=config,
            )
        )
        for target, measurement in zip(urls, measured.measurements, strict=True):
            target.measurement = measurement
        vendor, product = measured.lun.vendor, measured.lun.product
        how.append(f"iSCSI paths read alone for {request.seconds:g} s each")
        if request.record:
            store.try_record(measured.measurements)
    elif urls:
        for target in urls:
            stored = records.get(target.ref.key)
            if stored is None or not stored.is_fresh(now, request.max_age):
                raise UsageError(
                    f"{target.given}: no measurement in {store.file} newer than "
                    f"{request.max_age:g} s (run without --from-store to measure it)"
                )
            target.measurement = stored
        how.append(f"iSCSI paths from the measurement store {store.file}")
    blocks = [t for t in targets if t.ref.url is None]
    for target in blocks:
        target.measurement = _block_measurement(
            target.ref.key, sysfs, records, now, request.max_age
        )
        if vendor is None:
            vendor, product = sysfs.inquiry(target.ref.key)
    if blocks:
        how.append("block devices from the measurement store, else sysfs I/O counters")
    return vendor, product, "; ".join(how)


def lun_identity(targets: Sequence[Target]) -> str:
    """The one WWID all measured paths report (mixing LUNs is refused)."""
    known = [(t.given, t.measurement.wwid) for t in targets if t.measurement and t.measurement.wwid]
    if not known:
        raise UsageError(
            "cannot tell the LUN's WWID: no path could be identified (is any path up?)"
        )
    first_path, first = known[0]
    for path, wwid in known[1:]:
        if wwid != first:
            raise IdentityMismatchError(first_path, first, path, wwid)
    return first


def build(
    request: DmConfigRequest, *, sysfs: Sysfs | None = None, store: MeasurementStore | None = None
) -> DmConfigResult:
    """Resolve, measure and render (see the module docstring)."""
    sysfs = sysfs or Sysfs()
    store = store or MeasurementStore()
    if not 1 <= request.step <= 100:
        raise UsageError("--step must be between 1 and 100")
    config = load_config(request.config_file)
    targets = resolve_targets(request.paths, request.kernel_names, sysfs)
    if request.style is Style.WEIGHTEDPATH:  # known now: refuse before seconds of measuring
        devname = request.match is Match.DEVNAME
        missing = [t.given for t in targets if not (t.kernel_name if devname else t.hbtl)]
        if missing:
            raise missing_names_error(missing, request.match)
    vendor, product, how = measure(request, targets, sysfs, store, config)
    wwid = lun_identity(targets)
    entry = config.multipath_entry(wwid)
    alias = entry.alias if entry else None
    header = [
        f"multipath.conf fragment generated by mpath {__version__} "
        f"(mpath dm-config --style {request.style.value}) on "
        f"{time.strftime('%Y-%m-%d %H:%M:%S %Z')}.",
        "Add it to /etc/multipath.conf (or save it as /etc/multipath/conf.d/mpath.conf),",
        "check it with 'multipath -t', then run 'multipathd reconfigure'. docs/dm-multipath.md",
        f"Measured: {how}.",
        "",
    ]
    fragment = render(
        style=request.style,
        wwid=wwid,
        paths=[
            FragmentPath(t.given, t.measurement, t.kernel_name, t.hbtl, t.devnum)
            for t in targets
            if t.measurement is not None
        ],
        vendor=vendor,
        product=product,
        alias=alias,
        match=request.match,
        step=request.step,
        header=header,
    )
    return DmConfigResult(
        fragment=fragment,
        style=request.style,
        match=request.match,
        step=request.step,
        wwid=wwid,
        vendor=vendor,
        product=product,
        alias=alias,
        measured=how,
    )
