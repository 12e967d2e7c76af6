"""The LIO rig backend on a real kernel target (lab): paths, faults, ALUA, JSON, teardown.

The same checks the tgt rig passes (tests/rig/test_rig_cli.py), with libiscsi's own
tools as witnesses; then ALUA, which only LIO has: each path is its own target port
group, and ``rig fault N alua STATE`` changes what that path answers.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from mpath.cli import main
from mpath.rig import Rig, RigManager
from mpath.rig.backends.lio import ALUA_STATES, lio_naa_designator
from tests.conftest import unique_rig_name
from tests.tools.libiscsi_cli import designators, inquiry, unit_serial

pytestmark = pytest.mark.lab

CONFIGFS = Path("/sys/kernel/config/target")


def cli(*args: str, code: int = 0) -> str:
    """Run ``mpath ARGS`` in-process (a new interpreter costs ~13 s under TCG)."""
    result = CliRunner().invoke(main, list(args))
    assert result.exit_code == code, (result.stdout, result.stderr, result.exception)
    return result.stdout + result.stderr


def status(rig: Rig) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(cli("rig", "status", "--name", rig.name, "--json"))
    return doc


def test_lio_rig_has_the_tgt_rigs_json_and_one_identity_on_every_path(lio_rig: Rig) -> None:
    doc = lio_rig.describe()
    assert set(doc) == {
        "name", "backend", "target", "lun", "backing_file", "size_bytes", "wwid",
        "serial", "namespace", "portals", "urls",
    }  # fmt: skip
    assert doc["backend"] == "lio"
    assert len(doc["portals"]) == len(doc["urls"]) == 2
    url1, url2 = lio_rig.urls
    ids = [designators(url) for url in lio_rig.urls]
    assert ids[0] and set(ids[0]) & set(ids[1])
    # LIO derives the NAA designator from the serial; the rig reports that one (the
    # kernel initiator's view of it is checked in test_open_iscsi.py).
    assert lio_rig.lun.designator == lio_naa_designator(lio_rig.lun.serial)
    assert unit_serial(url1) == unit_serial(url2) == lio_rig.lun.serial
    text = inquiry(url1)
    assert text is not None and "Vendor:MPATH" in text and "TPGS:1" in text


@pytest.mark.parametrize("action", ["down", "drop"])
def test_fault_cuts_one_path_and_clearing_restores_it(lio_rig: Rig, action: str) -> None:
    url1, url2 = lio_rig.urls
    cli("rig", "fault", "1", action, "--name", lio_rig.name)
    try:
        path1, path2 = status(lio_rig)["paths"]
        assert (path1["fault"], path2["fault"]) == (action, "none")
        assert inquiry(url1, timeout=3) is None, "path 1 still answers while faulted"
        assert inquiry(url2, timeout=10) is not None, "path 2 must keep answering"
    finally:
        cli("rig", "fault", "1", "clear", "--name", lio_rig.name)
    assert inquiry(url1, timeout=10) is not None, "path 1 did not come back"
    assert status(lio_rig)["paths"][0]["fault"] == "none"


def test_rate_fault_is_recorded_and_cleared(lio_rig: Rig) -> None:
    cli("rig", "fault", "2", "rate", "100mbit", "--name", lio_rig.name)
    assert status(lio_rig)["paths"][1]["rate"] == "100mbit"
    cli("rig", "fault", "2", "clear", "--name", lio_rig.name)
    assert status(lio_rig)["paths"][1]["fault"] == "none"


def _group_state(rig: Rig, index: int) -> int:
    (state,) = CONFIGFS.glob(
        f"core/fileio_*/mpath_rig_{rig.name}/alua/path{index}/alua_access_state"
    )
    return int(state.read_text())


def _check(url: str) -> dict[str, Any]:
    result = CliRunner().invoke(main, ["check", url, "--json", "--timeout", "10"])
    (entry,) = json.loads(result.stdout)
    assert isinstance(entry, dict)
    return entry


@pytest.mark.parametrize(
    ("state", "checker_state"),
    [
        ("active-nonoptimized", "up"),
        ("standby", "ghost"),
        ("transitioning", "pending"),
        ("unavailable", "down"),
        ("active-optimized", "up"),
    ],
)
def test_alua_fault_sets_the_paths_own_group_and_the_checker_sees_it(
    lio_rig: Rig, state: str, checker_state: str
) -> None:
    url1, url2 = lio_rig.urls
    try:
        out = cli("rig", "fault", "2", "alua", state, "--name", lio_rig.name)
        assert f"path 2: alua {state}" in out
        assert _group_state(lio_rig, 2) == ALUA_STATES[state]
        assert _group_state(lio_rig, 1) == ALUA_STATES["active-optimized"]
        assert status(lio_rig)["paths"][1]["alua"] == state
        # mpath's TUR checker reads the real target's answer on each path.
        assert _check(url2)["state"] == checker_state
        assert _check(url1)["state"] == "up"
    finally:
        RigManager().fault(lio_rig.name, 2, "alua", alua_state="active-optimized")


def test_alua_bad_state_and_tgt_rig_are_usage_errors(lio_rig: Rig) -> None:
    out = cli("rig", "fault", "2", "alua", "sideways", "--name", lio_rig.name, code=2)
    assert "unknown ALUA state 'sideways'" in out
    out = cli("rig", "fault", "2", "alua", "--name", lio_rig.name, code=2)
    assert "takes a STATE" in out


def test_down_removes_the_target_backstore_and_namespace() -> None:
    manager = RigManager()
    name = unique_rig_name("liodown")
    try:
        rig = manager.up(name=name, paths=2, size=8 * 1024**2, backend="lio")
        iqn = rig.target.iqn
        assert (CONFIGFS / "iscsi" / iqn).is_dir()
        assert sorted(p.name for p in (CONFIGFS / "iscsi" / iqn).glob("tpgt_*")) == [
            "tpgt_1",
            "tpgt_2",
        ]
    finally:
        assert manager.down(name)
    assert not (CONFIGFS / "iscsi" / iqn).exists()
    assert not list(CONFIGFS.glob(f"core/fileio_*/mpath_rig_{name}"))
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert rig.namespace not in netns
    assert not manager.down(name)
