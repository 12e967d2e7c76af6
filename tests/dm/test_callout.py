"""``device_priority``: block devices from sysfs and the store, URLs from a probe."""

from __future__ import annotations

import pytest

from mpath.dm import callout
from mpath.dm.callout import device_priority
from mpath.dm.prio import Health
from mpath.dm.store import Measurement, MeasurementStore
from mpath.scsi.probe import LunInfo
from mpath.sysfs.tree import Sysfs
from tests.sysfs.fakesys import FakeSysfs, stat_line

NOW = 1_000_000.0
MB = 1_000_000 // 512  # sectors per MB


def busy(mb: int, seconds: float, ios: int = 1000, latency_ms: int = 5) -> str:
    return stat_line(
        read_ios=ios,
        read_sectors=mb * MB,
        read_ticks=ios * latency_ms,
        io_ticks=int(seconds * 1000),
    )


@pytest.fixture
def lun(fake_sysfs: FakeSysfs) -> FakeSysfs:
    """sdb at 200 MB/s, sdc at 50 MB/s (same WWID), sdd another LUN, sde offline."""
    fake_sysfs.add_disk("sdb", "3:0:0:1", "8:16", stat=busy(2000, 10))
    fake_sysfs.add_disk("sdc", "4:0:0:1", "8:32", stat=busy(500, 10, latency_ms=20))
    fake_sysfs.add_disk("sdd", "5:0:0:1", "8:48", wwid="naa.6001405bbbb", stat=busy(10, 10))
    fake_sysfs.add_disk("sde", "6:0:0:1", "8:64", state="offline", stat=busy(2000, 1))
    return fake_sysfs


def prio(device: str, sysfs: Sysfs, store: MeasurementStore, **kw: object) -> int:
    return device_priority(device, sysfs=sysfs, store=store, now=NOW, **kw).priority  # type: ignore[arg-type]


def test_block_devices_by_sysfs_counters(
    lun: FakeSysfs, sysfs: Sysfs, store: MeasurementStore
) -> None:
    assert prio("sdb", sysfs, store) == 100
    assert prio("sdc", sysfs, store) == 25
    assert prio("/dev/sdc", sysfs, store) == 25
    assert prio("8:32", sysfs, store) == 25
    assert prio("sdd", sysfs, store) == 100  # alone with its WWID
    report = device_priority("sdc", sysfs=sysfs, store=store, now=NOW)
    assert report.source == "sysfs"
    assert report.peers == ["sdb"]
    assert report.mb_per_s == pytest.approx(50.0, rel=1e-3)
    assert report.latency_ms == 20.0


def test_failed_or_unknown_block_devices_score_0(
    lun: FakeSysfs, sysfs: Sysfs, store: MeasurementStore
) -> None:
    report = device_priority("sde", sysfs=sysfs, store=store, now=NOW)
    assert (report.priority, report.health) == (0, "failed")
    assert report.reason == "device state is 'offline'"
    assert prio("sdz", sysfs, store) == 0
    assert prio("../../etc/passwd", sysfs, store) == 0
    assert prio("99:99", sysfs, store) == 0


def test_an_offline_peer_is_not_the_reference(
    fake_sysfs: FakeSysfs, sysfs: Sysfs, store: MeasurementStore
) -> None:
    fake_sysfs.add_disk("sdb", "3:0:0:1", "8:16", stat=busy(500, 10))
    fake_sysfs.add_disk("sdc", "4:0:0:1", "8:32", state="blocked", stat=busy(2000, 10))
    assert prio("sdb", sysfs, store) == 100


def test_up_without_counters_scores_1(
    fake_sysfs: FakeSysfs, sysfs: Sysfs, store: MeasurementStore
) -> None:
    fake_sysfs.add_disk("sdb", "3:0:0:1", "8:16")
    report = device_priority("sdb", sysfs=sysfs, store=store, now=NOW)
    assert report.priority == 1
    assert report.reason == "up, but no speed measurement"


def test_io_errors_lower_the_score(
    fake_sysfs: FakeSysfs, sysfs: Sysfs, store: MeasurementStore
) -> None:
    fake_sysfs.add_disk("sdb", "3:0:0:1", "8:16", stat=busy(2000, 10), errors=(20, 100))
    assert prio("sdb", sysfs, store) == 80


def stored(path: str, mb: float, at: float = NOW - 60, wwid: str | None = None) -> Measurement:
    return Measurement(path, Health.UP, wwid, mb, 4.0, 100, 0, 3.0, at, "dm-config")


def test_store_wins_when_it_covers_every_peer(
    lun: FakeSysfs, sysfs: Sysfs, store: MeasurementStore
) -> None:
    store.record([stored("sdb", 40.0), stored("sdc", 160.0)])
    assert prio("sdb", sysfs, store) == 25
    assert prio("sdc", sysfs, store) == 100
    assert device_priority("sdc", sysfs=sysfs, store=store, now=NOW).source == "store"


def test_partial_or_stale_store_falls_back_to_sysfs(
    lun: FakeSysfs, sysfs: Sysfs, store: MeasurementStore
) -> None:
    store.record([stored("sdb", 40.0)])  # sdc missing
    assert prio("sdb", sysfs, store) == 100
    store.record([stored("sdc", 160.0, at=NOW - 10 * 86400)])  # stale
    assert prio("sdb", sysfs, store) == 100
    assert prio("sdb", sysfs, store, max_age=30 * 86400) == 25


# -- iSCSI URLs: the probe is replaced by a fake -------------------------------------------

URL1 = "iscsi://198.18.1.2/iqn.2026-11.org.mpath:rig.a/1"
URL2 = "iscsi://198.18.2.2/iqn.2026-11.org.mpath:rig.a/1"
WWID = "36001405aaaa"
INFO = LunInfo(WWID, "naa", "MPATH", "RIG-LUN", "0001", 512, 1 << 26, None, None)


@pytest.fixture
def probes(monkeypatch: pytest.MonkeyPatch) -> dict[str, Measurement]:
    results: dict[str, Measurement] = {}

    async def fake_probe(
        url: str, *, timeout: float, read_seconds: float, config: object = None
    ) -> tuple[Measurement, LunInfo | None]:
        result = results[url]
        return result, (INFO if result.health is Health.UP else None)

    import mpath.dm.measure

    monkeypatch.setattr(mpath.dm.measure, "probe_url", fake_probe)
    return results


def probe(url: str, mb: float | None, health: Health = Health.UP) -> Measurement:
    return Measurement(url, health, WWID if mb else None, mb, 2.0, 10, 0, 0.5, NOW, "prio-probe")


def test_url_probe_alone_is_the_fastest_known(
    probes: dict[str, Measurement], sysfs: Sysfs, store: MeasurementStore
) -> None:
    probes[URL1] = probe(URL1, 40.0)
    report = device_priority(URL1, sysfs=sysfs, store=store, now=NOW)
    assert (report.priority, report.source, report.wwid) == (100, "probe", WWID)
    assert store.get(URL1) == probes[URL1]  # recorded for the sibling's next call


def test_url_compared_with_stored_siblings(
    probes: dict[str, Measurement], sysfs: Sysfs, store: MeasurementStore
) -> None:
    store.record([stored(URL2, 160.0, wwid=WWID), stored("other", 999.0, wwid="3other")])
    probes[URL1] = probe(URL1, 40.0)
    report = device_priority(URL1, sysfs=sysfs, store=store, now=NOW)
    assert report.priority == 25
    assert report.peers == [URL2]


def test_url_uses_its_own_stored_speed_and_is_not_overwritten(
    probes: dict[str, Measurement], sysfs: Sysfs, store: MeasurementStore
) -> None:
    store.record([stored(URL1, 160.0, wwid=WWID), stored(URL2, 40.0, wwid=WWID)])
    probes[URL2] = probe(URL2, 150.0)  # a short probe says otherwise: the store wins
    report = device_priority(URL2, sysfs=sysfs, store=store, now=NOW)
    assert (report.priority, report.source) == (25, "store+probe")
    assert store.get(URL2).mb_per_s == 40.0  # type: ignore[union-attr]


def test_failed_probe_scores_0(
    probes: dict[str, Measurement], sysfs: Sysfs, store: MeasurementStore
) -> None:
    store.record([stored(URL1, 160.0, wwid=WWID)])
    probes[URL1] = probe(URL1, None, Health.FAILED)
    report = device_priority(URL1, sysfs=sysfs, store=store, now=NOW)
    assert (report.priority, report.health) == (0, "failed")


def test_damaged_store_still_answers(lun: FakeSysfs, sysfs: Sysfs, store: MeasurementStore) -> None:
    store.file.parent.mkdir(parents=True)
    store.file.write_text("{broken")
    assert prio("sdb", sysfs, store) == 100


def test_callout_module_has_no_shell() -> None:
    import inspect

    source = inspect.getsource(callout)
    assert "subprocess" not in source and "os.system" not in source
