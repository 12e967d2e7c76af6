"""The measurement store: documented format, merge, atomic replace, damage tolerance."""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

import pytest

from mpath.dm.prio import Health
from mpath.dm.store import (
    DEFAULT_STORE,
    FORMAT_VERSION,
    Measurement,
    MeasurementStore,
    store_path,
)

URL = "iscsi://198.18.1.2/iqn.2026-11.org.mpath:rig.a/1"


def sample(path: str = URL, at: float = 1000.0, mb: float | None = 47.5) -> Measurement:
    return Measurement(
        path=path,
        health=Health.UP,
        wwid="36001405aa",
        mb_per_s=mb,
        latency_ms=5.25,
        ios=100,
        errors=2,
        seconds=3.0,
        measured_at=at,
        source="dm-config",
    )


def test_location_default_and_environment() -> None:
    assert store_path({}) == DEFAULT_STORE == Path("/var/lib/mpath/paths.json")
    assert store_path({"MPATH_MEASUREMENTS": "/tmp/x.json"}) == Path("/tmp/x.json")


def test_round_trip_in_the_documented_format(store: MeasurementStore) -> None:
    store.record([sample()])
    document = json.loads(store.file.read_text())
    assert document == {
        "version": FORMAT_VERSION,
        "paths": {
            URL: {
                "wwid": "36001405aa",
                "health": "up",
                "mb_per_s": 47.5,
                "latency_ms": 5.25,
                "ios": 100,
                "errors": 2,
                "seconds": 3.0,
                "measured_at": 1000.0,
                "source": "dm-config",
            }
        },
    }
    assert store.load() == {URL: sample()}
    assert store.get(URL) == sample()
    assert sample().error_ratio == pytest.approx(2 / 102)
    assert oct(store.file.stat().st_mode & 0o777) == "0o644"


def test_newer_records_replace_older_and_others_stay(store: MeasurementStore) -> None:
    store.record([sample(at=1000.0), sample("sdb", at=1000.0)])
    store.record([sample(at=2000.0, mb=10.0)])
    store.record([sample(at=1500.0, mb=99.0)])  # older than what is there: ignored
    records = store.load()
    assert records[URL].mb_per_s == 10.0
    assert set(records) == {URL, "sdb"}


def test_freshness() -> None:
    record = sample(at=1000.0)
    assert record.is_fresh(1500.0, 600.0)
    assert not record.is_fresh(2000.0, 600.0)
    assert not record.is_fresh(900.0, 600.0)  # from the future: clock jumped


@pytest.mark.parametrize(
    "content",
    ["", "not json", "[]", '{"paths": 3}', '{"version": 1}', "\udcff"],
)
def test_damaged_or_missing_file_reads_empty(store: MeasurementStore, content: str) -> None:
    assert store.load() == {}
    store.file.parent.mkdir(parents=True)
    store.file.write_bytes(content.encode("utf-8", "surrogateescape"))
    assert store.load() == {}


def test_malformed_records_are_skipped(store: MeasurementStore) -> None:
    good = sample().to_json()
    store.file.parent.mkdir(parents=True)
    store.file.write_text(
        json.dumps(
            {
                "version": 1,
                "paths": {
                    "good": good,
                    "bad-health": {**good, "health": "sideways"},
                    "bad-speed": {**good, "mb_per_s": "fast"},
                    "negative": {**good, "mb_per_s": -1},
                    "bool-count": {**good, "ios": True},
                    "not-a-table": 3,
                },
            }
        )
    )
    assert list(store.load()) == ["good"]
    # a writer keeps the good records and drops the rest
    store.record([sample("sdc")])
    assert set(store.load()) == {"good", "sdc"}


def _writer(file: str, index: int) -> None:
    store = MeasurementStore(file)
    for round_ in range(20):
        store.record([sample(f"sd{chr(97 + index)}", at=float(round_))])


def test_concurrent_writers_lose_nothing(tmp_path: Path) -> None:
    file = tmp_path / "paths.json"
    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=_writer, args=(str(file), i)) for i in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(30)
        assert worker.exitcode == 0
    records = MeasurementStore(file).load()
    assert set(records) == {"sda", "sdb", "sdc", "sdd"}
    assert all(r.measured_at == 19.0 for r in records.values())
    assert not list(tmp_path.glob(".paths.*"))  # no temporary file left behind


def test_an_unwritable_store_only_warns(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    store = MeasurementStore(blocker / "paths.json")  # its folder cannot be created
    with pytest.raises(OSError):
        store.record([sample()])
    assert store.try_record([sample()]) is False
    assert "cannot record measurements" in caplog.text
