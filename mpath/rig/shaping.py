"""Per-path speed limits with tc tbf (token bucket), in both directions.

The limit sits on the egress of both veth ends: the target's end shapes reads (data
flows target → initiator), the host's end shapes writes. tbf is used because this
kernel has no netem; it is exact enough for throughput and never drops a packet while
its queue (sized by ``latency``) has room.
"""

from __future__ import annotations

from mpath.rig.model import RigPath
from mpath.rig.system import run
from mpath.units import Rate

#: Queueing the bucket allows before it drops; large enough that TCP is never starved.
TBF_LATENCY = "200ms"
#: Smallest bucket: a full 64 KiB GSO segment must fit or tbf cannot send it whole.
MIN_BURST_BYTES = 128 * 1024


def _burst_bytes(rate: Rate) -> int:
    # About 10 ms worth of data at the configured rate, never below one GSO segment.
    return max(MIN_BURST_BYTES, int(rate.bytes_per_second / 100))


def _apply(prefix: list[str], ifname: str, rate: Rate | None) -> None:
    # Replace whatever root qdisc we set before; "del" first keeps "replace" semantics
    # simple when going from limited to unlimited.
    run([*prefix, "qdisc", "del", "dev", ifname, "root"], check=False)
    if rate is not None:
        run(
            [
                *prefix, "qdisc", "add", "dev", ifname, "root", "tbf",
                "rate", rate.tc_text(), "burst", str(_burst_bytes(rate)),
                "latency", TBF_LATENCY,
            ]
        )  # fmt: skip


def set_path_rate(namespace: str, path: RigPath, rate: Rate | None) -> None:
    """Limit ``path`` to ``rate`` both ways (None removes the limit)."""
    _apply(["tc", "-n", namespace], path.target_if, rate)
    _apply(["tc"], path.host_if, rate)
