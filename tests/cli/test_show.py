"""``mpath show``: the topology of a device over two loop devices of one file (root),
the JSON contract on a real 2-path rig, configuration and blacklist, bad input."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from mpath.cli import main
from mpath.cli.show import contract_checker_state, render
from mpath.rig import Rig, RigManager
from mpath.scsi.states import CheckerState
from tests.discovery.loops import LoopFactory, attach_loops, make_image

loop_devices = pytest.fixture(name="loop_devices")(attach_loops)

CONTRACT_DEVICE_KEYS = {"wwid", "vendor", "product", "size_bytes", "policy", "max_commands"}
CONTRACT_PATH_KEYS = {"url", "state", "checker", "priority", "share"}


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, ["show", *args])
    return result.exit_code, result.stdout, result.stderr


def check_contract(document: dict[str, Any], urls: list[str]) -> list[dict[str, Any]]:
    """The JSON contract of docs/cli.md; returns the paths in group order."""
    assert CONTRACT_DEVICE_KEYS | {"groups"} <= set(document)
    assert isinstance(document["wwid"], str) and document["wwid"]
    assert isinstance(document["size_bytes"], int) and document["size_bytes"] > 0
    assert isinstance(document["max_commands"], int) and document["max_commands"] > 0
    paths: list[dict[str, Any]] = []
    for group in document["groups"]:
        assert {"priority", "paths"} <= set(group)
        for path in group["paths"]:
            assert set(path) >= CONTRACT_PATH_KEYS
            assert path["state"] in ("active", "failed")
            assert path["checker"] in ("up", "down", "ghost", "pending", "shaky")
            assert path["priority"] == group["priority"]
            assert 0.0 <= path["share"] <= 1.0
            paths.append(path)
    assert sorted(p["url"] for p in paths) == sorted(urls)
    return paths


def test_checker_states_outside_the_contract_are_mapped_into_it() -> None:
    assert contract_checker_state(CheckerState.UP) == "up"
    assert contract_checker_state(CheckerState.SHAKY) == "shaky"
    assert contract_checker_state(CheckerState.TIMEOUT) == "down"
    assert contract_checker_state(CheckerState.REMOVED) == "down"
    assert contract_checker_state(CheckerState.UNCHECKED) == "pending"
    assert contract_checker_state(CheckerState.WILD) == "pending"


def test_path_lines_end_with_the_alua_state_and_the_open_iscsi_session() -> None:
    path = {"url": "/dev/sda", "state": "active", "checker": "ghost", "share": 0.0,
            "bytes": 0, "ios": 0, "alua_group": 1, "alua_state": "standby",
            "iscsi_session": {"name": "session3", "target": "iqn.x:t",
                              "address": "198.18.1.2", "port": 3260}}  # fmt: skip
    plain = {**path, "url": "iscsi://198.18.2.2/iqn.x:t/1", "alua_group": None,
             "alua_state": None, "iscsi_session": None}  # fmt: skip
    document = {"wwid": "3600", "vendor": "MPATH", "product": "RIG-LUN", "size_bytes": 1 << 26,
                "policy": "share", "policy_args": [], "max_commands": 64,
                "groups": [{"priority": 0, "status": "active",
                            "paths": [path, plain]}]}  # fmt: skip
    _, _, first, second = render(document)
    assert first.endswith("ios=0 alua group 1 standby session3 iqn.x:t 198.18.1.2:3260")
    assert second.endswith("ios=0")


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ([], "give at least one PATH"),
        (["/dev/mpath-test-no-such-node"], "no such device node"),
        (["/dev/null"], "not a block device"),
        (["iscsi:/nope"], "bad path"),
        (["/dev/null", "--config", "/nonexistent/mpath.toml"], "not a block device"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args: list[str], expected: str) -> None:
    code, out, err = invoke(*args)
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1 and expected in err
    assert "Traceback" not in err


def test_an_unreachable_path_is_exit_1_with_one_line() -> None:
    code, out, err = invoke("iscsi://127.0.0.1:1/iqn.2026-11.org.mpath:nobody/1")
    assert code == 1
    assert out == ""
    assert err.count("\n") == 1 and "no path could be opened" in err


# -- loop devices -------------------------------------------------------------------------


@pytest.fixture
def pair(loop_devices: LoopFactory, tmp_path: Path) -> list[str]:
    image = make_image(tmp_path, "lun.img")
    return [loop_devices(image), loop_devices(image)]


def test_two_loop_devices_of_one_file_show_as_one_device_with_two_paths(
    pair: list[str],
) -> None:
    code, out, err = invoke(*pair)
    assert code == 0, err
    lines = out.splitlines()
    assert len(lines) == 4
    wwid, identity, *settings = lines[0].split()
    assert wwid.startswith("1MPATH_loopfile-")
    assert identity == "LINUX,LOOP"
    assert settings == ["size=64M", "policy=share", "max_commands=64"]
    assert lines[1] == "`-+- policy='share' prio=0 status=active"
    assert lines[2].split() == ["|-", pair[0], "active", "up", "share=0.50", "bytes=0", "ios=0"]
    assert lines[3].split() == ["`-", pair[1], "active", "up", "share=0.50", "bytes=0", "ios=0"]


def test_json_over_loop_devices_follows_the_contract(pair: list[str]) -> None:
    code, out, _ = invoke(*pair, "--json", "--policy", "round-robin")
    assert code == 0
    document = json.loads(out)
    paths = check_contract(document, pair)
    assert (document["vendor"], document["product"]) == ("LINUX", "LOOP")
    assert document["size_bytes"] == 64 * 1024 * 1024
    assert document["policy"] == "round-robin"
    assert [p["state"] for p in paths] == ["active", "active"]
    assert [p["checker"] for p in paths] == ["up", "up"]
    assert len(document["groups"]) == 1 and document["groups"][0]["status"] == "active"


def test_loop_devices_of_different_files_are_refused_naming_both_identities(
    loop_devices: LoopFactory, tmp_path: Path
) -> None:
    first = loop_devices(make_image(tmp_path, "a.img"))
    second = loop_devices(make_image(tmp_path, "b.img"))
    code, out, err = invoke(first, second)
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1
    assert f"{first} is 1MPATH_loopfile-" in err and f"{second} is 1MPATH_loopfile-" in err
    assert str(tmp_path / "a.img") in err and str(tmp_path / "b.img") in err


def test_settings_come_from_the_config_file_unless_typed(pair: list[str], tmp_path: Path) -> None:
    config = tmp_path / "mpath.toml"
    config.write_text('[defaults]\npolicy = "queue-length"\nmax_commands = 12\n')
    code, out, _ = invoke(*pair, "--config", str(config), "--json")
    assert code == 0
    document = json.loads(out)
    assert (document["policy"], document["max_commands"]) == ("queue-length", 12)
    assert document["config_file"] == str(config)
    code, out, _ = invoke(*pair, "--config", str(config), "--json", "--policy", "failover")
    assert code == 0
    assert json.loads(out)["policy"] == "failover"


def test_a_multipaths_alias_is_shown(pair: list[str], tmp_path: Path) -> None:
    code, out, _ = invoke(*pair, "--json")
    wwid = json.loads(out)["wwid"]
    config = tmp_path / "mpath.toml"
    config.write_text(f'[[multipaths]]\nwwid = "{wwid}"\nalias = "scratch"\n')
    code, out, _ = invoke(*pair, "--config", str(config))
    assert code == 0
    assert out.splitlines()[0].endswith(" alias=scratch")


@pytest.mark.parametrize(
    ("section", "rule_text"),
    [
        ('devnode = ["^loop[0-9]+$"]', "devnode"),
        ('device = [{ vendor = "^LINUX$", product = "^LOOP$" }]', "device"),
        ('wwid = ["^1MPATH_loopfile-"]', "wwid"),
    ],
)
def test_a_blacklisted_device_is_refused_with_exit_2_naming_the_rule(
    pair: list[str], tmp_path: Path, section: str, rule_text: str
) -> None:
    config = tmp_path / "mpath.toml"
    config.write_text(f"[blacklist]\n{section}\n")
    code, out, err = invoke(*pair, "--config", str(config))
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1
    assert "blacklisted" in err and f"matches blacklist {rule_text}" in err
    assert f"{config}:2" in err


# -- the real rig ---------------------------------------------------------------------------


@pytest.mark.rig
def test_show_on_a_two_path_rig_matches_the_contract(rig2: Rig) -> None:
    code, out, err = invoke(*rig2.urls, "--json")
    assert code == 0, err
    document = json.loads(out)
    paths = check_contract(document, rig2.urls)
    assert document["wwid"] == rig2.lun.wwid
    assert (document["vendor"], document["product"]) == ("MPATH", "RIG-LUN")
    assert document["size_bytes"] == rig2.lun.size_bytes
    assert document["policy"] == "share"
    assert [p["state"] for p in paths] == ["active", "active"]
    assert [p["checker"] for p in paths] == ["up", "up"]
    assert abs(sum(p["share"] for p in paths) - 1.0) < 1e-6
    code, out, _ = invoke(*rig2.urls)
    assert code == 0
    assert out.splitlines()[0].startswith(f"{rig2.lun.wwid} MPATH,RIG-LUN size=64M policy=share")


@pytest.mark.rig
def test_a_cut_path_shows_failed_and_down_while_the_device_stays_usable(rig2: Rig) -> None:
    manager = RigManager()
    manager.fault(rig2.name, 2, "down")
    try:
        code, out, err = invoke(*rig2.urls, "--json")
    finally:
        manager.fault(rig2.name, 2, "up")
    assert code == 0, err
    document = json.loads(out)
    paths = check_contract(document, rig2.urls)
    by_url = {p["url"]: p for p in paths}
    assert (by_url[rig2.urls[0]]["state"], by_url[rig2.urls[0]]["checker"]) == ("active", "up")
    assert (by_url[rig2.urls[1]]["state"], by_url[rig2.urls[1]]["checker"]) == ("failed", "down")
    assert by_url[rig2.urls[1]]["share"] == 0.0
    assert document["groups"][0]["status"] == "active"


@pytest.mark.rig
def test_bench_takes_its_settings_and_blacklist_from_the_config_file(
    rig2: Rig, tmp_path: Path
) -> None:
    config = tmp_path / "mpath.toml"
    config.write_text(
        f'[[multipaths]]\nwwid = "{rig2.lun.wwid}"\npolicy = "round-robin"\nmax_commands = 8\n'
    )
    args = ["bench", *rig2.urls, "--seconds", "1", "--rw", "randwrite", "--verify"]
    result = CliRunner().invoke(main, [*args, "--span", "8M", "--json", "--config", str(config)])
    assert result.exit_code == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["policy"] == "round-robin"
    assert document["errors"] == 0 and document["verify_mismatches"] == 0
    blacklist = tmp_path / "blacklist.toml"
    blacklist.write_text(f'[blacklist]\nwwid = ["^{rig2.lun.wwid}$"]\n')
    result = CliRunner().invoke(main, [*args, "--config", str(blacklist)])
    assert result.exit_code == 2
    assert f"LUN {rig2.lun.wwid} (MPATH,RIG-LUN): blacklisted: wwid" in result.stderr


def test_kernel_names_and_numbers_are_taken_like_prio_and_dm_config(pair: list[str]) -> None:
    """``show loop3 7:4`` is ``show /dev/loop3 /dev/loop4`` (``sdb`` works the same way)."""
    first = os.path.basename(pair[0])
    number = os.stat(pair[1]).st_rdev
    code, out, err = invoke(first, f"{os.major(number)}:{os.minor(number)}")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[2].split()[1] == pair[0] and lines[3].split()[1] == pair[1]


def test_a_kernel_name_with_no_device_is_one_line_and_exit_2() -> None:
    code, _, err = invoke("sdzz")
    assert code == 2
    assert err.strip() == "mpath: error: sdzz: no such block device (/dev/sdzz does not exist)"
