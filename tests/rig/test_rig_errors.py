"""Bad input gets one clear line and exit 2; a failed 'up' leaves nothing behind."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from mpath.errors import RigError
from mpath.rig import RigManager
from mpath.rig.backends.tgt import TgtBackend
from tests.conftest import RigFactory, unique_rig_name

MPATH = [sys.executable, "-m", "mpath"]


def run_mpath(*args: str, user: str | None = None) -> subprocess.CompletedProcess[str]:
    prefix = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"] if user else []
    return subprocess.run([*prefix, *MPATH, *args], capture_output=True, text=True, check=False)


def assert_one_line_error(result: subprocess.CompletedProcess[str], code: int, words: str) -> None:
    assert result.returncode == code, (result.returncode, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert words in lines[0], lines[0]


@pytest.mark.rig
@pytest.mark.parametrize(
    ("args", "words"),
    [
        (("rig", "status", "--name", "no-such-rig"), "no rig named 'no-such-rig'"),
        (("rig", "fault", "1", "down", "--name", "no-such-rig"), "no rig named"),
        (("rig", "up", "--rate", "fast"), "bad rate 'fast'"),
        (("rig", "up", "--paths", "2", "--rate", "1mbit,2mbit,3mbit"), "3 values for 2 paths"),
        (("rig", "up", "--paths", "0"), "--paths must be between"),
        (("rig", "up", "--size", "12Q"), "bad size"),
        (("rig", "up", "--name", "Has Space"), "bad rig name"),
        (("rig", "fault", "1", "rate"), "needs a RATE"),
    ],
)
def test_bad_input_exits_2_with_one_line(args: tuple[str, ...], words: str) -> None:
    before = set(RigManager().names())
    assert_one_line_error(run_mpath(*args), 2, words)
    # Nothing was created under the name the command would have used (other test
    # sessions' rigs may come and go meanwhile, so only that name is checked).
    created = set(RigManager().names()) - before
    assert "mpath" not in created


@pytest.mark.rig
def test_path_index_out_of_range_exits_2(make_rig: RigFactory) -> None:
    rig = make_rig(paths=2, size=8 * 1024**2)
    for index in ("3", "0"):
        result = run_mpath("rig", "fault", index, "down", "--name", rig.name)
        assert_one_line_error(result, 2, "out of range")


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to drop to an unprivileged user")
def test_not_root_exits_2() -> None:
    result = run_mpath("rig", "up", "--paths", "2", user="nobody")
    assert_one_line_error(result, 2, "needs root")


@pytest.mark.skipif(Path("/sys/kernel/config/target").is_dir(), reason="this host has LIO")
@pytest.mark.rig
def test_lio_without_configfs_fails_at_once_and_creates_nothing() -> None:
    before = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    result = run_mpath("rig", "up", "--backend", "lio", "--name", unique_rig_name("lio"))
    assert_one_line_error(result, 1, "lio backend unavailable")
    assert "configfs" in result.stderr
    assert subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout == before


@pytest.mark.rig
def test_failed_up_removes_what_it_created(monkeypatch: pytest.MonkeyPatch) -> None:
    """If the target fails to start, namespace, links, files and state are all gone."""

    def broken_start(self: TgtBackend, rig: object) -> int:
        raise RigError("injected failure")

    monkeypatch.setattr(TgtBackend, "start", broken_start)
    manager = RigManager()
    name = unique_rig_name("fail")
    with pytest.raises(RigError, match="injected failure"):
        manager.up(name=name, paths=2, size=8 * 1024**2)
    assert name not in manager.names()
    assert (
        f"mpath-rig-{name}"
        not in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    )
    assert not (manager.root / name).exists()


@pytest.mark.rig
def test_existing_rig_name_is_refused(make_rig: RigFactory) -> None:
    rig = make_rig(paths=1, size=8 * 1024**2)
    result = run_mpath("rig", "up", "--name", rig.name)
    assert_one_line_error(result, 1, "already exists")
    assert rig.name in RigManager().names()
