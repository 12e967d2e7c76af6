"""dm-config's steps without a rig: naming, stored and sysfs measurements, identity."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from mpath.dm.dmconfig import DmConfigRequest, build, resolve_targets
from mpath.dm.fragment import Match, Style
from mpath.dm.prio import Health
from mpath.dm.store import Measurement, MeasurementStore
from mpath.errors import IdentityMismatchError, UsageError
from mpath.sysfs.tree import Sysfs
from tests.dm.test_callout import busy
from tests.sysfs.fakesys import FakeSysfs

IQN = "iqn.2026-11.org.mpath:rig.a"
URL1 = f"iscsi://198.18.1.2/{IQN}/1"
URL2 = f"iscsi://198.18.2.2/{IQN}/1"
WWID = "36001405aaaaaaaaaaaaaaaaaaaaaaaaa"


@pytest.fixture
def host(fake_sysfs: FakeSysfs) -> FakeSysfs:
    """open-iscsi logged in to both portals: sdb (fast) and sdc (slow)."""
    one = fake_sysfs.add_session(1, 3, IQN, "198.18.1.2")
    two = fake_sysfs.add_session(2, 4, IQN, "198.18.2.2")
    fake_sysfs.add_disk("sdb", "3:0:0:1", "8:16", parent=one, stat=busy(2000, 10))
    fake_sysfs.add_disk("sdc", "4:0:0:1", "8:32", parent=two, stat=busy(500, 10))
    fake_sysfs.add_disk("sdd", "5:0:0:1", "8:48", wwid="naa.6001405bbbb", stat=busy(5, 1))
    return fake_sysfs


def no_config(tmp_path: Path) -> str:
    file = tmp_path / "mpath.toml"
    file.write_text("")
    return str(file)


def test_block_devices_from_sysfs_counters(
    host: FakeSysfs, sysfs: Sysfs, store: MeasurementStore, tmp_path: Path
) -> None:
    result = build(
        DmConfigRequest(paths=["/dev/sdb", "8:32"], config_file=no_config(tmp_path)),
        sysfs=sysfs,
        store=store,
    )
    assert result.wwid == WWID
    assert (result.vendor, result.product) == ("MPATH", "RIG-LUN")
    assert result.fragment.settings["prio_args"] == "devname ^sdb$ 100 ^sdc$ 30"
    document = result.describe()
    assert [p["source"] for p in document["paths"]] == ["sysfs", "sysfs"]
    assert [p["hbtl"] for p in document["paths"]] == ["3:0:0:1", "4:0:0:1"]
    assert document["fragment"] == result.fragment.text


def test_urls_named_through_iscsi_sessions_from_the_store(
    host: FakeSysfs, sysfs: Sysfs, store: MeasurementStore, tmp_path: Path
) -> None:
    store.record(
        [
            Measurement(
                URL1, Health.UP, WWID, 40.0, 5.0, measured_at=time.time() - 10, source="bench"
            ),
            Measurement(
                URL2, Health.UP, WWID, 160.0, 2.0, measured_at=time.time() - 10, source="bench"
            ),
        ]
    )
    config = tmp_path / "mpath.toml"
    config.write_text(f'[[multipaths]]\nwwid = "{WWID}"\nalias = "rigdisk"\n')
    request = DmConfigRequest(
        paths=[URL1, URL2],
        from_store=True,
        match=Match.HBTL,
        config_file=str(config),
        max_age=1e12,
    )
    result = build(request, sysfs=sysfs, store=store)
    assert result.fragment.settings["prio_args"] == "hbtl ^3:0:0:1$ 30 ^4:0:0:1$ 100"
    assert result.alias == "rigdisk"
    assert 'alias "rigdisk"' in result.fragment.text


def test_from_store_without_a_record_is_a_usage_error(
    sysfs: Sysfs, store: MeasurementStore, tmp_path: Path
) -> None:
    request = DmConfigRequest(
        paths=[URL1], from_store=True, kernel_names=["1=sdb"], config_file=no_config(tmp_path)
    )
    with pytest.raises(UsageError, match="no measurement in"):
        build(request, sysfs=sysfs, store=store)


def test_weightedpath_without_kernel_names_is_refused_before_measuring(
    sysfs: Sysfs, store: MeasurementStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mpath.dm import dmconfig

    def no_measuring(*_args: object) -> None:
        raise AssertionError("measured before checking the kernel names")

    monkeypatch.setattr(dmconfig, "measure", no_measuring)
    request = DmConfigRequest(paths=[URL1, URL2], seconds=600, config_file=no_config(tmp_path))
    with pytest.raises(UsageError, match=r"kernel device name \(sdX\), unknown for: iscsi://"):
        build(request, sysfs=sysfs, store=store)


def test_paths_of_different_luns_are_refused(
    host: FakeSysfs, sysfs: Sysfs, store: MeasurementStore, tmp_path: Path
) -> None:
    with pytest.raises(IdentityMismatchError):
        build(
            DmConfigRequest(paths=["sdb", "sdd"], config_file=no_config(tmp_path)),
            sysfs=sysfs,
            store=store,
        )


def test_kernel_names_given_by_position_or_path(sysfs: Sysfs) -> None:
    targets = resolve_targets([URL1, URL2], ["1=sdb", f"{URL2}=4:0:0:1"], sysfs)
    assert [(t.kernel_name, t.hbtl) for t in targets] == [("sdb", None), (None, "4:0:0:1")]


@pytest.mark.parametrize(
    ("paths", "names", "message"),
    [
        ([], [], "at least one PATH"),
        (["sdb", "/dev/sdb"], [], "the same path is given twice"),
        ([URL1], ["sdb"], "expected PATH=NAME"),
        ([URL1], ["3=sdb"], "is not one of the PATHs"),
        ([URL1], ["1=../sda"], "is not sdX nor H:C:T:L"),
        (["$(id)"], [], "bad device"),
    ],
)
def test_bad_paths_and_names(
    paths: list[str], names: list[str], message: str, sysfs: Sysfs
) -> None:
    with pytest.raises(UsageError, match=message):
        resolve_targets(paths, names, sysfs)


def test_service_time_style_from_store(
    sysfs: Sysfs, store: MeasurementStore, tmp_path: Path
) -> None:
    store.record([Measurement("sdx", Health.UP, WWID, 50.0, measured_at=time.time() - 10)])
    result = build(
        DmConfigRequest(
            paths=["sdx"], style=Style.SERVICE_TIME, max_age=1e12, config_file=no_config(tmp_path)
        ),
        sysfs=sysfs,
        store=store,
    )
    assert result.fragment.settings["path_grouping_policy"] == "multibus"
