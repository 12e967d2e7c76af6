"""DEVICE parsing: every accepted form, and nothing that could escape /dev or /sys."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mpath.dm.devices import DeviceRef, parse_device
from mpath.errors import UsageError
from mpath.sysfs.tree import Sysfs
from tests.sysfs.fakesys import FakeSysfs

IQN = "iqn.2026-11.org.mpath:rig.a"


@pytest.fixture
def disks(fake_sysfs: FakeSysfs) -> FakeSysfs:
    fake_sysfs.add_disk("sdb", "3:0:0:1", "8:16")
    return fake_sysfs


def test_forms(disks: FakeSysfs, sysfs: Sysfs) -> None:
    assert parse_device("sdb", sysfs) == DeviceRef("sdb")
    assert parse_device("/dev/sdb", sysfs) == DeviceRef("sdb")
    assert parse_device("8:16", sysfs) == DeviceRef("sdb")
    url = parse_device(f"iscsi://198.18.1.2:3260/{IQN}/1", sysfs)
    assert url.key == f"iscsi://198.18.1.2/{IQN}/1" and url.is_iscsi
    assert parse_device("sdz", sysfs) == DeviceRef("sdz")  # existence is the caller's question


@pytest.mark.parametrize(
    "text",
    [
        "",
        "8:99",
        "../../etc/passwd",
        "/dev/../etc/shadow",
        "/etc/passwd",
        "/dev/disk/../../etc",
        "$(reboot)",
        "sdb; rm -rf /",
        "`id`",
        "sd\0b",
        "iscsi://198.18.1.2/not-an-iqn/1",
        "iscsi://user:pw@198.18.1.2/" + IQN + "/1",
        "x" * 5000,
    ],
)
def test_refused(text: str, disks: FakeSysfs, sysfs: Sysfs) -> None:
    with pytest.raises(UsageError):
        parse_device(text, sysfs)


@given(st.text(max_size=80))
def test_any_text_is_refused_cleanly_or_gives_a_safe_key(text: str) -> None:
    sysfs = Sysfs("/nonexistent-sysfs")
    try:
        ref = parse_device(text, sysfs)
    except UsageError:
        return
    assert "/" not in ref.key or ref.key.startswith("iscsi://")
    assert ".." not in ref.key.removeprefix("iscsi://")
