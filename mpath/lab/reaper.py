"""Stop the lab VM's session when the process that started it dies without stopping it.

``run_in_lab`` stops the VM on every ending it sees: the command's end, a timeout,
SIGINT, SIGTERM, SIGHUP. It cannot see SIGKILL (or its own crash), and the VM's
processes (vng, virtme-run, qemu) run in a session of their own, so they would keep
running under init, holding a CPU each. This reaper, started beside the VM, waits on a
pipe whose only writer is the runner: the kernel closes it when the runner dies,
however it dies. End of file without the runner's ``done`` means the runner is gone
and the session still runs, so the reaper stops it, as ``run_in_lab`` would have.

``done`` is written when the runner has stopped the session itself: the reaper then
exits without a signal, so it never signals a process group whose number was reused.
Both stop a session the same way, :func:`stop_session`, which lives here so the
reaper imports nothing else of the lab.

    python -m mpath.lab.reaper SESSION_ID    # stdin: the runner's pipe
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path

#: What the runner writes when it has stopped the session itself.
DONE = b"done\n"
#: Grace between SIGTERM and SIGKILL when a session is stopped.
GRACE_S = 5.0


def session_alive(sid: int) -> bool:
    """True while any live (non-zombie) process belongs to session ``sid``."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        # fields: state ppid pgrp session ...
        if fields[3] == str(sid) and fields[0] != "Z":
            return True
    return False


def _pause() -> None:
    time.sleep(0.1)  # a session's end has no event to wait on


def stop_session(sid: int, grace: float = GRACE_S, pause: Callable[[], None] = _pause) -> None:
    """SIGTERM the session's process group, then SIGKILL what is left after ``grace``.

    The one way the lab stops a VM, used by the runner and by this reaper. ``pause``
    waits a moment between looks; the runner passes one that also reaps its child.
    """
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(sid, sig)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            if not session_alive(sid):
                return
            pause()


def main(argv: list[str]) -> int:
    if len(argv) != 1 or not argv[0].isdigit():
        print("usage: python -m mpath.lab.reaper SESSION_ID", file=sys.stderr)
        return 2
    # The terminal's Ctrl-C is for the runner, which stops the VM itself and says done.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    message = b""
    while chunk := os.read(0, 64):
        message += chunk
    if message != DONE:
        stop_session(int(argv[0]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
