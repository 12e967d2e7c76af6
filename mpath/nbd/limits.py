"""What keeps concurrent requests correct and bounded: block-range locks and a byte budget.

:class:`BlockLocks` stops two read-modify-writes of one block from undoing each other;
:class:`ByteBudget` caps the payload bytes held in memory over all clients.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque


class Claim:
    """One write's hold on blocks [start, end); ``edges`` are read-modify-written."""

    __slots__ = ("edges", "end", "granted", "start")

    def __init__(self, start: int, end: int, edges: tuple[int, ...]) -> None:
        self.start = start
        self.end = end
        self.edges = edges
        self.granted: asyncio.Future[None] | None = None

    def conflicts(self, other: Claim) -> bool:
        if self.end <= other.start or other.end <= self.start:
            return False
        # Whole-block writes of one block may run together (each block lands whole,
        # one or the other); an edge block being read-modify-written may not be
        # written by anyone else between its read and its write.
        return any(other.start <= e < other.end for e in self.edges) or any(
            self.start <= e < self.end for e in other.edges
        )


class BlockLocks:
    """Range locks over blocks, taken by every write, exclusive only on RMW edge blocks.

    Without them, two unaligned writes into one block could both read it, merge their
    own bytes and write it back, and the second write would silently undo the first;
    an aligned write landing between an RMW's read and write would be undone the same
    way. Aligned writes that do not touch a block being read-modify-written never
    wait. Waiters are served first-come first-served, so no write starves.
    """

    def __init__(self) -> None:
        self._active: list[Claim] = []
        self._waiting: list[Claim] = []

    def __len__(self) -> int:
        return len(self._active) + len(self._waiting)

    async def acquire(self, start: int, end: int, edges: tuple[int, ...] = ()) -> Claim:
        claim = Claim(start, end, edges)
        if not self._blocked(claim, self._waiting):
            self._active.append(claim)
            return claim
        claim.granted = asyncio.get_running_loop().create_future()
        self._waiting.append(claim)
        try:
            await claim.granted
        except BaseException:
            if claim in self._waiting:
                self._waiting.remove(claim)
            else:
                self.release(claim)
            raise
        return claim

    def try_acquire(self, start: int, end: int) -> Claim | None:
        """A whole-block write's claim on [start, end) if it needs no wait, else None
        (then :meth:`acquire` waits in line)."""
        claim = Claim(start, end, ())
        if self._blocked(claim, self._waiting):
            return None
        self._active.append(claim)
        return claim

    def release(self, claim: Claim) -> None:
        self._active.remove(claim)
        if not self._waiting:
            return
        still: list[Claim] = []
        for waiter in self._waiting:
            if self._blocked(waiter, still):
                still.append(waiter)
                continue
            self._active.append(waiter)
            assert waiter.granted is not None
            if not waiter.granted.done():
                waiter.granted.set_result(None)
        self._waiting = still

    def _blocked(self, claim: Claim, ahead: list[Claim]) -> bool:
        if not claim.edges and not any(c.edges for c in self._active) and not ahead:
            return False
        return any(claim.conflicts(c) for c in self._active) or any(
            claim.conflicts(c) for c in ahead
        )


class ByteBudget:
    """A server-wide cap on payload bytes in flight (reads being fetched, writes held).

    First come, first served, so a large request is not starved by small ones.
    ``release`` is synchronous so it can run in ``finally`` blocks of cancelled tasks.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self._waiters: deque[tuple[int, asyncio.Future[None]]] = deque()

    async def acquire(self, nbytes: int) -> None:
        if not self._waiters and self.used + nbytes <= self.limit:
            self.used += nbytes
            return
        granted: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (nbytes, granted)
        self._waiters.append(entry)
        try:
            await granted
        except BaseException:
            if granted.done() and not granted.cancelled():
                self.release(nbytes)
            else:
                with contextlib.suppress(ValueError):
                    self._waiters.remove(entry)
            raise

    def release(self, nbytes: int) -> None:
        self.used -= nbytes
        while self._waiters and self.used + self._waiters[0][0] <= self.limit:
            wanted, granted = self._waiters.popleft()
            if granted.done():
                continue
            self.used += wanted
            granted.set_result(None)
