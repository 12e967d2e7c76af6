"""Self-describing data for write+verify runs.

Every 512-byte sector written carries, repeated to fill it, a 32-byte stamp: a magic
number, the run id, the sector's own LBA and the generation (how many times this run
wrote that chunk). A sector read back — through mpath, or straight from the rig's
backing file — therefore tells by itself whether it is the right data in the right
place and how new it is: a lost write shows as an old generation, a misdirected one as
a wrong LBA.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

MAGIC = 0x6D70617468564552  # "mpathVER"
SECTOR = 512
_STAMP = struct.Struct("<QQQQ")
_REPEAT = SECTOR // _STAMP.size


def fill(lba: int, sectors: int, generation: int, run_id: int) -> bytes:
    """The bytes written for ``sectors`` 512-byte sectors starting at sector ``lba``."""
    pack = _STAMP.pack
    return b"".join(pack(MAGIC, run_id, lba + i, generation) * _REPEAT for i in range(sectors))


@dataclass(frozen=True, slots=True)
class Mismatch:
    """One sector that did not hold what was expected."""

    lba: int
    expected_generation: int
    found: str

    def __str__(self) -> str:
        return f"sector {self.lba}: expected generation {self.expected_generation}, {self.found}"


def check(data: bytes | memoryview, lba: int, generation: int, run_id: int) -> list[Mismatch]:
    """Compare sectors read back with what ``fill`` wrote; return every mismatch."""
    view = memoryview(data)
    sectors = len(view) // SECTOR
    if view == fill(lba, sectors, generation, run_id):
        return []
    mismatches: list[Mismatch] = []
    unpack = _STAMP.unpack_from
    for i in range(sectors):
        sector = view[i * SECTOR : (i + 1) * SECTOR]
        expected = fill(lba + i, 1, generation, run_id)
        if sector == expected:
            continue
        magic, found_run, found_lba, found_gen = unpack(sector)
        if magic != MAGIC or found_run != run_id:
            found = "foreign or torn data"
        elif found_lba != lba + i:
            found = f"data of sector {found_lba}"
        elif found_gen != generation:
            found = f"generation {found_gen}"
        else:
            found = "a torn sector"
        mismatches.append(Mismatch(lba + i, generation, found))
    return mismatches
