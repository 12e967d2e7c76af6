"""Loop devices for tests: real block devices over image files, always detached.

Tests of block-device paths need two kinds of pair: two loop devices over *one* image
file (two paths to one "LUN") and two over *different* files (must be refused). The
``loop_devices`` fixture attaches them with ``losetup --find --show --direct-io=on``
and detaches every one it attached when the test ends, pass or fail. It skips, saying
why, when the test does not run as root or losetup cannot attach a device.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

import pytest

#: Bound on each losetup call (seconds).
LOSETUP_TIMEOUT = 30


class LoopFactory(Protocol):
    def __call__(self, backing: Path, *extra: str) -> str: ...


def make_image(folder: Path, name: str, size: int = 64 * 1024 * 1024) -> Path:
    """A sparse image file of ``size`` bytes."""
    image = folder / name
    with image.open("wb") as handle:
        handle.truncate(size)
    return image


def loop_skip_reason() -> str | None:
    if os.geteuid() != 0:
        return "needs root to attach loop devices"
    if shutil.which("losetup") is None:
        return "losetup is not installed"
    return None


def attach_loops() -> Iterator[LoopFactory]:
    """The body of the ``loop_devices`` fixture (see the module docstring)."""
    reason = loop_skip_reason()
    if reason is not None:
        pytest.skip(reason)
    attached: list[str] = []

    def attach(backing: Path, *extra: str) -> str:
        result = subprocess.run(
            ["losetup", "--find", "--show", "--direct-io=on", *extra, str(backing)],
            capture_output=True,
            text=True,
            timeout=LOSETUP_TIMEOUT,
        )
        if result.returncode != 0:
            pytest.skip(f"losetup cannot attach a loop device: {result.stderr.strip()}")
        node = result.stdout.strip()
        attached.append(node)
        return node

    try:
        yield attach
    finally:
        for node in reversed(attached):
            subprocess.run(["losetup", "-d", node], capture_output=True, timeout=LOSETUP_TIMEOUT)


loop_devices = pytest.fixture(name="loop_devices")(attach_loops)
