"""The byte-addressed view of a block device: read-modify-write at unaligned edges.

NBD clients may read and write at any byte offset; the device takes whole blocks.
Unaligned writes read their edge blocks, merge and write back under the block-range
locks of :mod:`mpath.nbd.limits`, so concurrent writes into one block never tear.
"""

from __future__ import annotations

import asyncio
import functools

from mpath.nbd.limits import BlockLocks, Claim
from mpath.nbd.settings import BlockDevice, DirectIO, SavingCommands, ServeStats

#: Piece size for WRITE_ZEROES and for discarding oversized payloads.
ZERO_CHUNK = 1024 * 1024
ZEROES = bytes(ZERO_CHUNK)
#: WRITE_ZEROES pieces written concurrently.
ZERO_PARALLEL = 8


class ByteIO:
    """Byte-granular reads and writes over a block device (read-modify-write at edges)."""

    def __init__(
        self, device: BlockDevice, stats: ServeStats, saving: SavingCommands | None = None
    ) -> None:
        self.device = device
        self.saving = saving
        self.block = device.block_size
        self.locks = BlockLocks()
        self.stats = stats
        self.dirty = False  # a write completed since the last flush began
        self._direct = device if isinstance(device, DirectIO) else None

    @property
    def size(self) -> int:
        """The device's size now: a LUN that grew (``ctl resize map``) is served whole."""
        return self.device.size_bytes

    def _span(self, offset: int, length: int) -> tuple[int, int]:
        block = self.block
        return offset // block * block, -(-(offset + length) // block) * block

    async def read(self, offset: int, length: int) -> bytes | memoryview:
        if length == 0:
            return b""
        start, end = self._span(offset, length)
        data = await self.device.read(start, end - start)
        if start == offset and end == offset + length:
            return data
        self.stats.unaligned += 1
        return memoryview(data)[offset - start : offset - start + length]

    def start_read(self, offset: int, length: int) -> asyncio.Future[bytes] | None:
        """The device's direct read of a whole-block range (no task per request);
        None when the range is not whole blocks or the device has no direct read, and
        the request is then served by :meth:`read` in a task."""
        block = self.block
        direct = self._direct
        if direct is None or not length or offset % block or length % block:
            return None
        return direct.start_read(offset, length)

    def start_write(self, offset: int, data: bytes | memoryview) -> asyncio.Future[None] | None:
        """The device's direct write of whole blocks (no FUA, no task per request),
        under the block-range lock as :meth:`write` takes it; None when the range is
        not whole blocks, the device has no direct write, or the lock would have to be
        waited for, and the request is then served by :meth:`write` in a task."""
        block = self.block
        direct = self._direct
        length = len(data)
        if direct is None or not length or offset % block or length % block:
            return None
        claim = self.locks.try_acquire(offset // block, (offset + length) // block)
        if claim is None:
            return None
        try:
            writing = direct.start_write(offset, data)
        except BaseException:
            self.locks.release(claim)
            raise
        writing.add_done_callback(functools.partial(self._written, claim))
        return writing

    def _written(self, claim: Claim, writing: asyncio.Future[None]) -> None:
        """A direct write ended: its blocks are free again, and once it succeeded the
        export holds data a flush has not covered (as :meth:`write` marks it)."""
        self.locks.release(claim)
        if not writing.cancelled() and writing.exception() is None:
            self.dirty = True

    async def write(self, offset: int, data: bytes | memoryview, *, fua: bool) -> None:
        length = len(data)
        if length == 0:
            return
        block = self.block
        start, end = self._span(offset, length)
        head = start // block if offset != start else None
        tail = end // block - 1 if offset + length != end else None
        edges = tuple(sorted({e for e in (head, tail) if e is not None}))
        claim = await self.locks.acquire(start // block, end // block, edges)
        try:
            if not edges:
                await self.device.write(offset, data)
            else:
                self.stats.unaligned += 1
                merged = bytearray(end - start)
                reads = [self.device.read(e * block, block) for e in edges]
                for edge, content in zip(edges, await asyncio.gather(*reads), strict=True):
                    at = edge * block - start
                    merged[at : at + block] = content
                merged[offset - start : offset - start + length] = data
                await self.device.write(start, merged)
            if fua:
                # Not the FUA bit: a target without DPOFUA answers it with ILLEGAL
                # REQUEST (LIO FileIO without a write cache does; the kernel's ext4
                # sends FUA for its superblock). A flush after the write is the same
                # promise on every target.
                await self.device.flush()
            # Set once the write is done, not before: a flush that started while it was
            # in flight may not cover it, so it must leave the export dirty.
            self.dirty = True
        finally:
            self.locks.release(claim)

    def _inner(self, offset: int, length: int) -> tuple[int, int]:
        """The whole blocks inside a byte range (start == end when there are none)."""
        block = self.block
        start = -(-offset // block) * block
        end = max(start, (offset + length) // block * block)
        return start, end

    async def write_zeroes(
        self, offset: int, length: int, *, fua: bool, may_unmap: bool = False, fast: bool = False
    ) -> bool:
        """Zero a range; False (nothing done) when ``fast`` and the LU cannot zero itself.

        The whole blocks go to the LU as WRITE SAME (deallocated, when ``may_unmap`` and
        the LU reads holes back as zeroes); the partial edge blocks, or everything when
        the LU refuses WRITE SAME, are written as zeroes.
        """
        saving = self.saving
        start, end = self._inner(offset, length)
        if saving is not None and saving.can_write_same and end > start:
            block = self.block
            claim = await self.locks.acquire(start // block, end // block)
            try:
                done = await saving.write_zeroes(start, end - start, unmap=may_unmap)
                if done:
                    self.dirty = True
            finally:
                self.locks.release(claim)
            if done:
                self.stats.offloaded += 1
                for edge, size in ((offset, start - offset), (end, offset + length - end)):
                    if size > 0:
                        await self._write_zeroes_as_data(edge, size)
                if fua:
                    await self.device.flush()
                return True
        if fast:
            return False
        await self._write_zeroes_as_data(offset, length)
        if fua:
            await self.device.flush()  # one SYNCHRONIZE CACHE for the whole range
        return True

    async def trim(self, offset: int, length: int, *, fua: bool) -> bool:
        """Deallocate the whole blocks of a range (UNMAP); partial blocks are left as they
        are (a trim is advisory). False when the LU cannot."""
        saving = self.saving
        if saving is None or not saving.can_unmap:
            return False
        start, end = self._inner(offset, length)
        if end > start:
            block = self.block
            claim = await self.locks.acquire(start // block, end // block)
            try:
                if not await saving.unmap(start, end - start):
                    return False
                self.dirty = True
            finally:
                self.locks.release(claim)
            self.stats.offloaded += 1
        if fua:
            await self.device.flush()
        return True

    async def _write_zeroes_as_data(self, offset: int, length: int) -> None:
        """Zero a range of any size by writing zeroes, in bounded pieces (at most
        ``ZERO_PARALLEL`` at once)."""
        pieces: list[tuple[int, int]] = []
        position, end = offset, offset + length
        while position < end:
            piece_end = min(end, (position // ZERO_CHUNK + 1) * ZERO_CHUNK)
            pieces.append((position, piece_end - position))
            position = piece_end
        view = memoryview(ZEROES)
        for first in range(0, len(pieces), ZERO_PARALLEL):
            batch = pieces[first : first + ZERO_PARALLEL]
            await asyncio.gather(*(self.write(p, view[:n], fua=False) for p, n in batch))

    async def flush(self) -> None:
        self.dirty = False
        try:
            await self.device.flush()
        except BaseException:
            self.dirty = True
            raise
        self.stats.flushes += 1
