"""Per-path speed limits and the hold fault, with tc tbf (token bucket), both ways.

The limit sits on the egress of both veth ends: the target's end shapes reads (data
flows target → initiator), the host's end shapes writes. tbf is used because this
kernel has no netem (nor the plug qdisc); it is exact enough for throughput and never
drops a packet while its queue has room.

**Hold** turns the same tbf into a queue that keeps everything and delivers (almost)
nothing: its rate drops to 8 bit/s with a bucket smaller than one full-size packet, and
its queue grows to :data:`HOLD_LIMIT`. Data packets then wait, in order, as they would in
a congested switch or a hung NIC queue; at most a few bytes a minute of small packets
(pure ACKs) get out. **Release** gives the bucket its speed back and sends one datagram
through each end: tbf only looks at its queue again when a packet arrives or its
timer (set for the old, tiny rate) fires, so the datagram is what makes it deliver
what it held, in order. Every change is made in place (``tc qdisc replace`` of the
same tbf), which keeps the queue; deleting the qdisc would drop what it holds.
"""

from __future__ import annotations

import json
import socket
import sys
import time
from collections.abc import Callable
from typing import Any

from mpath.errors import RigError
from mpath.rig.model import RigPath
from mpath.rig.system import run
from mpath.units import Rate

#: Queueing the bucket allows before it drops; large enough that TCP is never starved.
TBF_LATENCY = "200ms"
#: Smallest bucket: a full 64 KiB GSO segment must fit or tbf cannot send it whole.
MIN_BURST_BYTES = 128 * 1024
#: The tbf handle mpath's shaping always uses, so changes find the same qdisc.
HANDLE = "1:"
#: A held path's rate and bucket: no full-size packet ever fits in the bucket.
HOLD_RATE = "8bit"
HOLD_BURST = "1600"
#: How much a held path keeps (bytes) before it would start dropping.
HOLD_LIMIT = "256mb"
#: The speed a released path drains its queue at when it has no limit of its own.
DRAIN_RATE = Rate(10_000_000_000)
#: How long release waits for a queue to empty before it gives up (seconds).
DRAIN_TIMEOUT = 10.0
#: The discard port: the nudge datagram needs no listener (the target ignores it).
DISCARD_PORT = 9


def _burst_bytes(rate: Rate) -> int:
    # About 10 ms worth of data at the configured rate, never below one GSO segment.
    return max(MIN_BURST_BYTES, int(rate.bytes_per_second / 100))


def _tbf(prefix: list[str], ifname: str, rate: Rate, *, limit: str | None = None) -> None:
    """Create or change (in place, keeping its queue) the tbf on ``ifname``."""
    size = ["limit", limit] if limit else ["latency", TBF_LATENCY]
    run(
        [
            *prefix, "qdisc", "replace", "dev", ifname, "root", "handle", HANDLE, "tbf",
            "rate", rate.tc_text(), "burst", str(_burst_bytes(rate)), *size,
        ]
    )  # fmt: skip


def _root_tbf(prefix: list[str], ifname: str) -> dict[str, Any] | None:
    """The root tbf of ``ifname`` as ``tc -s -j`` reports it (``qlen``: packets held),
    or None when the root qdisc is not mpath's tbf."""
    out = run([*prefix, "-s", "-j", "qdisc", "show", "dev", ifname, "root"]).stdout
    try:
        entries = json.loads(out or "[]")
    except json.JSONDecodeError:
        return None
    return next((e for e in entries if e.get("kind") == "tbf"), None)


def _backlog(prefix: list[str], ifname: str) -> int:
    """Packets waiting in the root tbf of ``ifname`` (0 when it has none)."""
    tbf = _root_tbf(prefix, ifname)
    return 0 if tbf is None else int(tbf.get("qlen", 0))


def _nudge_host(path: RigPath) -> None:
    """One datagram out of the host's end, so its tbf looks at its queue again."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.sendto(b"mpath-rig release", (path.target_ip, DISCARD_PORT))


def _nudge_target(namespace: str, path: RigPath) -> None:
    """One datagram out of the target's end (sent from inside the rig's namespace)."""
    code = (
        "import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); "
        f"s.sendto(b'mpath-rig release', ({path.host_ip!r}, {DISCARD_PORT}))"
    )
    run(["ip", "netns", "exec", namespace, sys.executable, "-c", code])


def _apply(prefix: list[str], ifname: str, rate: Rate | None, nudge: Callable[[], None]) -> None:
    """Set ``rate`` on ``ifname`` without dropping what its queue holds."""
    if rate is not None:
        _tbf(prefix, ifname, rate)
        return
    if _root_tbf(prefix, ifname) is None:
        return
    # Unlimited means no qdisc; drain the queue at full speed before removing it.
    _tbf(prefix, ifname, DRAIN_RATE)
    _drain(prefix, ifname, nudge)
    run([*prefix, "qdisc", "del", "dev", ifname, "root"], check=False)


def _drain(prefix: list[str], ifname: str, nudge: Callable[[], None]) -> None:
    deadline = time.monotonic() + DRAIN_TIMEOUT
    while _backlog(prefix, ifname):
        nudge()
        if time.monotonic() > deadline:
            raise RigError(f"{ifname}: held packets did not drain within {DRAIN_TIMEOUT:g} s")
        time.sleep(0.02)  # polling tc: the kernel offers no event for an empty queue


def set_path_rate(namespace: str, path: RigPath, rate: Rate | None) -> None:
    """Limit ``path`` to ``rate`` both ways (None removes the limit); keeps queued packets."""
    _apply(["tc", "-n", namespace], path.target_if, rate, lambda: _nudge_target(namespace, path))
    _apply(["tc"], path.host_if, rate, lambda: _nudge_host(path))


def hold_path(namespace: str, path: RigPath) -> None:
    """Make both ends of ``path`` keep what is sent, in order, and deliver nothing."""
    for prefix, ifname in ((["tc", "-n", namespace], path.target_if), (["tc"], path.host_if)):
        run(
            [
                *prefix, "qdisc", "replace", "dev", ifname, "root", "handle", HANDLE, "tbf",
                "rate", HOLD_RATE, "burst", HOLD_BURST, "limit", HOLD_LIMIT,
            ]
        )  # fmt: skip


def release_path(namespace: str, path: RigPath, rate: Rate | None) -> None:
    """Deliver everything ``path`` held, in order, then shape it to ``rate`` again."""
    ends: tuple[tuple[list[str], str, Callable[[], None]], ...] = (
        (["tc"], path.host_if, lambda: _nudge_host(path)),
        (["tc", "-n", namespace], path.target_if, lambda: _nudge_target(namespace, path)),
    )
    for prefix, ifname, nudge in ends:
        _tbf(prefix, ifname, rate or DRAIN_RATE, limit=HOLD_LIMIT)
        nudge()
    for prefix, ifname, nudge in ends:
        _drain(prefix, ifname, nudge)
    set_path_rate(namespace, path, rate)
