"""SCSI persistent reservations (SPC-4 5.13) as mpath uses them to fence a path.

Why they fence: under a *Write Exclusive - Registrants Only* reservation, a WRITE from
an I_T nexus that holds no registration ends with RESERVATION CONFLICT and is not
executed. mpath registers one key on each path's I_T nexus and holds that
reservation; to fence a failed path, a working path PREEMPTs (AND ABORTs, where the
target can) the failed path's key. A write still waiting in the network for the old
nexus is then refused when it arrives, whichever target port group it went to:
registrations belong to the LU, not to a portal group.

Why one key per registration: PREEMPT removes *every* registration holding the key it
names. With one key shared by all paths (what mpathpersist registers: there a cluster
fences a whole host), preempting the failed path would also unregister the working
paths, whose in-flight writes would then fail with RESERVATION CONFLICT. So each path
gets its own key: the configured ``reservation_key`` with the path's number in its
low byte and a registration counter in the byte above (both must be zero in the
configured value). The counter changes at every registration because a target may
keep the registration of an ended session (tgt does): with a key of its own, that
stale registration can still be preempted precisely, at a fence, at close and at the
next open. Another host sees one 48-bit prefix per host, as with mpathpersist's one
key.

Why *Registrants Only* (type 5) rather than *All Registrants* (type 7): both refuse
an unregistered nexus's writes. Type 7 makes every registrant a holder, which would
spare mpath moving the reservation when the holder path fails; but tgt (1.0.85)
keeps a pointer to the registration that reserved, and a PREEMPT of that key under
type 7 frees it without moving the reservation (measured on the rig: READ
RESERVATION then reports a type of 9). Under type 5, a PREEMPT of the holder's key
moves the reservation to the preempting nexus, as SPC-4 5.13.11.2.4 says and as tgt
and LIO both do; preempting any other key only removes its registrations. A path
that registers while another of ours holds the reservation gets RESERVATION CONFLICT
to its RESERVE, which is fine: the holder's key is ours. At close, the last key to be
removed is the holder's own (unregistering the holder releases a type-5 reservation).

This module is pure: CDB service-action codes, key arithmetic and the parsers of
PERSISTENT RESERVE IN data. The commands are sent by :mod:`mpath.filter.reservation`.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum
from typing import Final

from mpath.errors import UsageError
from mpath.scsi.errors import ScsiDataError, ScsiTruncatedError


class PrIn(IntEnum):
    """PERSISTENT RESERVE IN service actions (SPC-4 6.15.1)."""

    READ_KEYS = 0x00
    READ_RESERVATION = 0x01


class PrOut(IntEnum):
    """PERSISTENT RESERVE OUT service actions (SPC-4 6.16.1)."""

    REGISTER = 0x00
    RESERVE = 0x01
    RELEASE = 0x02
    CLEAR = 0x03
    PREEMPT = 0x04
    PREEMPT_AND_ABORT = 0x05
    REGISTER_AND_IGNORE_EXISTING_KEY = 0x06


class PrType(IntEnum):
    """Persistent reservation types (SPC-4 6.16.2, table 186)."""

    WRITE_EXCLUSIVE = 0x1
    EXCLUSIVE_ACCESS = 0x3
    WRITE_EXCLUSIVE_REGISTRANTS_ONLY = 0x5
    EXCLUSIVE_ACCESS_REGISTRANTS_ONLY = 0x6
    WRITE_EXCLUSIVE_ALL_REGISTRANTS = 0x7
    EXCLUSIVE_ACCESS_ALL_REGISTRANTS = 0x8


#: The type mpath holds: unregistered nexuses may read but not write.
FENCING_TYPE: Final = PrType.WRITE_EXCLUSIVE_REGISTRANTS_ONLY
#: Paths one key prefix can number (the key's low byte; 0 is not a key).
MAX_PATHS: Final = 255
#: The bits of a key that mpath fills in: registration counter and path number.
KEY_SUFFIX_MASK: Final = 0xFFFF
#: Allocation length for READ KEYS / READ RESERVATION: the header and 1020 keys.
PR_IN_ALLOC_LEN: Final = 8192

_HEADER = struct.Struct(">II")


def parse_reservation_key(value: object) -> int:
    """A configured ``reservation_key``: a non-zero 64-bit value whose low 16 bits are 0.

    Accepted as an integer or a string of hex digits with ``0x`` (as multipath.conf
    writes it). The low two bytes carry a registration counter and the path number (see
    the module docstring), so they must be zero: ``0x6d70617468000100`` is refused
    rather than silently changed.
    Raises :class:`~mpath.errors.UsageError` saying what is wrong.
    """
    if isinstance(value, bool):
        raise UsageError(f"reservation_key must be a hex string or an integer, not {value!r}")
    if isinstance(value, str):
        text = value.strip()
        if not text.lower().startswith("0x") or len(text) < 3:
            raise UsageError(
                f"reservation_key {value!r}: expected 0x and up to 16 hex digits "
                "(for example 0x6d70617468000000)"
            )
        try:
            key = int(text[2:], 16)
        except ValueError:
            raise UsageError(f"reservation_key {value!r}: not a hex number") from None
    elif isinstance(value, int):
        key = value
    else:
        raise UsageError(f"reservation_key must be a hex string or an integer, not {value!r}")
    if not 0 < key < 1 << 64:
        raise UsageError(f"reservation_key {value!r}: must be above 0 and fit in 64 bits")
    if key & KEY_SUFFIX_MASK:
        raise UsageError(
            f"reservation_key {value!r}: its low two bytes must be 0000 (mpath puts a "
            f"counter and the path number there: try {key & ~KEY_SUFFIX_MASK:#018x})"
        )
    return key


def path_key(base: int, index: int, generation: int) -> int:
    """The key path number ``index`` (1-based) registers under ``base`` at its
    ``generation``-th registration (taken modulo 256)."""
    if not 1 <= index <= MAX_PATHS:
        raise UsageError(f"persistent-reservation fencing numbers at most {MAX_PATHS} paths")
    return base | (generation & 0xFF) << 8 | index


def is_ours(base: int, key: int) -> bool:
    """Whether ``key`` is one of the path keys under ``base`` (this host's)."""
    return key & ~KEY_SUFFIX_MASK == base and key & 0xFF != 0


@dataclass(frozen=True, slots=True)
class Reservation:
    """READ RESERVATION data: the holder's key (0 for all-registrants types) and type."""

    generation: int
    key: int
    pr_type: int

    def describe(self) -> str:
        try:
            name = PrType(self.pr_type).name.replace("_", " ").lower()
        except ValueError:
            name = f"type {self.pr_type:#x}"
        return f"{name}, key {self.key:#018x}"


def parse_read_keys(data: bytes) -> tuple[int, list[int]]:
    """READ KEYS data: (PR generation, every registered key, duplicates kept)."""
    if len(data) < _HEADER.size:
        raise ScsiTruncatedError("READ KEYS data", _HEADER.size, len(data))
    generation, length = _HEADER.unpack_from(data)
    body = data[_HEADER.size : _HEADER.size + length]
    count = len(body) // 8
    return generation, list(struct.unpack(f">{count}Q", body[: count * 8]))


def parse_read_reservation(data: bytes) -> Reservation | None:
    """READ RESERVATION data: the reservation, or None when the LU has none."""
    if len(data) < _HEADER.size:
        raise ScsiTruncatedError("READ RESERVATION data", _HEADER.size, len(data))
    generation, length = _HEADER.unpack_from(data)
    if length == 0:
        return None
    if len(data) < 22:
        raise ScsiDataError("READ RESERVATION data", f"{len(data)} bytes: no full descriptor")
    (key,) = struct.unpack_from(">Q", data, 8)
    return Reservation(generation, key, data[21] & 0x0F)


def foreign_holder(base: int, reservation: Reservation | None, keys: list[int]) -> str | None:
    """Why this LU's reservation is another host's, or None when there is none or it is ours.

    Ours: the fencing type, and every registered key is one of our path keys (left
    behind by an earlier run that could not clean up). Anything else (another type,
    a holder key or a registration that is not ours) is another initiator's: mpath
    never takes it over.
    """
    if reservation is None:
        return None
    strangers = sorted({k for k in keys if not is_ours(base, k)})
    if reservation.pr_type == FENCING_TYPE and not strangers:
        return None
    if reservation.key and not is_ours(base, reservation.key):
        return f"the LU is reserved by another initiator ({reservation.describe()})"
    if reservation.pr_type != FENCING_TYPE:
        return f"the LU holds a reservation mpath did not make ({reservation.describe()})"
    listed = ", ".join(f"{k:#018x}" for k in strangers[:4])
    return (
        f"the LU is reserved ({reservation.describe()}) with registrations of other "
        f"initiators ({listed})"
    )
