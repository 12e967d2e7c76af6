"""The lab VM itself: the guest kernel has the storage stack the host lacks."""

from __future__ import annotations

import os
import platform
from pathlib import Path

import pytest

pytestmark = pytest.mark.lab


def test_guest_kernel_has_the_storage_stack() -> None:
    assert os.geteuid() == 0
    assert Path(f"/lib/modules/{platform.release()}/modules.dep").is_file()
    assert Path("/sys/kernel/config/target").is_dir(), "configfs or target_core_mod missing"
    for module in ("iscsi_target_mod", "dm_multipath", "nbd", "iscsi_tcp", "target_core_file"):
        assert Path(f"/sys/module/{module}").is_dir(), f"{module} not loaded"
    assert Path("/dev/nbd0").exists()


def test_guest_repository_is_writable_only_in_the_guest(tmp_path: Path) -> None:
    # The repository is an overlay in the guest: writes succeed there and never reach
    # the host's tree (the host side checks the tree is unchanged after the suite).
    probe = Path("lab-guest-write-probe")
    probe.write_text("guest\n")
    assert probe.read_text() == "guest\n"
