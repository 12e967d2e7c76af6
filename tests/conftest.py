"""Shared fixtures: real rigs that are always torn down, and a leak guard.

Tests that need root (every real-rig test) are marked ``rig`` and skip with a reason
when not root or when the rig's tools are missing. A session-wide guard fails the run
if any test left a rig namespace, veth pair or tgtd behind.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from mpath.rig import Rig, RigManager
from mpath.units import Rate

RIG_TOOLS = ("ip", "tc", "nft", "tgtd", "tgtadm")


def rig_skip_reason() -> str | None:
    """Why real-rig tests cannot run here, or None when they can."""
    if os.geteuid() != 0:
        return "needs root: the rig creates network namespaces and veth pairs"
    missing = [tool for tool in RIG_TOOLS if shutil.which(tool) is None]
    if missing:
        return f"rig tools missing ({', '.join(missing)}): run 'make setup'"
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    reason = rig_skip_reason()
    if reason is None:
        return
    skip = pytest.mark.skip(reason=reason)
    for item in items:
        if "rig" in item.keywords:
            item.add_marker(skip)


#: Names of the rigs this test session builds carry this token, so the leak guard
#: looks only at what this session made (other sessions' rigs may come and go).
SESSION_TOKEN = secrets.token_hex(2)


def unique_rig_name(prefix: str = "t") -> str:
    return f"{prefix}-{SESSION_TOKEN}{secrets.token_hex(3)}"


def _rig_resources() -> set[str]:
    """This session's rig namespaces, tgtd daemons and state folders still present.

    A leaked veth pair always comes with a leaked namespace or daemon (deleting either
    end of a veth deletes both), so those are what is checked.
    """
    found: set[str] = set()
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    for line in netns.splitlines():
        if line.startswith("mpath-rig-") and SESSION_TOKEN in line:
            found.add(f"netns {line.split()[0]}")
    procs = subprocess.run(["ps", "-eo", "pid=,stat=,args="], capture_output=True, text=True)
    for line in procs.stdout.splitlines():
        pid, stat, args = line.split(None, 2)
        if "Z" not in stat and args.startswith("tgtd ") and SESSION_TOKEN in args:
            found.add(f"tgtd pid {pid}: {args}")
    root = RigManager().root
    if root.is_dir():
        found |= {f"state {p}" for p in root.iterdir() if SESSION_TOKEN in p.name}
    for hierarchy in (Path("/sys/fs/cgroup"), Path("/sys/fs/cgroup/cpu")):  # target slow
        found |= {f"cgroup {p}" for p in hierarchy.glob(f"mpath-rig-*{SESSION_TOKEN}*")}
    return found


@pytest.fixture(scope="session", autouse=True)
def no_leaked_rigs() -> Iterator[None]:
    """Fail the session if a rig's namespace, tgtd or state outlives the tests."""
    yield
    if rig_skip_reason() is None:
        leaked = _rig_resources()
        assert not leaked, f"tests leaked rig resources: {sorted(leaked)}"


RigFactory = Callable[..., Rig]


@pytest.fixture
def make_rig() -> Iterator[RigFactory]:
    """Build rigs inside one test; every rig built is removed, even if the test fails."""
    manager = RigManager()
    built: list[str] = []

    def factory(
        paths: int = 2, rates: list[Rate | None] | None = None, size: int = 64 * 1024**2
    ) -> Rig:
        name = unique_rig_name()
        built.append(name)
        return manager.up(name=name, paths=paths, rates=rates, size=size)

    yield factory
    for name in built:
        manager.down(name)


@pytest.fixture(scope="module")
def rig2() -> Iterator[Rig]:
    """A 2-path rig (64 MiB LUN, unlimited paths) shared by one test module."""
    manager = RigManager()
    name = unique_rig_name()
    try:
        yield manager.up(name=name, paths=2, size=64 * 1024**2)
    finally:
        manager.down(name)
