"""``mpath discover``: SendTargets + login + REPORT LUNS + identity on a real 2-path
rig, CHAP (one-way and mutual) on tgt, failures reported per portal, bad input; and
``--block`` over loop devices."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from mpath.cli import main
from mpath.rig import Rig, RigManager
from tests.discovery.loops import LoopFactory, attach_loops, make_image

loop_devices = pytest.fixture(name="loop_devices")(attach_loops)

#: Nothing listens on port 1 of the loopback address: a login there is refused at once.
REFUSED = "127.0.0.1:1"


def invoke(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, ["discover", *args], env=env)
    return result.exit_code, result.stdout, result.stderr


def portals_of(rig: Rig) -> list[str]:
    """The rig's portals as discover takes them: HOST (port 3260 left implicit)."""
    return [str(p).removesuffix(":3260") for p in rig.portals]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ([], "give at least one PORTAL"),
        (["198.18.1.2:0"], "bad portal '198.18.1.2:0'"),
        (["fd00::1"], "bad portal 'fd00::1'"),
        (
            ["iscsi://198.18.1.2/iqn.2026-11.org.mpath:rig.mpath/1"],
            "a portal is HOST[:PORT] (e.g. 198.18.1.2 or [fd00::1]:3260), not a URL or path; "
            "discover finds the URLs behind it; this URL's portal is 198.18.1.2:3260",
        ),
        (["/dev/sdb"], "bad portal '/dev/sdb': a portal is HOST[:PORT]"),
        (["--block", "198.18.1.2"], "--block takes no PORTAL"),
        (["198.18.1.2", "--config", "/nonexistent/mpath.toml"], "configuration file not found"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args: list[str], expected: str) -> None:
    code, out, err = invoke(*args)
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1 and expected in err
    assert "Traceback" not in err


def test_a_refused_portal_is_exit_1_with_one_line() -> None:
    code, out, err = invoke(REFUSED, "--json")
    assert code == 1
    document = json.loads(out)
    assert document["devices"] == []
    assert [e["portal"] for e in document["errors"]] == [REFUSED]
    assert err.count("\n") == 1
    assert err.startswith(f"mpath: error: {REFUSED}: SendTargets discovery failed: ")
    assert "Connection refused" in err


# -- a real 2-path rig --------------------------------------------------------------------


@pytest.mark.rig
def test_two_portals_give_one_device_with_two_paths_and_the_rigs_wwid(rig2: Rig) -> None:
    code, out, err = invoke(*portals_of(rig2), "--json")
    assert code == 0, err
    document = json.loads(out)
    assert document["errors"] == []
    assert len(document["devices"]) == 1  # tgt's LUN 0 (a controller) is not a disk
    device = document["devices"][0]
    assert device["wwid"] == rig2.lun.wwid
    assert device["paths"] == rig2.urls
    assert device["size_bytes"] == rig2.lun.size_bytes
    assert device["block_size"] == 512
    assert (device["vendor"], device["product"]) == ("MPATH", "RIG-LUN")
    assert isinstance(device["max_commands"], int) and device["max_commands"] > 0
    targets = {t["target"] for p in document["portals"] for t in p["targets"]}
    assert targets == {rig2.target.iqn}

    code, out, _ = invoke(*portals_of(rig2))
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith(f"{rig2.lun.wwid} MPATH,RIG-LUN size=64M block_size=512 ")
    assert [line.strip() for line in lines[1:]] == rig2.urls


@pytest.mark.rig
def test_failing_portals_and_unknown_targets_are_reported_and_the_rest_still_shown(
    rig2: Rig,
) -> None:
    first, second = portals_of(rig2)
    manager = RigManager()
    manager.fault(rig2.name, 2, "drop")  # path 2 black-holed: its portal never answers
    try:
        code, out, err = invoke(
            first, second, REFUSED, "--timeout", "1",
            "--target", rig2.target.iqn, "--target", "iqn.2026-11.org.mpath:nobody",
            "--json",
        )  # fmt: skip
    finally:
        manager.fault(rig2.name, 2, "clear")
    assert code == 1
    document = json.loads(out)
    assert [d["paths"] for d in document["devices"]] == [[rig2.urls[0]]]
    lines = err.splitlines()
    assert len(lines) == 3, err
    assert all(line.startswith("mpath: error: ") for line in lines)
    by_portal = {e["portal"]: e["error"] for e in document["errors"]}
    assert "no answer within 1 s" in by_portal[f"{second}:3260"]
    assert "Connection refused" in by_portal[REFUSED]
    assert "target iqn.2026-11.org.mpath:nobody is not offered" in by_portal[f"{first}:3260"]


@pytest.mark.rig
def test_chap_one_way_and_mutual_with_secrets_from_the_environment(
    chap_rig: Rig, tmp_path: Path
) -> None:
    portal = portals_of(chap_rig)[0]
    url = chap_rig.urls[0]
    one_way = tmp_path / "one-way.toml"
    one_way.write_text('[[chap]]\nusername = "host1"\npassword_env = "T_CHAP"\n')
    mutual = tmp_path / "mutual.toml"
    mutual.write_text(
        f'[[chap]]\nportal = "{portal}"\ntarget = "{chap_rig.target.iqn}"\n'
        'username = "host1"\npassword_env = "T_CHAP"\n'
        'target_username = "array1"\ntarget_password_env = "T_CHAP_TARGET"\n'
    )
    right = {"T_CHAP": "initiator-secret-1", "T_CHAP_TARGET": "target-secret-22"}

    code, _, err = invoke(portal)  # no credentials: the login is refused
    assert code == 1 and "Authentication failure" in err and err.count("\n") == 1

    code, out, err = invoke(portal, "--config", str(one_way), "--json", env=right)
    assert code == 0, err
    assert json.loads(out)["devices"][0]["paths"] == [url]

    code, out, err = invoke(portal, "--config", str(one_way), env={"T_CHAP": "wrong-secret-99"})
    assert code == 1
    assert err.count("\n") == 1
    assert err.startswith(f"mpath: error: {url.rsplit('/', 1)[0]}: login failed: ")
    assert "Authentication failure" in err
    assert "wrong-secret-99" not in out + err

    code, out, err = invoke(portal, "--config", str(mutual), "--json", env=right)
    assert code == 0, err
    assert json.loads(out)["devices"][0]["wwid"] == chap_rig.lun.wwid

    wrong_target = {**right, "T_CHAP_TARGET": "not-the-target-1"}
    code, _, err = invoke(portal, "--config", str(mutual), env=wrong_target)
    assert code == 1 and err.count("\n") == 1
    assert "Invalid CHAP_R response from the target" in err

    code, _, err = invoke(portal, "--config", str(mutual), env={"T_CHAP": "x" * 12})
    assert code == 2  # a secret variable that is not set is bad setup, not a failure
    assert "T_CHAP_TARGET" in err and f"{mutual}:7" in err


@pytest.mark.rig
def test_show_logs_in_with_the_config_files_chap(chap_rig: Rig, tmp_path: Path) -> None:
    config = tmp_path / "mpath.toml"
    config.write_text('[[chap]]\nusername = "host1"\npassword_env = "T_CHAP"\n')
    result = CliRunner().invoke(
        main,
        ["show", *chap_rig.urls, "--config", str(config), "--json"],
        env={"T_CHAP": "initiator-secret-1"},
    )
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["wwid"] == chap_rig.lun.wwid


# -- block devices ----------------------------------------------------------------------------


def test_block_discovery_groups_loop_devices_by_backing_file(
    loop_devices: LoopFactory, tmp_path: Path
) -> None:
    image, other = make_image(tmp_path, "a.img"), make_image(tmp_path, "b.img")
    first, second, third = loop_devices(image), loop_devices(image), loop_devices(other)
    code, out, _ = invoke("--block", "--json")
    assert code == 0
    groups = {tuple(d["paths"]) for d in json.loads(out)["devices"]}
    assert tuple(sorted([first, second], key=lambda n: int(n.removeprefix("/dev/loop")))) in (
        groups
    )
    assert (third,) in groups
    info = os.stat(image)
    device = f"{os.major(info.st_dev):x}:{os.minor(info.st_dev):x}"
    wwids = {d["wwid"] for d in json.loads(out)["devices"] if first in d["paths"]}
    assert wwids == {f"1MPATH_loopfile-{device}-{info.st_ino:x}"}
