"""The rig's object graph, after rtslib-fb: target → TPG → LUN, portals; plus the paths.

These are plain typed records. They are what ``rig up`` built and what ``status``,
``fault`` and ``down`` (run later, from other processes) need to find it again, so
they round-trip through a small JSON state file.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from mpath.units import Rate

#: The benchmarking range the rig takes its addresses from (RFC 2544); one /24 per path.
RIG_NETWORK = ipaddress.IPv4Network("198.18.0.0/15")
#: /24 subnets in the range; subnet 0 is never used so the first rig's paths read
#: 198.18.1.x, 198.18.2.x, ...
MAX_SUBNETS = RIG_NETWORK.num_addresses // 256
ISCSI_PORT = 3260


class PathFault(StrEnum):
    """What is currently done to a path, as ``rig status`` reports it."""

    NONE = "none"
    DOWN = "down"
    DROP = "drop"
    HELD = "held"
    LOSS = "loss"
    SLOW = "slow"


def subnet_addresses(subnet: int) -> tuple[str, str]:
    """Return (initiator address, target address) of /24 number ``subnet`` in the range."""
    if not 1 <= subnet < MAX_SUBNETS:
        raise ValueError(f"subnet index {subnet} outside 1..{MAX_SUBNETS - 1}")
    base = int(RIG_NETWORK.network_address) + subnet * 256
    return str(ipaddress.IPv4Address(base + 1)), str(ipaddress.IPv4Address(base + 2))


@dataclass(frozen=True, slots=True)
class RigPortal:
    """One iSCSI network portal of the target (one per path)."""

    ip: str
    port: int = ISCSI_PORT

    def __str__(self) -> str:
        return f"{self.ip}:{self.port}"


@dataclass(frozen=True, slots=True)
class RigLUN:
    """The logical unit the rig exports, with the identity a real array would give it.

    ``designator`` is the 16-byte NAA IEEE Registered Extended (type 6) designator of
    VPD page 0x83, as 32 hex digits; ``serial`` is the VPD page 0x80 unit serial number.
    Both are random per rig, so two rigs on one host never look like one LUN.
    """

    number: int
    backing_file: str
    size_bytes: int
    serial: str
    designator: str

    @property
    def wwid(self) -> str:
        """The WWID as multipath-tools and udev spell it: designator type 3 (NAA) + hex."""
        return "3" + self.designator


@dataclass(frozen=True, slots=True)
class RigTPG:
    """A target portal group: the LUNs it maps and the portals it listens on."""

    tag: int
    luns: tuple[RigLUN, ...]
    portals: tuple[RigPortal, ...]


@dataclass(frozen=True, slots=True)
class RigTarget:
    """An iSCSI target node."""

    iqn: str
    tpgs: tuple[RigTPG, ...]


@dataclass(slots=True)
class RigPath:
    """One path: a veth pair, its /24, and the faults currently applied to it.

    ``host_if`` lives in the host's namespace (the initiator side), ``target_if`` in the
    rig's namespace. ``rate`` is the speed given at ``rig up`` (None: unlimited);
    ``current_rate`` is what tc enforces now.
    """

    index: int
    subnet: int
    host_if: str
    target_if: str
    rate: Rate | None = None
    current_rate: Rate | None = None
    link_down: bool = False
    dropping: bool = False
    #: Both ends keep what is sent and deliver nothing (``rig fault N hold``).
    held: bool = False
    #: The path's ALUA access state where the backend has ALUA (lio), else None.
    alua_state: str | None = None
    #: Percentage of packets lost at random both ways (``rig fault N loss PCT``).
    loss_pct: int = 0

    @property
    def host_ip(self) -> str:
        return subnet_addresses(self.subnet)[0]

    @property
    def target_ip(self) -> str:
        return subnet_addresses(self.subnet)[1]

    @property
    def fault(self) -> PathFault:
        if self.link_down:
            return PathFault.DOWN
        if self.dropping:
            return PathFault.DROP
        if self.held:
            return PathFault.HELD
        if self.loss_pct:
            return PathFault.LOSS
        if self.current_rate != self.rate:
            return PathFault.SLOW
        return PathFault.NONE


@dataclass(slots=True)
class Rig:
    """Everything one ``rig up`` created, enough to find and remove it later."""

    name: str
    backend: str
    namespace: str
    state_dir: str
    control_port: int
    target: RigTarget
    paths: list[RigPath] = field(default_factory=list)
    daemon_pid: int | None = None
    #: While ``target slow`` holds: the cgroup the daemon came from (``fast`` puts it back).
    slow_origin: str | None = None

    @property
    def target_slow(self) -> bool:
        return self.slow_origin is not None

    @property
    def lun(self) -> RigLUN:
        return self.target.tpgs[0].luns[0]

    def resize_lun(self, size_bytes: int) -> None:
        """Record the LUN's new size (the records are frozen: the graph is rebuilt)."""
        tpg = self.target.tpgs[0]
        lun = dataclasses.replace(self.lun, size_bytes=size_bytes)
        tpgs = (dataclasses.replace(tpg, luns=(lun, *tpg.luns[1:])), *self.target.tpgs[1:])
        self.target = dataclasses.replace(self.target, tpgs=tpgs)

    @property
    def portals(self) -> tuple[RigPortal, ...]:
        return self.target.tpgs[0].portals

    @property
    def urls(self) -> list[str]:
        """libiscsi URLs, one per path, in path order."""
        return [f"iscsi://{p.target_ip}/{self.target.iqn}/{self.lun.number}" for p in self.paths]

    def path(self, index: int) -> RigPath:
        """Return path ``index`` (counting from 1, as the CLI does)."""
        if not 1 <= index <= len(self.paths):
            from mpath.errors import RigUsageError

            raise RigUsageError(
                f"path index {index} out of range: rig {self.name!r} has paths 1..{len(self.paths)}"
            )
        return self.paths[index - 1]

    def describe(self) -> dict[str, Any]:
        """The JSON document of ``rig up --json`` (keys fixed by docs/CLI contract)."""
        return {
            "name": self.name,
            "backend": self.backend,
            "target": self.target.iqn,
            "lun": self.lun.number,
            "backing_file": self.lun.backing_file,
            "size_bytes": self.lun.size_bytes,
            "wwid": self.lun.wwid,
            "serial": self.lun.serial,
            "namespace": self.namespace,
            "portals": [str(p) for p in self.portals],
            "urls": self.urls,
        }

    # -- persistence -------------------------------------------------------------------

    def to_state(self) -> dict[str, Any]:
        def rate(value: Rate | None) -> int | None:
            return None if value is None else value.bits_per_second

        return {
            "version": 1,
            "name": self.name,
            "backend": self.backend,
            "namespace": self.namespace,
            "state_dir": self.state_dir,
            "control_port": self.control_port,
            "daemon_pid": self.daemon_pid,
            "slow_origin": self.slow_origin,
            "target": {
                "iqn": self.target.iqn,
                "tpgs": [
                    {
                        "tag": tpg.tag,
                        "luns": [
                            {
                                "number": lun.number,
                                "backing_file": lun.backing_file,
                                "size_bytes": lun.size_bytes,
                                "serial": lun.serial,
                                "designator": lun.designator,
                            }
                            for lun in tpg.luns
                        ],
                        "portals": [{"ip": p.ip, "port": p.port} for p in tpg.portals],
                    }
                    for tpg in self.target.tpgs
                ],
            },
            "paths": [
                {
                    "index": p.index,
                    "subnet": p.subnet,
                    "host_if": p.host_if,
                    "target_if": p.target_if,
                    "rate": rate(p.rate),
                    "current_rate": rate(p.current_rate),
                    "link_down": p.link_down,
                    "dropping": p.dropping,
                    "held": p.held,
                    "alua_state": p.alua_state,
                    "loss_pct": p.loss_pct,
                }
                for p in self.paths
            ],
        }

    @classmethod
    def from_state(cls, doc: dict[str, Any]) -> Rig:
        def rate(value: int | None) -> Rate | None:
            return None if value is None else Rate(int(value))

        target = RigTarget(
            iqn=doc["target"]["iqn"],
            tpgs=tuple(
                RigTPG(
                    tag=tpg["tag"],
                    luns=tuple(RigLUN(**lun) for lun in tpg["luns"]),
                    portals=tuple(RigPortal(**p) for p in tpg["portals"]),
                )
                for tpg in doc["target"]["tpgs"]
            ),
        )
        paths = [
            RigPath(
                index=p["index"],
                subnet=p["subnet"],
                host_if=p["host_if"],
                target_if=p["target_if"],
                rate=rate(p["rate"]),
                current_rate=rate(p["current_rate"]),
                link_down=p["link_down"],
                dropping=p["dropping"],
                held=p.get("held", False),
                alua_state=p.get("alua_state"),
                loss_pct=p.get("loss_pct", 0),
            )
            for p in doc["paths"]
        ]
        return cls(
            name=doc["name"],
            backend=doc["backend"],
            namespace=doc["namespace"],
            state_dir=doc["state_dir"],
            control_port=doc["control_port"],
            target=target,
            paths=paths,
            daemon_pid=doc.get("daemon_pid"),
            slow_origin=doc.get("slow_origin"),
        )
