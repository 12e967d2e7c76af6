"""Pure parts of the rig: addressing, fault reporting, state files, --rate parsing."""

from __future__ import annotations

import pytest

from mpath.errors import RigUsageError
from mpath.rig.manager import parse_rates, validate_name
from mpath.rig.model import (
    PathFault,
    Rig,
    RigLUN,
    RigPath,
    RigPortal,
    RigTarget,
    RigTPG,
    subnet_addresses,
)
from mpath.units import Rate


def test_subnets_map_into_the_benchmarking_range() -> None:
    assert subnet_addresses(1) == ("198.18.1.1", "198.18.1.2")
    assert subnet_addresses(256) == ("198.19.0.1", "198.19.0.2")
    assert subnet_addresses(511) == ("198.19.255.1", "198.19.255.2")
    for bad in (0, 512):
        with pytest.raises(ValueError, match="outside"):
            subnet_addresses(bad)


def test_fault_reports_the_strongest_fault() -> None:
    path = RigPath(1, 1, "mpr1", "path1", rate=Rate(10**9), current_rate=Rate(10**9))
    seen = [path.fault]
    path.current_rate = Rate(10**8)
    seen.append(path.fault)
    path.loss_pct = 5
    seen.append(path.fault)
    path.dropping = True
    seen.append(path.fault)
    path.link_down = True
    seen.append(path.fault)
    assert seen == [
        PathFault.NONE, PathFault.SLOW, PathFault.LOSS, PathFault.DROP, PathFault.DOWN,
    ]  # fmt: skip


def _rig() -> Rig:
    lun = RigLUN(1, "/x/lun.img", 1 << 20, "MPATHABC", "6" + "0" * 31)
    return Rig(
        name="r",
        backend="tgt",
        namespace="mpath-rig-r",
        state_dir="/x",
        control_port=30001,
        target=RigTarget("iqn.x:r", (RigTPG(1, (lun,), (RigPortal("198.18.1.2"),)),)),
        paths=[RigPath(1, 1, "mpr1", "path1", Rate(8000), Rate(16000), True, False)],
        daemon_pid=42,
    )


def test_state_round_trips() -> None:
    rig = _rig()
    again = Rig.from_state(rig.to_state())
    assert again == rig
    assert again.urls == ["iscsi://198.18.1.2/iqn.x:r/1"]
    assert again.lun.wwid == "36" + "0" * 31


def test_faults_and_a_resized_lun_round_trip() -> None:
    rig = _rig()
    rig.paths[0].loss_pct = 7
    rig.slow_origin = "/sys/fs/cgroup/cpu"
    rig.resize_lun(2 << 20)
    again = Rig.from_state(rig.to_state())
    assert again == rig
    assert (again.paths[0].loss_pct, again.target_slow, again.lun.size_bytes) == (7, True, 2 << 20)
    assert again.lun.serial == "MPATHABC"  # the identity survives the resize


def test_old_state_files_load_without_the_new_faults() -> None:
    doc = _rig().to_state()
    del doc["slow_origin"], doc["paths"][0]["loss_pct"]
    again = Rig.from_state(doc)
    assert (again.paths[0].loss_pct, again.target_slow) == (0, False)


def test_path_index_is_checked() -> None:
    with pytest.raises(RigUsageError, match=r"out of range: rig 'r' has paths 1\.\.1"):
        _rig().path(2)


def test_parse_rates() -> None:
    assert parse_rates(None, 2) == [None, None]
    assert parse_rates("400mbit", 2) == [Rate(400_000_000)] * 2
    assert parse_rates("400mbit,none", 2) == [Rate(400_000_000), None]
    with pytest.raises(RigUsageError, match="3 values for 2 paths"):
        parse_rates("1mbit,2mbit,3mbit", 2)


@pytest.mark.parametrize("name", ["", "UPPER", "a b", "x" * 33, "-lead"])
def test_bad_names(name: str) -> None:
    with pytest.raises(RigUsageError, match="bad rig name"):
        validate_name(name)
