"""Commands that save work on a multipath device: zero, deallocate, and map its blocks.

Why a module of its own: an NBD client's WRITE_ZEROES, TRIM and block status each
become one small SCSI command (WRITE SAME (16), UNMAP, GET LBA STATUS) instead of the
range's bytes crossing the network, and ``nbdcopy`` skips what is unallocated. They go
through :meth:`MultipathDevice.passthrough`, so path choice, failover, fencing before a
reissued write and the one sense classification apply exactly as to READ and WRITE.
What the LU supports was read at open (:class:`~mpath.scsi.provisioning.Provisioning`,
from READ CAPACITY (16) and VPD 0xB0/0xB2); a command the LU still refuses (ILLEGAL
REQUEST) is remembered and never sent again, and the caller falls back.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Final

from mpath.errors import TargetIOError, UsageError
from mpath.filter.device import MultipathDevice
from mpath.scsi import cdb
from mpath.scsi.provisioning import LbaState, Provisioning, parse_lba_status
from mpath.scsi.sense import SenseKey, decode_sense
from mpath.scsi.status import ScsiStatus
from mpath.transports.base import ScsiResult

log = logging.getLogger(__name__)

#: Blocks per WRITE SAME when the LU reports no limit (256 MiB of 512-byte blocks):
#: bounded so one command's time stays well inside the path watchdog's slow limit.
DEFAULT_WRITE_SAME_BLOCKS: Final = 1 << 19
#: Blocks per UNMAP descriptor when the LU reports no limit.
DEFAULT_UNMAP_BLOCKS: Final = 1 << 22
#: GET LBA STATUS descriptors asked for per command.
LBA_STATUS_DESCRIPTORS: Final = 256


@dataclass(frozen=True, slots=True)
class Extent:
    """``length`` bytes from ``offset``: allocated (holds data) or a hole."""

    offset: int
    length: int
    allocated: bool


class Provisioned:
    """Zeroing, deallocation and mapping of one open :class:`MultipathDevice`."""

    def __init__(self, device: MultipathDevice) -> None:
        if device.lun is None:
            raise UsageError("the device is not open")
        self.device = device
        self.block = device.lun.block_size
        self.refused: set[str] = set()  # commands the LU answered ILLEGAL REQUEST

    @property
    def size(self) -> int:
        """The LUN's size now (it follows :meth:`MultipathDevice.refresh_capacity`)."""
        return self.device.size_bytes

    @property
    def supports(self) -> Provisioning:
        lun = self.device.lun
        return lun.provisioning if lun is not None else Provisioning()

    @property
    def can_write_same(self) -> bool:
        return self.supports.write_same and "write_same" not in self.refused

    @property
    def can_unmap(self) -> bool:
        return self.supports.unmap and "unmap" not in self.refused

    @property
    def can_fast_zero(self) -> bool:
        """Zeroing by deallocation (WRITE SAME with UNMAP; reads back zeroes)."""
        return self.supports.write_same_unmap and "write_same" not in self.refused

    @property
    def holes_read_zeroes(self) -> bool:
        return self.supports.holes_read_zeroes

    @property
    def can_map(self) -> bool:
        return self.supports.lba_status and "lba_status" not in self.refused

    def _blocks(self, offset: int, length: int) -> tuple[int, int]:
        block = self.block
        if offset % block or length % block or offset < 0 or offset + length > self.size:
            raise UsageError(
                f"offset {offset} and length {length}: whole {block}-byte blocks within the LUN"
            )
        return offset // block, length // block

    def _refusal(self, name: str, result: ScsiResult) -> bool:
        """True (and remembered) when ``result`` says the LU does not do ``name``."""
        if result.status in (ScsiStatus.GOOD, ScsiStatus.CONDITION_MET):
            return False
        sense = decode_sense(result.sense) if result.sense else None
        if sense is not None and sense.key is SenseKey.ILLEGAL_REQUEST:
            if name not in self.refused:
                log.info("LU refused %s (%s): not used again", name, sense)
            self.refused.add(name)
            return True
        raise TargetIOError(name, result.status, result.sense, str(sense or result.status))

    async def write_zeroes(self, offset: int, length: int, *, unmap: bool = False) -> bool:
        """Zero whole blocks with WRITE SAME (16); False when the LU refuses it.

        With ``unmap`` (and a LU that deallocates to zeroes) the blocks are deallocated
        instead of written. Pieces are bounded by the LU's WRITE SAME limit.
        """
        if not self.can_write_same:
            return False
        lba, blocks = self._blocks(offset, length)
        unmap = unmap and self.can_fast_zero
        zero = bytes(self.block)
        per = self.supports.max_write_same_blocks or DEFAULT_WRITE_SAME_BLOCKS
        pieces = [(at, min(per, lba + blocks - at)) for at in range(lba, lba + blocks, per)]
        for first in range(0, len(pieces), 8):
            results = await asyncio.gather(
                *(
                    self.device.passthrough(cdb.write_same16(at, n, unmap=unmap), data_out=zero)
                    for at, n in pieces[first : first + 8]
                )
            )
            for result in results:
                if self._refusal("write_same", result):
                    return False
        return True

    async def unmap(self, offset: int, length: int) -> bool:
        """Deallocate whole blocks (UNMAP); False when the LU refuses it."""
        if not self.can_unmap:
            return False
        lba, blocks = self._blocks(offset, length)
        per = self.supports.max_unmap_blocks or DEFAULT_UNMAP_BLOCKS
        per_command = self.supports.max_unmap_descriptors or 64
        ranges = [(at, min(per, lba + blocks - at)) for at in range(lba, lba + blocks, per)]
        for first in range(0, len(ranges), per_command):
            parameters = cdb.unmap_parameters(ranges[first : first + per_command])
            result = await self.device.passthrough(cdb.unmap(len(parameters)), data_out=parameters)
            if self._refusal("unmap", result):
                return False
        return True

    async def extents(self, offset: int, length: int) -> list[Extent] | None:
        """Allocated and unallocated extents covering at least the first byte of the
        range (GET LBA STATUS), clipped to it; None when the LU cannot tell."""
        if not self.can_map:
            return None
        block = self.block
        start = offset // block
        end = min(self.size, offset + length)
        alloc = 8 + 16 * LBA_STATUS_DESCRIPTORS
        result = await self.device.passthrough(
            cdb.get_lba_status(start, alloc), data_in_length=alloc
        )
        if self._refusal("lba_status", result):
            return None
        found: list[Extent] = []
        position = offset
        for status in parse_lba_status(result.data):
            first = status.lba * block
            last = first + status.blocks * block
            if last <= position or status.blocks == 0:
                continue
            if first > position:
                break  # a gap in the answer: stop at what is known
            stop = min(last, end)
            allocated = status.state is not LbaState.DEALLOCATED
            if found and found[-1].allocated == allocated:
                previous = found.pop()
                found.append(Extent(previous.offset, stop - previous.offset, allocated))
            else:
                found.append(Extent(position, stop - position, allocated))
            position = stop
            if position >= end:
                break
        return found or [Extent(offset, end - offset, True)]
