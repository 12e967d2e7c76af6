"""The ``tgt`` backend: a private tgtd inside the rig's namespace.

Each rig starts its own tgtd with its own management port (``tgtd -C``), so rigs do
not collide with each other or with a tgtd the host runs. tgtd listens only on the
rig's portals; the LUN gets the rig's serial and NAA designator so it has an identity
of its own, as a LUN of a real array does.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path

from mpath.errors import RigError
from mpath.rig.model import Rig, RigPortal
from mpath.rig.system import in_namespace, require_tools, run

#: Where tgtd keeps its management socket (``socket.<port>`` and its lock file).
TGTD_SOCKET_DIR = Path("/var/run/tgtd")
START_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 10.0
VENDOR_ID = "MPATH"
PRODUCT_ID = "RIG-LUN"


class TgtBackend:
    name = "tgt"

    def check_available(self) -> None:
        require_tools("tgtd", "tgtadm")

    def _adm(self, rig: Rig, *args: str) -> None:
        run(["tgtadm", "-C", str(rig.control_port), "--lld", "iscsi", *args])

    def start(self, rig: Rig) -> int:
        portals = rig.portals
        log_path = Path(rig.state_dir) / "tgtd.log"
        with log_path.open("ab") as log:
            daemon = subprocess.Popen(
                in_namespace(
                    rig.namespace,
                    [
                        "tgtd",
                        "-f",
                        "-C",
                        str(rig.control_port),
                        # The pid file names the rig in tgtd's command line, so ps shows
                        # whose daemon it is.
                        "--pid-file",
                        str(Path(rig.state_dir) / "tgtd.pid"),
                        "--iscsi",
                        f"portal={portals[0]}",
                    ],
                ),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
        rig.daemon_pid = daemon.pid
        self._wait_ready(rig, daemon, log_path)
        for portal in portals[1:]:
            self._add_portal(rig, portal)
        target = rig.target
        self._adm(rig, "--mode", "target", "--op", "new", "--tid", "1", "-T", target.iqn)
        self._add_lun(rig)
        self._adm(rig, "--mode", "target", "--op", "bind", "--tid", "1", "-I", "ALL")
        return daemon.pid

    def _add_portal(self, rig: Rig, portal: RigPortal) -> None:
        """Listen on one more portal. Retried for a while: after a restart, the killed
        daemon's socket on that address may not be released yet (tgtadm then answers
        'invalid request'), as found by the torture run."""
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            try:
                self._adm(rig, "--mode", "portal", "--op", "new", "--param", f"portal={portal}")
                return
            except RigError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)  # the old socket's release has no event to await

    def _add_lun(self, rig: Rig) -> None:
        """Add the rig's LUN to target 1 with its identity (serial, NAA designator)."""
        lun = rig.lun
        self._adm(
            rig, "--mode", "logicalunit", "--op", "new", "--tid", "1",
            "--lun", str(lun.number), "-b", lun.backing_file,
        )  # fmt: skip
        params = (
            f"scsi_sn={lun.serial},scsi_id={lun.designator},"
            f"vendor_id={VENDOR_ID},product_id={PRODUCT_ID}"
        )
        # Thin provisioning (LBPME, VPD 0xB2): UNMAP and WRITE SAME with UNMAP punch
        # holes in the sparse backing file and GET LBA STATUS reports them, as on an
        # array's thin LUN; the NBD export's trim, fast zero and block status use them.
        params += ",thin_provisioning=1"
        self._adm(
            rig, "--mode", "logicalunit", "--op", "update", "--tid", "1",
            "--lun", str(lun.number), "--params", params,
        )  # fmt: skip

    def restart(self, rig: Rig) -> int:
        """Kill tgtd (SIGKILL: no logout, no FIN from a clean exit) and start it again.

        Every path loses its connection at once; the new daemon serves the same target
        name, LUN, serial and designator from the same backing file, as an array does
        after a controller reboot.
        """
        self.stop(rig, sig=signal.SIGKILL)
        return self.start(rig)

    def resize(self, rig: Rig) -> None:
        """Serve the LUN at ``rig.lun.size_bytes`` (the backing file is already that size).

        tgt reads the size when a LUN is added, so the LUN is removed and added again
        (refused while a command is executing on it; tgtadm then says the LUN is busy).
        """
        self._adm(
            rig, "--mode", "logicalunit", "--op", "delete", "--tid", "1",
            "--lun", str(rig.lun.number),
        )  # fmt: skip
        self._add_lun(rig)

    def _wait_ready(self, rig: Rig, daemon: subprocess.Popen[bytes], log_path: Path) -> None:
        """Wait until tgtd answers on its management port (or died, or timed out)."""
        deadline = time.monotonic() + START_TIMEOUT_S
        probe = ["tgtadm", "-C", str(rig.control_port), "--mode", "sys", "--op", "show"]
        while True:
            if daemon.poll() is not None:
                tail = log_path.read_text(errors="replace").strip().splitlines()[-1:]
                raise RigError(f"tgtd exited at start ({daemon.returncode}): {' '.join(tail)}")
            if run(probe, check=False, timeout=5).returncode == 0:
                return
            if time.monotonic() > deadline:
                raise RigError(f"tgtd did not answer on control port {rig.control_port}")
            time.sleep(0.05)  # polling a daemon's readiness: there is no event to await

    def stop(self, rig: Rig, sig: signal.Signals = signal.SIGTERM) -> None:
        pids = set(_namespace_pids(rig.namespace))
        if rig.daemon_pid is not None and _is_our_tgtd(rig.daemon_pid, rig.control_port):
            pids.add(rig.daemon_pid)
        for pid in pids:
            _signal(pid, sig)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        while pids and time.monotonic() < deadline:
            pids = {pid for pid in pids if _alive(pid)}
            if pids:
                time.sleep(0.05)  # waiting for processes we do not parent to exit
        for pid in pids:
            _signal(pid, signal.SIGKILL)
        for suffix in ("", ".lock"):
            (TGTD_SOCKET_DIR / f"socket.{rig.control_port}{suffix}").unlink(missing_ok=True)


def _namespace_pids(namespace: str) -> list[int]:
    result = run(["ip", "netns", "pids", namespace], check=False)
    if result.returncode != 0:
        return []
    return [int(word) for word in result.stdout.split()]


def _is_our_tgtd(pid: int, control_port: int) -> bool:
    """True if ``pid`` is still the tgtd we started (pids are recycled)."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return any(a.endswith(b"tgtd") for a in argv) and str(control_port).encode() in argv


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child of ours counts as gone; reap it if it is ours.
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    if state == "Z":
        # A killed multi-threaded daemon's main thread turns zombie while its other
        # threads are still exiting, and they hold its files (the portals' listening
        # sockets) until the last one is gone: a new tgtd could not bind them yet.
        with contextlib.suppress(OSError):
            if len(os.listdir(f"/proc/{pid}/task")) > 1:
                return True
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        return False
    return True


def _signal(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)
