"""Fixtures for the dm tests: a fake sysfs and a measurement store in tmp_path."""

from __future__ import annotations

from pathlib import Path

import pytest

from mpath.dm.store import MeasurementStore
from mpath.dm.sysfs import Sysfs
from tests.dm.fakesys import FakeSysfs


@pytest.fixture
def fake_sysfs(tmp_path: Path) -> FakeSysfs:
    return FakeSysfs(tmp_path / "sys")


@pytest.fixture
def sysfs(fake_sysfs: FakeSysfs) -> Sysfs:
    return Sysfs(fake_sysfs.root)


@pytest.fixture
def store(tmp_path: Path) -> MeasurementStore:
    return MeasurementStore(tmp_path / "state" / "paths.json")
