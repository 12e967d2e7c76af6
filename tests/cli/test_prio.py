"""``mpath prio``: one integer on stdout and exit 0, whatever the device name."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from mpath.cli import main
from mpath.rig import Rig
from mpath.units import parse_rate
from tests.conftest import RigFactory
from tests.dm.test_callout import busy
from tests.sysfs.fakesys import FakeSysfs


@pytest.fixture
def host(tmp_path: Path) -> dict[str, str]:
    fake = FakeSysfs(tmp_path / "sys")
    fake.add_disk("sdb", "3:0:0:1", "8:16", stat=busy(2000, 10))
    fake.add_disk("sdc", "4:0:0:1", "8:32", stat=busy(500, 10))
    fake.add_disk("sdd", "5:0:0:1", "8:48", state="transport-offline")
    return {
        "MPATH_SYSFS_ROOT": str(fake.root),
        "MPATH_MEASUREMENTS": str(tmp_path / "paths.json"),
    }


def invoke(*args: str, env: dict[str, str]) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, ["prio", *args], env=env)
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.parametrize(
    ("device", "expected"),
    [("sdb", "100\n"), ("sdc", "25\n"), ("/dev/sdc", "25\n"), ("8:32", "25\n"), ("sdd", "0\n")],
)
def test_block_devices(device: str, expected: str, host: dict[str, str]) -> None:
    code, out, _ = invoke(device, env=host)
    assert (code, out) == (0, expected)


@pytest.mark.parametrize(
    "device",
    [
        "sdz",
        "",
        "-",
        "..",
        "../../../etc/passwd",
        "$(touch /tmp/x)",
        "a b",
        "sd\nb",
        "9:9",
        "/dev/../etc/shadow",
        "iscsi://",
        "iscsi://nohost/x/1",
        "ü" * 300,
        "%n",
    ],
)
def test_weird_names_give_0_and_exit_0(device: str, host: dict[str, str]) -> None:
    code, out, err = invoke("--", device, env=host)
    assert (code, out) == (0, "0\n")
    assert "Traceback" not in err
    assert err.count("\n") == 1 and "priority 0" in err


@settings(max_examples=60, deadline=None)
@given(st.text(max_size=40).filter(lambda t: not t.startswith("iscsi://")))
def test_any_name_gives_one_integer(device: str) -> None:
    env = {"MPATH_SYSFS_ROOT": "/nonexistent-sysfs", "MPATH_MEASUREMENTS": "/nonexistent/p.json"}
    result = CliRunner().invoke(main, ["prio", "--", device], env=env)
    assert result.exit_code == 0
    assert result.stdout.strip().isdigit()
    assert 0 <= int(result.stdout) <= 100


def test_json_explains_the_number(host: dict[str, str]) -> None:
    code, out, _ = invoke("sdc", "--json", env=host)
    assert code == 0
    document = json.loads(out)
    assert document["priority"] == 25
    assert document["source"] == "sysfs"
    assert document["peers"] == ["sdb"]
    assert set(document) >= {"device", "key", "health", "mb_per_s", "best_mb_per_s", "reason"}


def test_bad_options_are_usage_errors(host: dict[str, str]) -> None:
    code, _, _ = invoke("sdb", "--timeout", "0", env=host)
    assert code == 2


def test_the_real_command_is_fast_and_runs_no_shell(host: dict[str, str], tmp_path: Path) -> None:
    canary = tmp_path / "pwned"
    mpath = Path(sys.executable).with_name("mpath")
    env = {**os.environ, **host}
    started = time.monotonic()
    done = subprocess.run(
        [str(mpath), "prio", "--", f"$(touch {canary})"], capture_output=True, text=True, env=env
    )
    assert (done.returncode, done.stdout) == (0, "0\n")
    done = subprocess.run([str(mpath), "prio", "sdb"], capture_output=True, text=True, env=env)
    assert (done.returncode, done.stdout) == (0, "100\n")
    assert time.monotonic() - started < 5.0
    assert not canary.exists()


def test_help_has_examples() -> None:
    result = CliRunner().invoke(main, ["prio", "--help"])
    assert result.exit_code == 0 and "Examples:" in result.stdout


# -- on a real rig -----------------------------------------------------------------------------


@pytest.mark.rig
def test_prio_on_iscsi_urls(make_rig: RigFactory, tmp_path: Path) -> None:
    rig: Rig = make_rig(paths=2, rates=[parse_rate("400mbit"), parse_rate("1600mbit")])
    slow, fast = rig.urls
    env = {"MPATH_MEASUREMENTS": str(tmp_path / "paths.json")}
    # alone (nothing stored), a healthy path is the fastest it knows of
    code, out, _ = invoke(slow, "--no-record", env=env)
    assert (code, out) == (0, "100\n")
    # dm-config measures and records both; prio then ranks them
    result = CliRunner().invoke(
        main, ["dm-config", slow, fast, "--seconds", "2", "--style", "service-time"], env=env
    )
    assert result.exit_code == 0, result.stderr
    slow_prio = int(invoke(slow, env=env)[1])
    fast_prio = int(invoke(fast, env=env)[1])
    assert fast_prio == 100
    assert 10 <= slow_prio <= 45  # 400 vs 1600 mbit: about 25
    # a cut path scores 0 within the timeout
    from mpath.rig import RigManager

    RigManager().fault(rig.name, 1, "down")
    started = time.monotonic()
    code, out, _ = invoke(slow, "--timeout", "1.5", env=env)
    assert (code, out) == (0, "0\n")
    assert time.monotonic() - started < 4.0
