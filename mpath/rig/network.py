"""Network namespaces and veth pairs: the wires of the rig.

Only objects the rig names itself are ever touched: its namespace, its veth pairs
(``mpr<subnet>`` on the host, ``path<N>`` inside the namespace) and their addresses
in 198.18.0.0/15. Nothing here changes an interface, route or rule it did not create.
"""

from __future__ import annotations

import ipaddress
import json
import time

from mpath.errors import RigError
from mpath.rig.model import RIG_NETWORK, RigPath
from mpath.rig.system import run


def namespace_exists(namespace: str) -> bool:
    listing = run(["ip", "-j", "netns", "list"]).stdout.strip()
    names = {entry["name"] for entry in json.loads(listing)} if listing else set()
    return namespace in names


def create_namespace(namespace: str) -> None:
    run(["ip", "netns", "add", namespace])
    run(["ip", "-n", namespace, "link", "set", "lo", "up"])


def delete_namespace(namespace: str) -> None:
    """Delete the namespace (and with it every veth end inside it); quiet if absent."""
    if namespace_exists(namespace):
        run(["ip", "netns", "del", namespace])


def link_exists(ifname: str, namespace: str | None = None) -> bool:
    argv = ["ip"] + (["-n", namespace] if namespace else []) + ["link", "show", "dev", ifname]
    return run(argv, check=False).returncode == 0


def create_path_link(namespace: str, path: RigPath) -> None:
    """Create the veth pair of ``path``, address both ends and bring them up."""
    run(
        [
            "ip", "link", "add", path.host_if, "type", "veth",
            "peer", "name", path.target_if, "netns", namespace,
        ]
    )  # fmt: skip
    run(["ip", "addr", "add", f"{path.host_ip}/24", "dev", path.host_if])
    run(["ip", "link", "set", path.host_if, "up"])
    run(["ip", "-n", namespace, "addr", "add", f"{path.target_ip}/24", "dev", path.target_if])
    run(["ip", "-n", namespace, "link", "set", path.target_if, "up"])


def delete_host_link(ifname: str) -> None:
    """Delete a host-side veth end the rig created; quiet if it is already gone."""
    if link_exists(ifname):
        run(["ip", "link", "del", ifname])


def set_link(namespace: str, ifname: str, up: bool) -> None:
    run(["ip", "-n", namespace, "link", "set", ifname, "up" if up else "down"])


def _operstate(argv_prefix: list[str], ifname: str) -> str:
    result = run([*argv_prefix, "-j", "link", "show", "dev", ifname], check=False)
    if result.returncode != 0:
        return "ABSENT"
    return str(json.loads(result.stdout)[0].get("operstate", "UNKNOWN"))


def wait_carrier(namespace: str, path: RigPath, timeout: float = 5.0) -> None:
    """Wait until both ends of ``path`` carry traffic again after a link came up.

    ``ip link set up`` returns before the veth pair has carrier; a fault is only
    cleared for the caller once packets can flow, so this polls the operational state
    of both ends (there is no event for it short of a netlink monitor).
    """
    deadline = time.monotonic() + timeout
    while True:
        host = _operstate(["ip"], path.host_if)
        target = _operstate(["ip", "-n", namespace], path.target_if)
        if host == "UP" and target == "UP":
            # Neighbour entries that failed while the link was down would make the
            # first connections fail with "No route to host" for seconds: forget them.
            run(["ip", "neigh", "flush", "dev", path.host_if], check=False)
            run(["ip", "-n", namespace, "neigh", "flush", "dev", path.target_if], check=False)
            return
        if time.monotonic() > deadline:
            raise RigError(
                f"path {path.index} has no carrier after {timeout:g} s ({host}/{target})"
            )
        time.sleep(0.01)


def link_is_up(namespace: str, ifname: str) -> bool:
    """True when the interface is administratively up (what ``rig fault down`` changes)."""
    result = run(["ip", "-n", namespace, "-j", "link", "show", "dev", ifname], check=False)
    if result.returncode != 0:
        return False
    info = json.loads(result.stdout)[0]
    return "UP" in info.get("flags", [])


def host_subnets_in_use() -> set[int]:
    """/24 numbers of 198.18.0.0/15 that already carry an address on the host."""
    listing = json.loads(run(["ip", "-j", "-4", "addr", "show"]).stdout or "[]")
    used: set[int] = set()
    for interface in listing:
        for info in interface.get("addr_info", []):
            address = ipaddress.IPv4Address(info["local"])
            if address in RIG_NETWORK:
                used.add((int(address) - int(RIG_NETWORK.network_address)) // 256)
    return used


def reset_connections(namespace: str, path: RigPath) -> int:
    """Abort the target's TCP connections on ``path``: the initiator gets a RST.

    ``ss -K`` destroys each socket in the kernel (SOCK_DESTROY), which sends the peer a
    reset, as a target that drops a connection does; the listening socket is left
    alone, so the initiator can log in again at once. Returns how many were reset.
    """
    query = ["-Htn", "state", "connected", "src", path.target_ip]
    listed = run(["ip", "netns", "exec", namespace, "ss", *query]).stdout
    count = len(listed.splitlines())
    if count:
        run(["ip", "netns", "exec", namespace, "ss", "-K", *query])
    return count
