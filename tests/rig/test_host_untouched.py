"""The rig must leave the host's network exactly as it found it (real rig)."""

from __future__ import annotations

import re
import subprocess

import pytest

from mpath.rig import RigManager
from mpath.units import parse_rate
from tests.conftest import unique_rig_name

pytestmark = pytest.mark.rig

COMMANDS = {
    "ip link": ["ip", "-o", "link"],
    "ip addr": ["ip", "-o", "addr"],
    "ip route": ["ip", "route"],
    "ip -6 route": ["ip", "-6", "route"],
    "nft list ruleset": ["nft", "list", "ruleset"],
}


def snapshot() -> dict[str, list[str]]:
    """The host's links, addresses, routes and firewall ruleset, line by line."""
    return {
        label: subprocess.run(argv, capture_output=True, text=True, check=True).stdout.splitlines()
        for label, argv in COMMANDS.items()
    }


def without_other_rigs(state: dict[str, list[str]], ours: frozenset[str]) -> dict[str, list[str]]:
    """Drop lines about other rigs' veth ends (``mprN`` not ours).

    Rigs of other test sessions may come and go meanwhile; they are not the host's.
    """

    def foreign(line: str) -> bool:
        names = set(re.findall(r"\bmpr\d+\b", line))
        return bool(names) and not names & ours

    return {label: [ln for ln in lines if not foreign(ln)] for label, lines in state.items()}


def test_up_fault_down_leaves_host_network_identical() -> None:
    manager = RigManager()
    name = unique_rig_name("host")
    before = snapshot()
    try:
        rig = manager.up(name=name, paths=3, size=8 * 1024**2)
        ours = frozenset(p.host_if for p in rig.paths)
        during = without_other_rigs(snapshot(), ours)
        clean_before = without_other_rigs(before, ours)
        assert during["ip addr"] != clean_before["ip addr"], "rig up adds its own veth ends"
        manager.fault(name, 1, "drop")
        manager.fault(name, 2, "down")
        manager.fault(name, 3, "rate", parse_rate("100mbit"))
        assert snapshot()["nft list ruleset"] == before["nft list ruleset"], (
            "the drop table must live in the rig's namespace, never in the host's ruleset"
        )
    finally:
        manager.down(name)
    after = without_other_rigs(snapshot(), ours)
    for label, lines in clean_before.items():
        assert after[label] == lines, f"{label} changed after rig down"
