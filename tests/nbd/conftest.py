"""Fixtures of the NBD tests: short socket paths (Unix socket paths are limited to 107
bytes, and pytest's tmp_path can be longer)."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture
def sock_dir() -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp(prefix="mpnbd-", dir="/tmp"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def sock(sock_dir: Path) -> str:
    return str(sock_dir / "nbd.sock")
