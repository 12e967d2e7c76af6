"""The LUN's cap on outstanding commands, takeable without a coroutine.

Why not ``asyncio.Semaphore``: a command that can start at once should not need a
coroutine to say so. The device's direct path (:meth:`MultipathDevice.start_read`)
starts a command from a plain function call, so the cap has to be taken the same way:
:meth:`try_acquire` takes a slot when one is free and nobody queued before it, and
:meth:`acquire` waits in line otherwise. Waiters are served first come, first served,
so a command queued behind the cap is never overtaken by one that only tried.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque


class CommandSlots:
    """A counting semaphore of ``limit`` slots, first come first served."""

    __slots__ = ("_waiters", "free", "limit")

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError(f"a command cap of {limit}: at least 1 is needed")
        self.limit = limit
        self.free = limit
        self._waiters: deque[asyncio.Future[None]] = deque()

    def try_acquire(self) -> bool:
        """Take a slot if one is free and nobody waits for one; never waits."""
        if self.free and not self._waiters:
            self.free -= 1
            return True
        return False

    async def acquire(self) -> None:
        """Take a slot, waiting in line behind earlier waiters."""
        if self.try_acquire():
            return
        granted: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(granted)
        try:
            await granted
        except BaseException:
            if granted.done() and not granted.cancelled():
                self.release()  # granted, then cancelled before it could be used
            else:
                with contextlib.suppress(ValueError):
                    self._waiters.remove(granted)
            raise

    def release(self) -> None:
        """Give a slot back: to the first waiter still waiting, else to the pool."""
        while self._waiters:
            granted = self._waiters.popleft()
            if not granted.done():
                granted.set_result(None)
                return
        self.free += 1
