"""The faults a real SAN has, on a real rig: loss, reset, target restart and slowness,
a LUN that grows; each judged from outside mpath (ping, a raw socket, libiscsi's own
tools, the cgroup files, the backing file)."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from mpath.rig import Rig, RigManager
from mpath.rig.throttle import SLOW_PERIOD_US, SLOW_QUOTA_US, _cpu_hierarchy
from tests.conftest import RigFactory
from tests.tools.libiscsi_cli import inquiry

pytestmark = pytest.mark.rig

MPATH = [sys.executable, "-m", "mpath"]
PINGS = 200


def mpath(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*MPATH, *args], capture_output=True, text=True, check=False)


def pings_answered(address: str) -> int:
    """How many of PINGS echo requests to ``address`` came back (quick, as root)."""
    out = subprocess.run(
        ["ping", "-n", "-q", "-c", str(PINGS), "-i", "0.002", "-W", "1", address],
        capture_output=True, text=True, check=False,
    ).stdout  # fmt: skip
    match = re.search(r"(\d+) received", out)
    assert match, out
    return int(match.group(1))


def read_capacity_bytes(url: str) -> int:
    """The LUN's size as libiscsi's own READ CAPACITY(16) tool reports it."""
    out = subprocess.run(
        ["iscsi-readcapacity16", url], capture_output=True, text=True, check=True, timeout=30
    ).stdout
    match = re.search(r"Total size:(\d+)", out)
    assert match, out
    return int(match.group(1))


def test_loss_loses_about_that_share_and_clear_ends_it(make_rig: RigFactory) -> None:
    rig = make_rig(paths=2, size=8 * 1024**2)
    target = rig.paths[0].target_ip
    result = mpath("rig", "fault", "1", "loss", "50", "--name", rig.name)
    assert result.returncode == 0, result.stderr
    status = RigManager().status(rig.name)[1]
    assert [p.describe()["fault"] for p in status] == ["loss", "none"]
    # A request and its reply each pass the lossy port: 25% come back on average; with
    # 200 pings, 20..80 answered is far outside chance either way.
    lossy = pings_answered(target)
    assert 20 <= lossy <= 80, lossy
    assert pings_answered(rig.paths[1].target_ip) == PINGS  # the other path is untouched
    assert mpath("rig", "fault", "1", "clear", "--name", rig.name).returncode == 0
    assert pings_answered(target) == PINGS
    assert RigManager().status(rig.name)[1][0].describe()["fault"] == "none"


def test_reset_aborts_the_path_connections_with_a_rst(make_rig: RigFactory) -> None:
    rig = make_rig(paths=2, size=8 * 1024**2)
    with (
        socket.create_connection((rig.paths[0].target_ip, 3260), timeout=5) as cut,
        socket.create_connection((rig.paths[1].target_ip, 3260), timeout=5) as kept,
    ):
        result = mpath("rig", "fault", "1", "reset", "--name", rig.name)
        assert result.returncode == 0, result.stderr
        with pytest.raises(ConnectionResetError):
            cut.recv(1)
        kept.setblocking(False)
        with pytest.raises(BlockingIOError):  # still open: nothing to read, no reset
            kept.recv(1)
    assert inquiry(rig.urls[0], timeout=5) is not None  # the portal takes new logins


def closed_by_peer(conn: socket.socket) -> bool:
    """True once the other end has closed ``conn`` (FIN or RST) within 5 s."""
    conn.settimeout(5)
    try:
        return conn.recv(1) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def running(pid: int) -> bool:
    """True while ``pid`` runs (a killed child of this process stays a zombie until reaped)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_target_restart_serves_the_same_lun_from_a_new_daemon(make_rig: RigFactory) -> None:
    rig = make_rig(paths=2, size=8 * 1024**2)
    before = inquiry(rig.urls[0], page=0x83)
    assert before is not None
    with (
        socket.create_connection((rig.paths[0].target_ip, 3260), timeout=5) as first,
        socket.create_connection((rig.paths[1].target_ip, 3260), timeout=5) as second,
    ):
        result = mpath("rig", "fault", "target", "restart", "--name", rig.name)
        assert result.returncode == 0, result.stderr
        assert closed_by_peer(first) and closed_by_peer(second)  # every path at once
    restarted = RigManager().load(rig.name)
    assert restarted.daemon_pid is not None and restarted.daemon_pid != rig.daemon_pid
    assert rig.daemon_pid is not None and not running(rig.daemon_pid)
    assert [inquiry(url, page=0x83) for url in rig.urls] == [before, before]


def test_target_slow_throttles_the_daemon_and_fast_gives_it_back(make_rig: RigFactory) -> None:
    rig = make_rig(paths=2, size=8 * 1024**2)
    root, v2 = _cpu_hierarchy()
    group = root / f"mpath-rig-{rig.name}"
    assert mpath("rig", "fault", "target", "slow", "--name", rig.name).returncode == 0
    assert str(rig.daemon_pid) in (group / "cgroup.procs").read_text().split()
    if v2:
        assert (group / "cpu.max").read_text().split() == [str(SLOW_QUOTA_US), str(SLOW_PERIOD_US)]
    else:
        assert int((group / "cpu.cfs_quota_us").read_text()) == SLOW_QUOTA_US
        assert int((group / "cpu.cfs_period_us").read_text()) == SLOW_PERIOD_US
    assert inquiry(rig.urls[0], timeout=10) is not None  # slow, not dead
    # A restart while slow keeps the new daemon slow.
    assert mpath("rig", "fault", "target", "restart", "--name", rig.name).returncode == 0
    new_pid = RigManager().load(rig.name).daemon_pid
    assert str(new_pid) in (group / "cgroup.procs").read_text().split()
    assert mpath("rig", "fault", "target", "fast", "--name", rig.name).returncode == 0
    assert not group.exists()
    assert inquiry(rig.urls[1], timeout=5) is not None


def test_rig_down_while_slow_removes_the_cgroup(make_rig: RigFactory) -> None:
    rig = make_rig(paths=1, size=8 * 1024**2)
    root, _ = _cpu_hierarchy()
    assert mpath("rig", "fault", "target", "slow", "--name", rig.name).returncode == 0
    assert (root / f"mpath-rig-{rig.name}").is_dir()
    assert RigManager().down(rig.name)
    assert not (root / f"mpath-rig-{rig.name}").exists()


def test_lun_grows_while_served_and_never_shrinks(make_rig: RigFactory) -> None:
    rig = make_rig(paths=2, size=8 * 1024**2)
    backing = Path(rig.lun.backing_file)
    with backing.open("r+b") as f:
        f.write(b"kept" * 1024)
    result = mpath("rig", "fault", "lun", "resize", "16M", "--name", rig.name)
    assert result.returncode == 0, result.stderr
    assert [read_capacity_bytes(url) for url in rig.urls] == [16 * 1024**2] * 2
    assert backing.stat().st_size == 16 * 1024**2
    assert backing.read_bytes()[:4096] == b"kept" * 1024
    assert RigManager().load(rig.name).lun.size_bytes == 16 * 1024**2
    shrink = mpath("rig", "fault", "lun", "resize", "8M", "--name", rig.name)
    assert shrink.returncode == 2 and "only grows" in shrink.stderr, shrink.stderr
    assert read_capacity_bytes(rig.urls[0]) == 16 * 1024**2


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (("1", "delay", "20"), "no netem"),
        (("1", "loss", "120"), "0..100"),
        (("1", "loss"), "needs a percentage"),
        (("1", "reset", "now"), "takes no further argument"),
        (("target", "reboot"), "unknown target fault"),
        (("lun", "resize"), "resize SIZE"),
        (("path1", "down"), "not a path index"),
    ],
)
def test_bad_fault_input_exits_2_with_one_line(
    rig2: Rig, args: tuple[str, ...], words: str
) -> None:
    result = mpath("rig", "fault", *args, "--name", rig2.name)
    assert result.returncode == 2, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and words in result.stderr, result.stderr
