"""sysfs reading against a fake tree: names, numbers, state, counters, iSCSI sessions."""

from __future__ import annotations

from pathlib import Path

import pytest

from mpath.sysfs.tree import (
    SYSFS_ENV,
    BlockStat,
    IscsiSession,
    Sysfs,
    multipath_wwid,
    parse_stat,
    valid_block_name,
)
from mpath.transports.urls import parse_iscsi_url
from tests.sysfs.fakesys import FakeSysfs, stat_line

IQN = "iqn.2026-11.org.mpath:rig.a"


@pytest.fixture
def two_sessions(fake_sysfs: FakeSysfs) -> FakeSysfs:
    one = fake_sysfs.add_session(1, 3, IQN, "198.18.1.2")
    two = fake_sysfs.add_session(2, 4, IQN, "198.18.2.2", port=3261)
    fake_sysfs.add_disk("sdb", "3:0:0:1", "8:16", parent=one)
    fake_sysfs.add_disk("sdc", "4:0:0:1", "8:32", parent=two, state="blocked")
    fake_sysfs.add_disk("sdd", "4:0:0:2", "8:48", parent=two, wwid="naa.600140500000000000000002")
    fake_sysfs.add_disk("sda", "0:0:0:0", "8:0", wwid="t10.ATA     disk")
    return fake_sysfs


def test_root_from_environment(tmp_path: Path) -> None:
    assert Sysfs(environ={}).root == Path("/sys")
    assert Sysfs(environ={SYSFS_ENV: str(tmp_path)}).root == tmp_path
    assert Sysfs(tmp_path, environ={SYSFS_ENV: "/elsewhere"}).root == tmp_path


def test_block_device_attributes(two_sessions: FakeSysfs, sysfs: Sysfs) -> None:
    assert sysfs.block_devices() == ["sda", "sdb", "sdc", "sdd"]
    assert sysfs.exists("sdb") and not sysfs.exists("sdz")
    assert sysfs.name_of_devnum(8, 32) == "sdc"
    assert sysfs.name_of_devnum(8, 99) is None
    assert sysfs.devnum("sdb") == "8:16"
    assert sysfs.state("sdb") == "running"
    assert sysfs.state("sdc") == "blocked"
    assert sysfs.hbtl("sdd") == "4:0:0:2"
    assert sysfs.wwid("sdb") == "36001405aaaaaaaaaaaaaaaaaaaaaaaaa"
    assert sysfs.inquiry("sdb") == ("MPATH", "RIG-LUN")


def test_peers_share_a_wwid(two_sessions: FakeSysfs, sysfs: Sysfs) -> None:
    assert sysfs.peers("sdb") == ["sdb", "sdc"]
    assert sysfs.peers("sdd") == ["sdd"]


def test_iscsi_url_to_kernel_disk(two_sessions: FakeSysfs, sysfs: Sysfs) -> None:
    def disk(url: str) -> str | None:
        return sysfs.iscsi_disk(parse_iscsi_url(url))

    assert disk(f"iscsi://198.18.1.2/{IQN}/1") == "sdb"
    assert disk(f"iscsi://198.18.2.2:3261/{IQN}/1") == "sdc"
    assert disk(f"iscsi://198.18.2.2:3261/{IQN}/2") == "sdd"
    assert disk(f"iscsi://198.18.2.2/{IQN}/1") is None  # other port
    assert disk(f"iscsi://198.18.1.2/{IQN}/7") is None  # other LUN
    assert disk("iscsi://198.18.1.2/iqn.2026-11.org.other:x/1") is None
    assert Sysfs("/nonexistent").iscsi_disk(parse_iscsi_url(f"iscsi://198.18.1.2/{IQN}/1")) is None


def test_open_iscsi_session_of_a_disk(two_sessions: FakeSysfs, sysfs: Sysfs) -> None:
    one = sysfs.iscsi_session("sdb")
    assert one == IscsiSession("session1", IQN, "198.18.1.2", 3260)
    assert str(one) == f"session1 {IQN} 198.18.1.2:3260"
    assert sysfs.iscsi_session("sdd") == IscsiSession("session2", IQN, "198.18.2.2", 3261)
    assert sysfs.iscsi_session("sda") is None  # a local disk has no session
    assert sysfs.iscsi_session("sdz") is None
    described = sysfs.iscsi_session("sdc")
    assert described is not None and described.describe() == {
        "name": "session2", "target": IQN, "address": "198.18.2.2", "port": 3261,
    }  # fmt: skip


def test_io_error_ratio(fake_sysfs: FakeSysfs, sysfs: Sysfs) -> None:
    fake_sysfs.add_disk("sdb", "3:0:0:1", "8:16", errors=(5, 100))
    fake_sysfs.add_disk("sdc", "4:0:0:1", "8:32")
    assert sysfs.io_error_ratio("sdb") == pytest.approx(0.05)
    assert sysfs.io_error_ratio("sdc") is None


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("naa.6001405ABCDEF", "36001405abcdef"),
        ("eui.0011223344556677", "20011223344556677"),
        ("t10.ATA     disk", "1ATA     disk"),
        ("36001405abc", "36001405abc"),
    ],
)
def test_multipath_wwid_spelling(raw: str, expected: str) -> None:
    assert multipath_wwid(raw) == expected


def test_stat_counters() -> None:
    line = stat_line(read_ios=1000, read_sectors=400_000, read_ticks=5000, io_ticks=2000)
    stat = parse_stat(line)
    assert stat == BlockStat(ios=1000, sectors=400_000, ticks_ms=5000, io_ticks_ms=2000)
    assert stat.mb_per_s == pytest.approx(400_000 * 512 / 2.0 / 1e6)
    assert stat.latency_ms == 5.0
    assert parse_stat("1 2 3") is None
    assert parse_stat("a " * 11) is None
    assert BlockStat(ios=1, sectors=8, ticks_ms=1, io_ticks_ms=1).mb_per_s is None  # too little
    assert BlockStat(ios=0, sectors=0, ticks_ms=0, io_ticks_ms=0).latency_ms is None


@pytest.mark.parametrize("name", ["sdb", "nvme0n1", "dm-0", "cciss!c0d0", "loop7"])
def test_valid_names(name: str) -> None:
    assert valid_block_name(name)


@pytest.mark.parametrize("name", ["", "..", "../sdb", "sd/b", ".hidden", "a" * 65, "sd b", "x\n"])
def test_invalid_names(name: str, sysfs: Sysfs) -> None:
    assert not valid_block_name(name)
    assert not sysfs.exists(name)
    with pytest.raises(ValueError):
        sysfs.state(name)
