"""The LIO backend on hosts that have the kernel target (skips elsewhere, saying why)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mpath.rig import RigManager
from tests.conftest import unique_rig_name
from tests.tools.libiscsi_cli import designators

pytestmark = [
    pytest.mark.rig,
    pytest.mark.skipif(
        not Path("/sys/kernel/config/target").is_dir(),
        reason="LIO needs configfs at /sys/kernel/config/target and the target_core_mod/"
        "iscsi_target_mod kernel modules; this kernel has neither",
    ),
]


def test_lio_rig_serves_one_identity_on_every_path() -> None:
    manager = RigManager()
    name = unique_rig_name("lio")
    try:
        rig = manager.up(name=name, paths=2, size=16 * 1024**2, backend="lio")
        ids = [designators(url) for url in rig.urls]
        assert ids[0] == ids[1] and ids[0]
    finally:
        manager.down(name)
