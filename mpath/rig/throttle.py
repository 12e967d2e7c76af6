"""The ``target slow`` fault: a CPU quota on the target daemon, through a cgroup of the rig's own.

A busy array does not slow down evenly: it stops answering on every path at once for up
to about a second, then catches up. A CFS quota gives exactly that shape: the target
gets :data:`SLOW_QUOTA_US` of CPU per :data:`SLOW_PERIOD_US` period, runs its backlog
until the quota is spent, and then nothing on any path is answered until the period
ends. The cgroup (``mpath-rig-NAME``) is created for the rig and removed again on
``fast`` and on ``rig down``; no other cgroup is changed but the one the daemon is moved
back to, which is where it came from.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from mpath.errors import RigError

CGROUP_ROOT = Path("/sys/fs/cgroup")
#: A one-second period with 20 ms of CPU in it: stalls of up to about a second.
SLOW_PERIOD_US = 1_000_000
SLOW_QUOTA_US = 20_000


def _cpu_hierarchy() -> tuple[Path, bool]:
    """The cgroup directory the CPU controller lives in, and whether it is cgroup v2."""
    if (CGROUP_ROOT / "cgroup.controllers").exists():
        return CGROUP_ROOT, True
    for name in ("cpu", "cpu,cpuacct"):
        if (CGROUP_ROOT / name / "cpu.cfs_quota_us").exists():
            return CGROUP_ROOT / name, False
    raise RigError(f"no cgroup CPU controller under {CGROUP_ROOT}: 'target slow' needs one")


def _group(rig_name: str) -> tuple[Path, bool]:
    root, v2 = _cpu_hierarchy()
    return root / f"mpath-rig-{rig_name}", v2


def _origin(pid: int, v2: bool) -> Path:
    """The cgroup ``pid`` is in now (where ``fast`` puts it back)."""
    root, _ = _cpu_hierarchy()
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if (v2 and controllers == "") or (not v2 and "cpu" in controllers.split(",")):
            return root / path.lstrip("/")
    return root


def slow(rig_name: str, pid: int) -> str:
    """Move ``pid`` into the rig's throttled cgroup; return the cgroup it came from."""
    group, v2 = _group(rig_name)
    origin = _origin(pid, v2)
    if origin == group:
        return str(group.parent)
    group.mkdir(exist_ok=True)
    if v2:
        (group / "cpu.max").write_text(f"{SLOW_QUOTA_US} {SLOW_PERIOD_US}\n")
    else:
        (group / "cpu.cfs_period_us").write_text(f"{SLOW_PERIOD_US}\n")
        (group / "cpu.cfs_quota_us").write_text(f"{SLOW_QUOTA_US}\n")
    (group / "cgroup.procs").write_text(f"{pid}\n")  # all of its threads move with it
    return str(origin)


def cpu_stat(rig_name: str) -> dict[str, int]:
    """The throttled cgroup's ``cpu.stat`` (periods, throttled periods and time), or
    nothing when the rig is not slow: what to look at when a stall ran long."""
    try:
        group, _ = _group(rig_name)
        text = (group / "cpu.stat").read_text()
    except (RigError, OSError):
        return {}
    return {key: int(value) for key, value in (line.split() for line in text.splitlines())}


def fast(rig_name: str, origin: str | None) -> None:
    """Give the throttled processes their CPU back (into ``origin``); remove the cgroup.

    Every member moves, not one pid: after a ``target restart`` the daemon in the group
    may be a new one. Safe to call when nothing is throttled.
    """
    try:
        group, _ = _group(rig_name)
    except RigError:
        return  # no CPU controller: nothing can have been throttled
    if not group.is_dir():
        return
    back = Path(origin) if origin else group.parent
    members = (group / "cgroup.procs").read_text().split()
    for member in members:
        with contextlib.suppress(ProcessLookupError, OSError):
            (back / "cgroup.procs").write_text(f"{member}\n")
    with contextlib.suppress(OSError):
        group.rmdir()
    if group.is_dir():
        raise RigError(f"cgroup {group} could not be removed (a process is still in it)")
