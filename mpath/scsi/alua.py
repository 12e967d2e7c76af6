"""REPORT TARGET PORT GROUPS data: the ALUA state of every target port group.

An ALUA target (INQUIRY TPGS != 0) groups its ports and gives each group an access
state. A path's state is that of the group its port belongs to (VPD 0x83 designator
type 5 names the group, type 4 the port). mpath reads it to tell active paths from
standby ones and to prioritise them the way multipath-tools' ``alua`` prioritizer does.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Final

from mpath.scsi.errors import ScsiDataError, ScsiTruncatedError

_WHAT: Final = "REPORT TARGET PORT GROUPS data"
_EXTENDED_FORMAT: Final = 0x10  # byte 4 bits 6..4 = 001b
_PREFERRED: Final = 0x80
_DESCRIPTOR_LEN: Final = 8
_PORT_LEN: Final = 4
#: How far LIO's extended-format answer falls short of its own descriptors (see
#: :func:`parse_target_port_groups`).
_LIO_SHORTFALL: Final = 4


class AluaState(IntEnum):
    """Asymmetric access state of a target port group (SPC-4 5.15.2.4)."""

    ACTIVE_OPTIMIZED = 0x0
    ACTIVE_NON_OPTIMIZED = 0x1
    STANDBY = 0x2
    UNAVAILABLE = 0x3
    LBA_DEPENDENT = 0x4
    OFFLINE = 0xE
    TRANSITIONING = 0xF


@dataclass(frozen=True, slots=True)
class TargetPortGroup:
    """One target port group: its state, preference, and its ports' relative numbers.

    ``state`` is an int because reserved values occur; compare with :class:`AluaState`.
    ``supported_states`` is byte 1 of the descriptor (T_SUP .. AO_SUP bits).
    """

    group: int
    state: int
    preferred: bool
    supported_states: int
    status_code: int
    relative_ports: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class TargetPortGroups:
    """The whole answer; ``implicit_transition_time`` (seconds) only in the extended format."""

    groups: tuple[TargetPortGroup, ...]
    implicit_transition_time: int | None = None

    def group(self, number: int) -> TargetPortGroup | None:
        """The group with this number (from the path's VPD 0x83 type-5 designator)."""
        return next((g for g in self.groups if g.group == number), None)


def parse_target_port_groups(data: bytes | bytearray | memoryview) -> TargetPortGroups:
    """Parse RTPG parameter data in either the length-only or the extended format.

    Linux's LIO target counts RETURN DATA LENGTH without the extended header's 4 bytes
    and sends only that much, so its last group's last port descriptor is missing.
    In the extended format a port list cut short by at most those 4 bytes is therefore
    kept (with the ports that arrived): the group's number and state, which is what
    matters, are all there. Anything cut shorter is refused.
    """
    buf = bytes(data)
    if len(buf) < 4:
        raise ScsiDataError(_WHAT, f"{len(buf)} bytes, too short for the header")
    needed = 4 + int.from_bytes(buf[0:4], "big")
    if len(buf) < needed:
        raise ScsiTruncatedError(_WHAT, needed, len(buf))
    extended = len(buf) > 4 and buf[4] & 0x70 == _EXTENDED_FORMAT
    transition_time = buf[5] if extended and len(buf) > 5 else None
    offset = 8 if extended else 4
    groups: list[TargetPortGroup] = []
    while offset < needed:
        if offset + _DESCRIPTOR_LEN > needed:
            raise ScsiDataError(_WHAT, f"group descriptor at offset {offset} is cut off")
        descriptor = buf[offset : offset + _DESCRIPTOR_LEN]
        ports_end = offset + _DESCRIPTOR_LEN + descriptor[7] * _PORT_LEN
        if ports_end > needed:
            if not (extended and ports_end - needed <= _LIO_SHORTFALL):
                raise ScsiDataError(_WHAT, f"port list of the group at offset {offset} is cut off")
            ports_end = needed - (needed - offset - _DESCRIPTOR_LEN) % _PORT_LEN
        ports = tuple(
            int.from_bytes(buf[port + 2 : port + 4], "big")
            for port in range(offset + _DESCRIPTOR_LEN, ports_end, _PORT_LEN)
        )
        groups.append(
            TargetPortGroup(
                group=int.from_bytes(descriptor[2:4], "big"),
                state=descriptor[0] & 0x0F,
                preferred=bool(descriptor[0] & _PREFERRED),
                supported_states=descriptor[1],
                status_code=descriptor[5],
                relative_ports=ports,
            )
        )
        offset = ports_end
    return TargetPortGroups(tuple(groups), transition_time)


_STATE_PRIORITY: Final[dict[int, int]] = {
    AluaState.ACTIVE_OPTIMIZED: 50,
    AluaState.ACTIVE_NON_OPTIMIZED: 10,
    AluaState.LBA_DEPENDENT: 5,
    AluaState.STANDBY: 1,
}
_PREFERRED_BONUS: Final = 80


def alua_priority(state: int, *, preferred: bool, exclusive_pref: bool = False) -> int:
    """multipath-tools' ``alua`` prioritizer: 50 / 10 / 5 / 1 / 0 by state, +80 if preferred.

    As there, the preferred bonus is not given to an active/optimized group unless
    ``exclusive_pref`` (its ``exclusive_pref_bit`` argument) is set.
    """
    priority = _STATE_PRIORITY.get(state, 0)
    if preferred and (state != AluaState.ACTIVE_OPTIMIZED or exclusive_pref):
        priority += _PREFERRED_BONUS
    return priority


#: Each state's name, as ``mpath show`` prints it and ``mpath rig fault N alua`` takes it.
STATE_NAMES: Final[dict[int, str]] = {
    AluaState.ACTIVE_OPTIMIZED: "active-optimized",
    AluaState.ACTIVE_NON_OPTIMIZED: "active-nonoptimized",
    AluaState.STANDBY: "standby",
    AluaState.UNAVAILABLE: "unavailable",
    AluaState.LBA_DEPENDENT: "lba-dependent",
    AluaState.OFFLINE: "offline",
    AluaState.TRANSITIONING: "transitioning",
}


def state_name(state: int | None) -> str | None:
    """The state's name (``reserved-0x5`` for values SPC leaves reserved; None: unknown)."""
    if state is None:
        return None
    return STATE_NAMES.get(state, f"reserved-{state:#x}")


#: Which states may carry media access, best first (SPC-4 5.15.2.4): active/optimized
#: and LBA-dependent (which the kernel's ALUA handler also treats as active) before
#: active/non-optimized. Standby, unavailable, offline and transitioning ports reject
#: reads and writes, so they carry none.
_IO_TIER: Final[dict[int, int]] = {
    AluaState.ACTIVE_OPTIMIZED: 0,
    AluaState.LBA_DEPENDENT: 0,
    AluaState.ACTIVE_NON_OPTIMIZED: 1,
}


def io_tier(state: int | None) -> int | None:
    """Rank of a port in this state for I/O (lower is better); None: it takes no I/O.

    An unknown state (the LU has no ALUA, or it was not read yet) ranks with the
    optimized ones, so a target without ALUA is used on every path as before.
    """
    if state is None:
        return 0
    return _IO_TIER.get(state)
