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


def unique_rig_name(prefix: str = "t") -> str:
    return f"{prefix}-{secrets.token_hex(4)}"


def _rig_resources() -> set[str]:
    """Namespaces, host links and tgtd processes that rigs create (for leak checks)."""
    found: set[str] = set()
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    found |= {
        f"netns {line.split()[0]}" for line in netns.splitlines() if line.startswith("mpath-rig-")
    }
    links = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True).stdout
    for line in links.splitlines():
        ifname = line.split(":")[1].strip().split("@")[0]
        if ifname.startswith("mpr"):
            found.add(f"link {ifname}")
    procs = subprocess.run(["ps", "-eo", "pid=,stat=,args="], capture_output=True, text=True).stdout
    for line in procs.splitlines():
        pid, stat, args = line.split(None, 2)
        if "Z" not in stat and args.startswith("tgtd ") and " -C 3" in args:
            found.add(f"tgtd pid {pid}")
    return found


@pytest.fixture(scope="session", autouse=True)
def no_leaked_rigs() -> Iterator[None]:
    """Fail the session if a rig's namespace, veth pair or tgtd outlives the tests."""
    if rig_skip_reason() is not None:
        yield
        return
    before = _rig_resources()
    yield
    leaked = _rig_resources() - before
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
