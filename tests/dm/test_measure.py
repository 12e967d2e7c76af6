"""Live measurement through the filter layer, on fake transports (the rig tests use
real ones): identity first, failed paths reported, nothing written."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest

from mpath.dm.measure import measure_urls, probe_url
from mpath.dm.prio import Health
from mpath.errors import DeviceError, IdentityMismatchError
from mpath.transports.base import Transport
from tests.filter.fakes import FakeLun, FakeTransport

URL1 = "iscsi://198.18.1.2/iqn.2026-11.org.mpath:rig.a/1"
URL2 = "iscsi://198.18.2.2/iqn.2026-11.org.mpath:rig.a/1"


def factory(
    luns: dict[str, FakeLun], refuse: tuple[str, ...] = ()
) -> tuple[dict[str, FakeTransport], Callable[[str], Transport]]:
    made: dict[str, FakeTransport] = {}

    def make(url: str) -> Transport:
        transport = FakeTransport(url, luns[url])
        transport.refuse_login = url in refuse
        made[url] = transport
        return transport

    return made, make


def test_every_path_measured_alone_and_nothing_written() -> None:
    lun = FakeLun()
    before = bytes(lun.data)
    made, make = factory({URL1: lun, URL2: lun})
    result = asyncio.run(measure_urls([URL1, URL2], seconds=0.1, transport_factory=make))
    assert result.lun.wwid == lun.wwid
    assert [m.path for m in result.measurements] == [URL1, URL2]
    for measurement in result.measurements:
        assert measurement.health is Health.UP
        assert measurement.mb_per_s and measurement.mb_per_s > 0
        assert measurement.wwid == lun.wwid
        assert measurement.ios > 0 and measurement.errors == 0
        assert measurement.source == "dm-config"
    assert bytes(lun.data) == before
    assert "write" not in " ".join(lun.log)
    assert all(t.closes for t in made.values())  # every session closed afterwards


def test_a_path_that_cannot_log_in_is_reported_failed() -> None:
    lun = FakeLun()
    _, make = factory({URL1: lun, URL2: lun}, refuse=(URL1,))
    result = asyncio.run(measure_urls([URL1, URL2], seconds=0.1, transport_factory=make))
    failed, good = result.measurements
    assert (failed.health, failed.mb_per_s, failed.wwid) == (Health.FAILED, None, lun.wwid)
    assert good.health is Health.UP


def test_different_luns_are_refused_before_reading() -> None:
    one, two = FakeLun(), FakeLun(designator=bytes.fromhex("6" + "2" * 31))
    made, make = factory({URL1: one, URL2: two})
    with pytest.raises(IdentityMismatchError):
        asyncio.run(measure_urls([URL1, URL2], seconds=0.1, transport_factory=make))
    reads = [e for t in made.values() for e in t.events if e == "execute 0x88"]
    assert reads == []


def test_no_path_at_all() -> None:
    lun = FakeLun()
    _, make = factory({URL1: lun}, refuse=(URL1,))
    with pytest.raises(DeviceError, match="no path could be opened"):
        asyncio.run(measure_urls([URL1], seconds=0.1, transport_factory=make))


def test_a_tiny_lun_is_measured_too() -> None:
    lun = FakeLun(blocks=16)
    _, make = factory({URL1: lun})
    result = asyncio.run(measure_urls([URL1], seconds=0.05, transport_factory=make))
    assert result.measurements[0].health is Health.UP


def test_probe_is_bounded_by_its_timeout() -> None:
    lun = FakeLun()
    hung = FakeTransport(URL1, lun)
    hung.hang = True
    started = time.monotonic()
    measurement, info = asyncio.run(
        probe_url(URL1, timeout=0.3, read_seconds=0.1, transport_factory=lambda url: hung)
    )
    assert time.monotonic() - started < 1.5
    assert (measurement.health, info) == (Health.FAILED, None)
    _, make = factory({URL1: lun})
    measurement, info = asyncio.run(
        probe_url(URL1, timeout=2.0, read_seconds=0.05, transport_factory=make)
    )
    assert measurement.health is Health.UP and info is not None
    assert measurement.source == "prio-probe"
