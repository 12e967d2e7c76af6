"""The lab runner (mpath.lab.vm): exit codes, output, skip reasons, and no VM left behind.

These run on the host. The ``labvm`` ones boot the VM (one boot each, or only the
start of one) and check that nothing the lab started survives the runner: not when the
command fails, not when the runner is stopped by SIGTERM or SIGINT.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mpath.lab import LabUnavailableError, lab_config
from mpath.lab.vm import find_kernel

REPO = Path(__file__).resolve().parents[2]


def lab_skip_reason() -> str | None:
    try:
        lab_config()
    except LabUnavailableError as exc:
        return f"lab VM cannot start: {exc}"
    return None


needs_lab = pytest.mark.skipif(lab_skip_reason() is not None, reason=str(lab_skip_reason()))


def _interruptible() -> None:
    """In the runner's child before exec: SIGINT and SIGQUIT at their defaults.

    A test suite started in the background by a non-interactive shell inherits SIGINT
    ignored, and Python then leaves it ignored; the runner is started here as a
    terminal's foreground command would be, so Ctrl-C reaches it.
    """
    for sig in (signal.SIGINT, signal.SIGQUIT):
        signal.signal(sig, signal.SIG_DFL)


def _lab(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "mpath.lab", *args],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        preexec_fn=_interruptible,  # noqa: PLW1509 - two signal() calls, no locks taken
    )


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        tree.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    return tree


def descendants(pid: int) -> set[int]:
    tree, found, todo = _children(), set(), [pid]
    while todo:
        for child in tree.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def running(pid: int) -> bool:
    """True if ``pid`` is a live process (zombies waiting for init count as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def wait_for_qemu(runner: subprocess.Popen[str], timeout: float = 60) -> set[int]:
    """The runner's process tree once qemu is in it (polls /proc: no event exists)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert runner.poll() is None, runner.communicate()
        tree = descendants(runner.pid)
        if any(comm(pid).startswith("qemu-system") for pid in tree):
            return tree
        time.sleep(0.1)
    raise AssertionError("qemu never started")


@pytest.fixture
def reap() -> Iterator[list[subprocess.Popen[str]]]:
    """Runners started by a test; killed (with their session) if the test fails."""
    started: list[subprocess.Popen[str]] = []
    yield started
    for runner in started:
        if runner.poll() is None:
            runner.send_signal(signal.SIGTERM)
            runner.communicate(timeout=60)


def test_missing_kernel_fails_make_lab_with_the_reason() -> None:
    env = {**os.environ, "MPATH_LAB_KERNEL": "/nonexistent/vmlinuz"}
    runner = _lab("run", "true", env=env)
    _out, err = runner.communicate(timeout=60)
    assert runner.returncode == 3
    assert "cannot start the lab VM: MPATH_LAB_KERNEL=/nonexistent/vmlinuz" in err


def test_lab_tests_skip_with_the_reason_where_the_vm_cannot_start() -> None:
    env = {**os.environ, "MPATH_LAB_KERNEL": "/nonexistent/vmlinuz"}
    env.pop("MPATH_LAB_GUEST", None)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-rs", "-q",
         "tests/lab/test_lab.py"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 skipped" in result.stdout
    assert "lab VM cannot start: MPATH_LAB_KERNEL=/nonexistent/vmlinuz" in result.stdout


def test_a_host_test_after_relayed_lab_items_sets_up_cleanly() -> None:
    """A host test, then relayed lab items, then a test elsewhere: no setup error.

    Relayed items skip pytest's setup and teardown; the host test's collectors must
    still be torn down before the next directory's test sets up its own.
    """
    env = {**os.environ, "MPATH_LAB_KERNEL": "/nonexistent/vmlinuz"}
    env.pop("MPATH_LAB_GUEST", None)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q",
         "tests/lab/test_vm.py::test_missing_kernel_fails_make_lab_with_the_reason",
         "tests/lab/test_lab.py", "tests/test_units.py"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "error" not in result.stdout.lower(), result.stdout


def test_find_kernel_picks_the_newest_with_modules(tmp_path: Path) -> None:
    boot, modules = tmp_path / "boot", tmp_path / "modules"
    boot.mkdir()
    for release, has_modules in (("6.1.0-9-amd64", True), ("6.1.0-10-amd64", True),
                                 ("6.12.0-1-amd64", False)):  # fmt: skip
        (boot / f"vmlinuz-{release}").write_bytes(b"")
        if has_modules:
            (modules / release).mkdir(parents=True)
            (modules / release / "modules.dep").write_text("")
    assert find_kernel(boot, modules).name == "vmlinuz-6.1.0-10-amd64"
    with pytest.raises(LabUnavailableError, match="linux-image-amd64"):
        find_kernel(tmp_path / "empty", modules)


@pytest.mark.labvm
@needs_lab
def test_command_output_and_exit_code_come_back_and_nothing_is_left(
    reap: list[subprocess.Popen[str]],
) -> None:
    runner = _lab("run", "uname -r; lsmod | grep -c target_core; echo to-stderr >&2; exit 7")
    reap.append(runner)
    tree = wait_for_qemu(runner)
    out, err = runner.communicate(timeout=600)
    assert runner.returncode == 7, err
    release, count = out.split()
    assert release == lab_config().release
    assert int(count) > 0
    assert "to-stderr" in err
    assert not [pid for pid in tree if running(pid)]


@pytest.mark.labvm
@needs_lab
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_stopping_the_runner_stops_the_vm(
    sig: signal.Signals, tmp_path: Path, reap: list[subprocess.Popen[str]]
) -> None:
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    runner = _lab("run", "sleep 600", env=env)
    reap.append(runner)
    tree = wait_for_qemu(runner)
    if sig == signal.SIGTERM:
        # Stop it once the guest really runs the command (its start marker exists).
        deadline = time.monotonic() + 300
        while not list(tmp_path.glob("mpath-lab-*/started")):
            assert time.monotonic() < deadline, "the guest never started"
            assert runner.poll() is None, runner.communicate()
            time.sleep(0.2)  # the marker is a file the guest writes over 9p: no event
    tree |= descendants(runner.pid)
    runner.send_signal(sig)
    _out, err = runner.communicate(timeout=60)
    assert runner.returncode == 128 + sig, err
    assert "the VM was stopped" in err
    assert not [(pid, comm(pid)) for pid in tree if running(pid)]


@pytest.mark.labvm
@needs_lab
def test_a_sigkilled_runner_leaves_no_vm_running(reap: list[subprocess.Popen[str]]) -> None:
    runner = _lab("run", "sleep 600")
    reap.append(runner)
    tree = wait_for_qemu(runner)
    tree |= descendants(runner.pid)
    runner.kill()  # no handler runs: the reaper must see the pipe close
    runner.communicate(timeout=60)
    deadline = time.monotonic() + 60
    while left := [(pid, comm(pid)) for pid in tree if running(pid)]:
        assert time.monotonic() < deadline, f"still running a minute later: {left}"
        time.sleep(0.2)  # processes of another session: /proc is all there is to watch
