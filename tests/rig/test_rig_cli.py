"""The rig through its command line, checked with libiscsi's own tools (real rig)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from mpath.rig import RigManager
from tests.conftest import RigFactory, unique_rig_name
from tests.tools.libiscsi_cli import designators, inquiry, sequential_read_rate, unit_serial

pytestmark = pytest.mark.rig

MPATH = [sys.executable, "-m", "mpath"]


def mpath(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([*MPATH, *args], capture_output=True, text=True, check=False)
    if check:
        assert result.returncode == 0, result.stderr
    return result


@pytest.fixture(scope="module")
def cli_rig() -> Iterator[dict[str, Any]]:
    """``mpath rig up --paths 2 --json`` run as a user would; always brought down."""
    name = unique_rig_name("cli")
    try:
        up = mpath("rig", "up", "--paths", "2", "--size", "256M", "--name", name, "--json")
        yield json.loads(up.stdout)
    finally:
        mpath("rig", "down", "--name", name)


def test_up_json_has_the_contract_keys(cli_rig: dict[str, Any]) -> None:
    for key in ("name", "backend", "target", "lun", "backing_file", "portals", "urls"):
        assert key in cli_rig
    assert cli_rig["backend"] == "tgt"
    assert len(cli_rig["portals"]) == 2
    assert os.path.getsize(str(cli_rig["backing_file"])) == 256 * 1024**2


def test_iscsi_inq_answers_on_both_urls_with_one_identity(cli_rig: dict[str, Any]) -> None:
    urls: list[str] = cli_rig["urls"]
    ids = [designators(url) for url in urls]
    assert ids[0] == ids[1]
    assert str(cli_rig["wwid"])[1:] in ids[0]
    assert unit_serial(urls[0]) == unit_serial(urls[1]) == cli_rig["serial"]


def _status(name: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(mpath("rig", "status", "--name", name, "--json").stdout)
    return doc


@pytest.mark.parametrize("action", ["down", "drop"])
def test_fault_cuts_one_path_and_clearing_restores_it(cli_rig: dict[str, Any], action: str) -> None:
    name = str(cli_rig["name"])
    url1, url2 = cli_rig["urls"]
    mpath("rig", "fault", "1", action, "--name", name)
    try:
        status = _status(name)
        path1, path2 = status["paths"]
        assert path1["fault"] == action
        assert path1["link"] == ("down" if action == "down" else "up")
        assert path2["fault"] == "none"
        assert inquiry(url1, timeout=3) is None, "path 1 still answers while faulted"
        assert inquiry(url2) is not None, "path 2 must keep answering"
    finally:
        mpath("rig", "fault", "1", "up" if action == "down" else "clear", "--name", name)
    assert inquiry(url1) is not None, "path 1 did not come back"
    assert _status(name)["paths"][0]["fault"] == "none"


def test_rate_limit_is_measurable(cli_rig: dict[str, Any]) -> None:
    """400mbit on path 1 reads at about 50 MB/s; unlimited path 2 is much faster."""
    name = str(cli_rig["name"])
    url1, url2 = cli_rig["urls"]
    mpath("rig", "fault", "1", "rate", "400mbit", "--name", name)
    try:
        assert _status(name)["paths"][0]["rate"] == "400mbit"
        limited = sequential_read_rate(url1, seconds=4)
        unlimited = sequential_read_rate(url2, seconds=4)
    finally:
        mpath("rig", "fault", "1", "clear", "--name", name)
    assert 40e6 <= limited.bytes_per_second <= 52e6, limited
    assert unlimited.bytes_per_second > 2 * limited.bytes_per_second, (limited, unlimited)


def test_down_removes_everything_and_is_safe_twice() -> None:
    name = unique_rig_name("twice")
    doc = json.loads(
        mpath("rig", "up", "--paths", "2", "--size", "8M", "--name", name, "--json").stdout
    )
    namespace = doc["namespace"]
    assert (
        namespace in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    )
    mpath("rig", "down", "--name", name)
    second = mpath("rig", "down", "--name", name)
    assert "nothing to remove" in second.stderr
    assert (
        namespace
        not in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    )
    assert not os.path.exists(doc["backing_file"])
    assert name not in RigManager().names()
    host_addresses = subprocess.run(["ip", "-o", "addr"], capture_output=True, text=True).stdout
    for portal in doc["portals"]:
        initiator_side = portal.split(":")[0].rsplit(".", 1)[0] + ".1"
        assert f" {initiator_side}/" not in host_addresses


def test_two_rigs_have_distinct_identities_and_addresses(make_rig: RigFactory) -> None:
    first, second = make_rig(paths=1), make_rig(paths=1)
    assert first.lun.wwid != second.lun.wwid
    assert first.lun.serial != second.lun.serial
    assert first.control_port != second.control_port
    assert first.paths[0].subnet != second.paths[0].subnet
    assert designators(first.urls[0]) != designators(second.urls[0])
    assert unit_serial(second.urls[0]) == second.lun.serial
