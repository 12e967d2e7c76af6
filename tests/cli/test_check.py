"""``mpath check``: the CLI contract (JSON keys, exit codes, errors); real paths in
tests/checkers/test_rig.py."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from mpath.cli import main
from tests.discovery.loops import LoopFactory, loop_devices, make_image

#: Nothing listens on port 1 of the loopback address: the login is refused at once.
REFUSED = "iscsi://127.0.0.1:1/iqn.2026-11.org.mpath:nobody/1"


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, ["check", *args])
    return result.exit_code, result.stdout, result.stderr


def test_a_path_that_cannot_log_in_is_down_with_the_reason_and_exit_1() -> None:
    code, out, _ = invoke(REFUSED, "--json")
    assert code == 1
    document = json.loads(out)
    assert isinstance(document, list) and len(document) == 1
    entry = document[0]
    assert set(entry) == {"url", "checker", "state", "message", "latency_ms"}
    assert entry["url"] == REFUSED
    assert entry["checker"] == "tur"
    assert entry["state"] == "down"
    assert "login failed" in entry["message"]
    assert isinstance(entry["latency_ms"], float)


def test_text_output_is_one_line_per_path() -> None:
    code, out, _ = invoke(REFUSED, "--checker", "readsector0")
    assert code == 1
    lines = out.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{REFUSED}  down  ")


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["iscsi:/nope"], "bad iSCSI URL 'iscsi:/nope'"),
        (["/dev/null"], "/dev/null: not a block device"),
        (["/dev/no-such-disk"], "/dev/no-such-disk: No such file or directory"),
        ([REFUSED, "--checker", "directio"], "directio reads block devices"),
        ([REFUSED, REFUSED], "the same path is given twice"),
        ([REFUSED, "--timeout", "0"], "--timeout and --login-timeout must be above 0"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args: list[str], expected: str) -> None:
    code, out, err = invoke(*args)
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1 and expected in err
    assert "Traceback" not in err


def test_unknown_checker_and_no_path_are_usage_errors() -> None:
    assert invoke(REFUSED, "--checker", "emc")[0] == 2
    assert invoke()[0] == 2


@pytest.fixture
def loop_device(tmp_path: Path) -> Iterator[str]:
    if os.geteuid() != 0 or shutil.which("losetup") is None:
        pytest.skip("needs root and losetup for a loop device")
    backing = tmp_path / "disk.img"
    backing.write_bytes(bytes(1024 * 1024))
    made = subprocess.run(
        ["losetup", "--find", "--show", str(backing)], capture_output=True, text=True
    )
    if made.returncode != 0:
        pytest.skip(f"no loop device here: {made.stderr.strip()}")
    node = made.stdout.strip()
    try:
        yield node
    finally:
        subprocess.run(["losetup", "--detach", node], check=False)


def test_directio_on_a_block_device_is_up_and_exit_0(loop_device: str) -> None:
    code, out, _ = invoke(loop_device, "--checker", "directio", "--json")
    document = json.loads(out)
    assert code == 0
    assert document == [
        {
            "url": loop_device,
            "checker": "directio",
            "state": "up",
            "message": "path up",
            "latency_ms": document[0]["latency_ms"],
        }
    ]


def test_tur_and_readsector0_check_a_loop_device(loop_devices: LoopFactory, tmp_path: Path) -> None:
    node = loop_devices(make_image(tmp_path, "disk.img", 8 * 1024 * 1024))
    for checker in ("tur", "readsector0"):
        outcome = CliRunner().invoke(main, ["check", node, "--checker", checker, "--json"])
        assert outcome.exit_code == 0, outcome.output
        [entry] = json.loads(outcome.stdout)
        assert entry["url"] == node and entry["state"] == "up"


__all__ = ["loop_devices"]  # the fixture, imported for this module's tests


def test_check_takes_chap_from_the_configuration_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mpath.checkers.oneshot import open_path
    from mpath.config import load_config

    monkeypatch.setenv("MPATH_TEST_CHAP_SECRET", "s3cret-s3cret")
    config_file = tmp_path / "mpath.toml"
    config_file.write_text(
        '[[chap]]\nportal = "198.18.1.2"\nusername = "iqn.2026-11.org.mpath:host"\n'
        'password_env = "MPATH_TEST_CHAP_SECRET"\n'
    )
    config = load_config(str(config_file))
    url = "iscsi://198.18.1.2/iqn.2026-11.org.mpath:rig.x/1"
    transport = open_path(url, "tur", 1.0, config)
    chap = transport._chap  # type: ignore[attr-defined]
    assert chap is not None and chap.username == "iqn.2026-11.org.mpath:host"
    other = open_path("iscsi://198.18.2.2/iqn.2026-11.org.mpath:rig.x/1", "tur", 1.0, config)
    assert other._chap is None  # type: ignore[attr-defined]
    # The command reads the file: a broken one is refused before any login.
    config_file.write_text("[[chap]]\nportl = 1\n")
    result = CliRunner().invoke(main, ["check", url, "--config", str(config_file)])
    assert result.exit_code == 2
    assert "portl" in result.output


def test_check_without_paths_needs_a_rig(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MPATH_RIG_NAME", raising=False)
    result = CliRunner().invoke(main, ["check"])
    assert result.exit_code == 2
    assert "give at least one PATH" in result.output
