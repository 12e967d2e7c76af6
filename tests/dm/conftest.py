"""Fixtures for the dm tests: the fake sysfs of tests/sysfs, and a measurement store."""

from __future__ import annotations

from pathlib import Path

import pytest

from mpath.dm.store import MeasurementStore
from tests.sysfs.conftest import fake_sysfs, sysfs

__all__ = ["fake_sysfs", "store", "sysfs"]


@pytest.fixture
def store(tmp_path: Path) -> MeasurementStore:
    return MeasurementStore(tmp_path / "state" / "paths.json")
