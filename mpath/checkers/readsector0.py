"""``readsector0``: READ (16) of logical block 0, for targets whose TUR says too little.

Some arrays answer TEST UNIT READY from a controller that cannot reach the media; a
read proves the data path end to end. The answer is read with the same table as the
TUR (unit attention reissued, ALUA standby ``ghost``, transition ``pending``), because
a READ meets the same conditions. The data itself is not looked at.
"""

from __future__ import annotations

from mpath.checkers.base import Checker, Probe
from mpath.checkers.tur import probe_with_sense_table
from mpath.scsi import cdb
from mpath.transports.base import Transport

READ_ALLOCATION = 4096
"""Data-in bytes offered for the one block: enough for 512- and 4096-byte blocks, so
the checker needs no READ CAPACITY first (a target sending less is a normal
underflow, reported as a residual)."""

_READ_BLOCK_0 = cdb.read16(0, 1)


class ReadSector0Checker(Checker):
    """READ of block 0 on the path's session."""

    name = "readsector0"

    async def _probe(self, transport: Transport) -> Probe:
        return await probe_with_sense_table(transport, _READ_BLOCK_0, READ_ALLOCATION)
