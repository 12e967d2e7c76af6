"""The lab's reaper: a session outlives a SIGKILLed runner only until the pipe closes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator

import pytest

from mpath.lab.reaper import DONE, stop_session


@pytest.fixture
def session() -> Iterator[subprocess.Popen[bytes]]:
    """A stand-in for the VM: a process group of its own; always killed."""
    proc = subprocess.Popen(["sleep", "600"], start_new_session=True)
    yield proc
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def _reaper(sid: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "mpath.lab.reaper", str(sid)], stdin=subprocess.PIPE
    )


def test_the_pipe_closing_without_done_stops_the_session(
    session: subprocess.Popen[bytes],
) -> None:
    reaper = _reaper(session.pid)
    assert reaper.stdin is not None
    reaper.stdin.close()  # what the kernel does when the runner is SIGKILLed
    # Reaped here at once (the VM's processes are init's, which reaps them).
    assert session.wait(timeout=30) == -signal.SIGTERM
    assert reaper.wait(timeout=30) == 0


def test_done_leaves_the_session_alone(session: subprocess.Popen[bytes]) -> None:
    reaper = _reaper(session.pid)
    assert reaper.stdin is not None
    reaper.stdin.write(DONE)
    reaper.stdin.close()
    assert reaper.wait(timeout=30) == 0
    assert session.poll() is None


def test_a_group_that_ignores_sigterm_is_killed_after_the_grace() -> None:
    stubborn = (
        "import os, signal, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "os.write(1, b'r')\n"
        "time.sleep(600)\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", stubborn], stdout=subprocess.PIPE, start_new_session=True
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.read(1) == b"r"  # SIGTERM is ignored from here on
        stop_session(proc.pid, grace=0.5)
        assert proc.wait(timeout=30) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def test_bad_usage_is_exit_2() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "mpath.lab.reaper", "x"], capture_output=True, text=True
    )
    assert done.returncode == 2
    assert "usage: python -m mpath.lab.reaper SESSION_ID" in done.stderr
