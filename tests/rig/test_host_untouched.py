"""The rig must leave the host's network exactly as it found it (real rig)."""

from __future__ import annotations

import subprocess

import pytest

from mpath.rig import RigManager
from tests.conftest import unique_rig_name

pytestmark = pytest.mark.rig


def host_network() -> dict[str, str]:
    """The host's addresses, routes and firewall ruleset, as text."""
    commands = {
        "ip addr": ["ip", "addr"],
        "ip route": ["ip", "route"],
        "ip -6 route": ["ip", "-6", "route"],
        "nft list ruleset": ["nft", "list", "ruleset"],
    }
    return {
        label: subprocess.run(argv, capture_output=True, text=True, check=True).stdout
        for label, argv in commands.items()
    }


def test_up_fault_down_leaves_host_network_identical() -> None:
    before = host_network()
    manager = RigManager()
    name = unique_rig_name("host")
    try:
        rig = manager.up(name=name, paths=3, size=8 * 1024**2)
        during = host_network()
        assert during["ip addr"] != before["ip addr"], "rig up should add its own veth ends"
        assert during["nft list ruleset"] == before["nft list ruleset"], (
            "the drop table must live in the rig's namespace, never in the host's ruleset"
        )
        manager.fault(name, 1, "drop")
        manager.fault(name, 2, "down")
        from mpath.units import parse_rate

        manager.fault(name, 3, "rate", parse_rate("100mbit"))
        assert host_network()["nft list ruleset"] == before["nft list ruleset"]
        assert rig.namespace
    finally:
        manager.down(name)
    after = host_network()
    for label in before:
        assert after[label] == before[label], f"{label} changed after rig down"
