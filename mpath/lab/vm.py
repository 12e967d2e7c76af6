"""Boot the lab VM and run one command in it.

The lab is a qemu guest running the distribution's own kernel (Debian's
linux-image-amd64) over the host's root filesystem, shared read-only over 9p by
virtme-ng. That kernel has what the build host's kernel lacks: the SCSI layer,
configfs and LIO, dm-multipath, kernel NBD and open-iscsi's iscsi_tcp. virtme-ng puts
writable overlays on /etc, /var and /tmp, so the guest can configure LIO and open-iscsi
without touching the host.

Everything the lab starts (vng, virtme-run, qemu) runs in a session of its own; the
whole session is killed when the command ends, fails, times out or is interrupted
(SIGINT, SIGTERM, SIGHUP), and by a watcher (:mod:`mpath.lab.reaper`) when the runner
itself is killed (SIGKILL), so no VM outlives the call that started it.

KVM is used only where a guest really boots with it: /dev/kvm exists on hosts whose
guests hang right after the boot loader, so :func:`detect_accel` boots once with KVM
under a short deadline and remembers the answer per kernel and qemu build. Everything
else runs under TCG (software emulation), which is slower but works everywhere.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import IO

from mpath.errors import MpathError
from mpath.lab.reaper import DONE, GRACE_S, stop_session

#: Kernel modules the lab loads before the command: the storage stack mpath is tested
#: on. scsi_debug is left out on purpose (it would add a disk nobody asked for).
LAB_MODULES = (
    "configfs",
    "target_core_mod",
    "target_core_file",
    "target_core_iblock",
    "iscsi_target_mod",
    "iscsi_tcp",
    "sd_mod",
    "sg",
    "dm_multipath",
    "dm_round_robin",
    "dm_service_time",
    "scsi_dh_alua",
    "nbd",
    "veth",
)
#: Environment passed from the host into the guest command (besides MPATH_*).
PASSED_ENV = ("CI", "TERM", "PYTEST_ADDOPTS", "COLUMNS")
DEFAULT_MEMORY = "2G"
DEFAULT_CPUS = 2
#: How long a KVM guest may take to run ``true`` before KVM is judged not to work.
KVM_PROBE_TIMEOUT_S = 25.0
#: Grace between SIGTERM and SIGKILL when the VM's session is stopped.
KILL_GRACE_S = GRACE_S
#: Exit code of :func:`run_in_lab` when the deadline passed (as timeout(1) does).
TIMEOUT_EXIT = 124
GUEST_ENV_FLAG = "MPATH_LAB_GUEST"


class LabError(MpathError):
    """The lab VM cannot be started or did not run the command."""


class LabUnavailableError(LabError):
    """Something the lab needs is missing on this host (qemu, virtme-ng, a kernel)."""


def in_guest() -> bool:
    """True inside the lab VM (the guest command's environment says so)."""
    return os.environ.get(GUEST_ENV_FLAG) == "1"


@dataclass(frozen=True, slots=True)
class LabConfig:
    """What one boot uses: the vng program, the kernel image and the accelerator."""

    vng: str
    kernel: Path
    release: str
    accel: str = "tcg"
    memory: str = DEFAULT_MEMORY
    cpus: int = DEFAULT_CPUS
    extra_env: Mapping[str, str] = field(default_factory=dict)


def _venv_bin() -> Path:
    return Path(sys.prefix) / "bin"


def find_vng() -> str:
    """The ``vng`` of this Python environment, else the one on PATH."""
    local = _venv_bin() / "vng"
    if local.is_file() and os.access(local, os.X_OK):
        return str(local)
    found = shutil.which("vng")
    if found is None:
        raise LabUnavailableError(
            "virtme-ng (vng) is not installed: run 'make setup' (pip install virtme-ng)"
        )
    return found


def find_kernel(boot: Path = Path("/boot"), modules: Path = Path("/lib/modules")) -> Path:
    """The newest installed distribution kernel whose modules are present.

    ``$MPATH_LAB_KERNEL`` names one explicitly.
    """
    explicit = os.environ.get("MPATH_LAB_KERNEL")
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise LabUnavailableError(f"MPATH_LAB_KERNEL={explicit}: no such kernel image")
        return path
    candidates = []
    for image in boot.glob("vmlinuz-*"):
        release = image.name.removeprefix("vmlinuz-")
        if (modules / release / "modules.dep").is_file() and os.access(image, os.R_OK):
            candidates.append(image)
    if not candidates:
        raise LabUnavailableError(
            f"no kernel with modules in {boot} (vmlinuz-* plus {modules}/RELEASE): "
            "run 'make setup' (Debian package linux-image-amd64)"
        )
    return max(candidates, key=lambda p: _version_key(p.name.removeprefix("vmlinuz-")))


def _version_key(release: str) -> tuple[int, ...]:
    return tuple(int(n) for n in re.findall(r"\d+", release))


def _qemu() -> str:
    qemu = shutil.which("qemu-system-x86_64")
    if qemu is None:
        raise LabUnavailableError(
            "qemu-system-x86_64 not found: run 'make setup' (Debian package qemu-system-x86)"
        )
    return qemu


def lab_config() -> LabConfig:
    """Check that the lab can boot here and decide how; raise LabUnavailableError if not.

    ``$MPATH_LAB_ACCEL`` (``tcg``, ``kvm`` or ``auto``, the default), ``$MPATH_LAB_MEMORY``
    and ``$MPATH_LAB_CPUS`` override the defaults.
    """
    vng = find_vng()
    _qemu()
    kernel = find_kernel()
    release = kernel.name.removeprefix("vmlinuz-")
    memory = os.environ.get("MPATH_LAB_MEMORY", DEFAULT_MEMORY)
    try:
        cpus = int(os.environ.get("MPATH_LAB_CPUS", str(DEFAULT_CPUS)))
    except ValueError:
        raise LabError("MPATH_LAB_CPUS must be a whole number") from None
    config = LabConfig(vng=vng, kernel=kernel, release=release, memory=memory, cpus=cpus)
    choice = os.environ.get("MPATH_LAB_ACCEL", "auto")
    if choice not in ("auto", "tcg", "kvm"):
        raise LabError(f"MPATH_LAB_ACCEL={choice}: choose auto, tcg or kvm")
    accel = detect_accel(config) if choice == "auto" else choice
    return LabConfig(vng=vng, kernel=kernel, release=release, accel=accel, memory=memory, cpus=cpus)


# -- accelerator ------------------------------------------------------------------------


def _kvm_usable() -> bool:
    try:
        fd = os.open("/dev/kvm", os.O_RDWR)
    except OSError:
        return False
    os.close(fd)
    return True


def _cache_file() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "mpath" / "lab-accel.json"


def _probe_key(config: LabConfig) -> str:
    qemu = Path(_qemu())
    return f"{config.kernel}:{config.kernel.stat().st_mtime_ns}:{qemu.stat().st_mtime_ns}"


def detect_accel(config: LabConfig) -> str:
    """``kvm`` if a KVM guest really boots here, else ``tcg``; remembered per build.

    The probe boots ``true`` with KVM under :data:`KVM_PROBE_TIMEOUT_S`; a guest that
    hangs (as on hosts whose /dev/kvm is a nested one that does not work) is killed.
    """
    if not _kvm_usable():
        return "tcg"
    cache = _cache_file()
    key = _probe_key(config)
    with contextlib.suppress(OSError, ValueError):
        doc = json.loads(cache.read_text())
        if doc.get("key") == key and doc.get("accel") in ("kvm", "tcg"):
            return str(doc["accel"])
    probe = LabConfig(
        vng=config.vng, kernel=config.kernel, release=config.release, accel="kvm",
        memory="512M", cpus=1,
    )  # fmt: skip
    with tempfile.TemporaryFile() as sink:
        result = run_in_lab(
            "true", config=probe, timeout=KVM_PROBE_TIMEOUT_S, stdout=sink, stderr=sink,
            load_modules=False,
        )  # fmt: skip
    accel = "kvm" if result.returncode == 0 else "tcg"
    with contextlib.suppress(OSError):
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.write_text(json.dumps({"key": key, "accel": accel}) + "\n")
    return accel


# -- running ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LabResult:
    """How one boot ended."""

    returncode: int
    #: False when the guest never reached the command (qemu or the kernel failed).
    started: bool
    timed_out: bool
    seconds: float
    accel: str


class _Interrupted(BaseException):
    """A signal asked the lab to stop; carries the signal to re-raise its exit code."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


@contextlib.contextmanager
def _signals_interrupt() -> Iterator[None]:
    """Turn SIGTERM/SIGHUP into an exception while the VM runs (SIGINT already is one)."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be set from the main thread
        return

    def handler(signum: int, _frame: FrameType | None) -> None:
        raise _Interrupted(signum)

    previous = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _kill_session(proc: subprocess.Popen[bytes]) -> None:
    """Stop everything in the VM's session: vng, virtme-run and qemu."""

    def reap_meanwhile() -> None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=0.1)

    stop_session(proc.pid, KILL_GRACE_S, reap_meanwhile)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=KILL_GRACE_S)


def _start_reaper(sid: int) -> subprocess.Popen[bytes]:
    """The watcher that stops session ``sid`` if this process dies without doing so.

    See :mod:`mpath.lab.reaper`: its stdin is a pipe only this process writes, so a
    SIGKILL here is an end of file there. It runs in a session of its own (a terminal's
    Ctrl-C is ours to handle) and keeps none of our output pipes open.
    """
    return subprocess.Popen(
        [sys.executable, "-m", "mpath.lab.reaper", str(sid)],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def _release_reaper(reaper: subprocess.Popen[bytes]) -> None:
    """Tell the watcher the session was stopped here, and wait for it to leave."""
    assert reaper.stdin is not None
    with contextlib.suppress(OSError):
        reaper.stdin.write(DONE)
        reaper.stdin.close()
    try:
        reaper.wait(timeout=KILL_GRACE_S)
    except subprocess.TimeoutExpired:
        reaper.kill()
        reaper.wait()


def _copier(source: IO[bytes] | None, sink: IO[bytes]) -> threading.Thread:
    """Copy the VM's output to ``sink`` as it comes (a thread; ends at end of file)."""

    def copy() -> None:
        assert source is not None
        with contextlib.suppress(OSError, ValueError):
            while chunk := source.read1(65536):  # type: ignore[attr-defined]
                sink.write(chunk)
                sink.flush()
        with contextlib.suppress(OSError):
            source.close()

    thread = threading.Thread(target=copy, name="lab-output", daemon=True)
    thread.start()
    return thread


def guest_script(command: str, *, cwd: Path, workdir: Path, load_modules: bool) -> str:
    """The shell script the guest runs: prepare the storage stack, then ``command``."""
    venv_bin = _venv_bin()
    lines = [
        "#!/bin/bash",
        f"touch {shlex.quote(str(workdir / 'started'))}",
    ]
    if load_modules:
        lines += [
            f"modprobe -a {' '.join(LAB_MODULES)} 2>/dev/null",
            "mountpoint -q /sys/kernel/config || mount -t configfs configfs /sys/kernel/config",
        ]
    lines += [
        # /etc, /var and /tmp are virtme-ng's writable overlays over the host's own, so
        # the host's rig states and open-iscsi records would show through: the folders
        # the lab's tools keep state in start empty, on tmpfs, private to this boot.
        "mkdir -p /etc/target /etc/iscsi /var/lib/iscsi /run/lock /var/lib/mpath",
        "for d in /etc/target /var/lib/iscsi /var/lib/mpath; do mount -t tmpfs lab $d; done",
        "ip link set lo up 2>/dev/null",
        f"export PATH={shlex.quote(str(venv_bin))}:$PATH",
        f"export VIRTUAL_ENV={shlex.quote(sys.prefix)}",
        f"export {GUEST_ENV_FLAG}=1 PYTHONDONTWRITEBYTECODE=1 HOME=/root",
        f"cd {shlex.quote(str(cwd))} || exit 125",
        f"bash {shlex.quote(str(workdir / 'command.sh'))}",
        "rc=$?",
        f"echo $rc > {shlex.quote(str(workdir / 'rc'))}",
        "exit $rc",
    ]
    return "\n".join(lines) + "\n"


def vng_argv(config: LabConfig, script: Path, workdir: Path, cwd: Path) -> list[str]:
    """The vng command line of one boot."""
    argv = [
        config.vng,
        "--run", str(config.kernel),
        "--force-9p",
        "--user", "root",
        "--memory", config.memory,
        "--cpus", str(config.cpus),
        # The repository is writable in the guest, but only in an overlay: the host's
        # tree is never written by the guest.
        f"--overlay-rwdir={cwd}",
        # The one host folder the guest writes: where it leaves its exit code and results.
        f"--rwdir={workdir}",
    ]  # fmt: skip
    if config.accel != "kvm":
        argv.append("--disable-kvm")
    if os.environ.get("MPATH_LAB_CONSOLE") == "1":
        argv.append("--verbose")  # the guest kernel's console on stderr, for debugging
    argv += ["--", f"bash {shlex.quote(str(script))}"]
    return argv


def run_in_lab(
    command: str,
    *,
    config: LabConfig | None = None,
    cwd: Path | None = None,
    timeout: float | None = None,
    stdout: IO[bytes] | None = None,
    stderr: IO[bytes] | None = None,
    env: Mapping[str, str] | None = None,
    workdir: Path | None = None,
    load_modules: bool = True,
) -> LabResult:
    """Boot the lab, run ``command`` (a bash command line) as root in ``cwd``, stop the lab.

    The command's output goes to ``stdout``/``stderr`` (default: ours) and its exit code
    is the result's ``returncode``. ``workdir`` is a host folder the guest may write
    (results, reports); a temporary one is used when not given. Raises
    LabUnavailableError when the lab cannot boot here.
    """
    config = config if config is not None else lab_config()
    cwd = (cwd if cwd is not None else Path.cwd()).resolve()
    start = time.monotonic()
    with contextlib.ExitStack() as stack:
        if workdir is None:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="mpath-lab-")))
        workdir = workdir.resolve()
        for stale in ("started", "rc"):
            (workdir / stale).unlink(missing_ok=True)
        passed = {k: v for k, v in os.environ.items() if k.startswith("MPATH_") or k in PASSED_ENV}
        passed.update(env or {})
        passed.pop(GUEST_ENV_FLAG, None)
        exports = "".join(f"export {k}={shlex.quote(v)}\n" for k, v in sorted(passed.items()))
        (workdir / "command.sh").write_text(exports + command + "\n")
        script = workdir / "guest.sh"
        script.write_text(
            guest_script(command, cwd=cwd, workdir=workdir, load_modules=load_modules)
        )
        argv = vng_argv(config, script, workdir, cwd)
        host_env = dict(os.environ)
        # vng starts virtme-run by name: it must find the one installed beside it.
        host_env["PATH"] = f"{Path(config.vng).parent}:{host_env.get('PATH', '')}"
        timed_out = False
        with _signals_interrupt():
            # Always pipes: qemu reopens /proc/self/fd/1 for each of its output ports,
            # and on a regular file each reopening truncates and overwrites the others.
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=host_env,
                cwd=cwd,
                start_new_session=True,
            )
            reaper = _start_reaper(proc.pid)
            copiers = [
                _copier(proc.stdout, stdout if stdout is not None else sys.stdout.buffer),
                _copier(proc.stderr, stderr if stderr is not None else sys.stderr.buffer),
            ]
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                timed_out = True
            finally:
                _kill_session(proc)
                _release_reaper(reaper)
                for copier in copiers:
                    copier.join(timeout=KILL_GRACE_S)
        started = (workdir / "started").exists()
        rc_text = (workdir / "rc").read_text().strip() if (workdir / "rc").exists() else ""
        if timed_out:
            returncode = TIMEOUT_EXIT
        elif rc_text.isdigit():
            returncode = int(rc_text)
        else:
            returncode = proc.returncode if proc.returncode not in (None, 0) else 255
        return LabResult(
            returncode=returncode,
            started=started,
            timed_out=timed_out,
            seconds=time.monotonic() - start,
            accel=config.accel,
        )


def describe(config: LabConfig) -> dict[str, str | int]:
    """What ``python -m mpath.lab check`` prints."""
    return {
        "kernel": str(config.kernel),
        "release": config.release,
        "accel": config.accel,
        "memory": config.memory,
        "cpus": config.cpus,
        "vng": config.vng,
    }


def signal_exit_code(exc: BaseException) -> int:
    """The shell's exit code for a run stopped by ``exc`` (128 + signal number)."""
    if isinstance(exc, _Interrupted):
        return 128 + exc.signum
    return 128 + signal.SIGINT


__all__ = [
    "LAB_MODULES",
    "LabConfig",
    "LabError",
    "LabResult",
    "LabUnavailableError",
    "describe",
    "detect_accel",
    "find_kernel",
    "in_guest",
    "lab_config",
    "run_in_lab",
    "signal_exit_code",
]
