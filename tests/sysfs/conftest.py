"""Fixtures for the sysfs tests: a fake sysfs tree in tmp_path and a reader over it."""

from __future__ import annotations

from pathlib import Path

import pytest

from mpath.sysfs.tree import Sysfs
from tests.sysfs.fakesys import FakeSysfs


@pytest.fixture
def fake_sysfs(tmp_path: Path) -> FakeSysfs:
    return FakeSysfs(tmp_path / "sys")


@pytest.fixture
def sysfs(fake_sysfs: FakeSysfs) -> Sysfs:
    return Sysfs(fake_sysfs.root)
