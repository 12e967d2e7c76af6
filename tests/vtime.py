"""Virtual time for tests of pure asyncio logic: a loop whose clock moves only when idle.

The filter layer and the checker monitor take their clock as a parameter and wait only
on asyncio timers (``call_later``, ``wait_for``, ``sleep``). Run them on
:class:`VirtualClockLoop` with ``clock=loop.time`` and every timer fires at exactly its
virtual time, as soon as nothing else is runnable: a test of a 30 s failback delay
takes microseconds, and "path failed within two polling intervals" is checked exactly,
however loaded the machine. The order of events is fixed by their virtual times, so a
run cannot flake.

Only for fakes: real sockets, threads or subprocesses make progress in real time,
which this clock does not wait for (it still waits when no timer is pending at all).
"""

from __future__ import annotations

import asyncio
import selectors
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

T = TypeVar("T")

#: Virtual seconds a whole test may take before it fails (a hang shows as a timeout).
TEST_BOUND = 60.0


class _IdleAdvancingSelector(selectors.DefaultSelector):
    """Polls without blocking; where the loop would sleep until its next timer, moves the
    clock to that timer instead."""

    def __init__(self) -> None:
        super().__init__()
        self.now = 0.0

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        ready = super().select(0)
        if ready or timeout == 0:
            return ready
        if timeout is None:  # no timer at all: only real I/O can wake the loop
            return super().select(None)
        self.now += max(0.0, timeout)
        return ready


class VirtualClockLoop(asyncio.SelectorEventLoop):
    """An event loop on virtual time (see the module docstring)."""

    def __init__(self) -> None:
        self._virtual = _IdleAdvancingSelector()
        super().__init__(self._virtual)

    def time(self) -> float:
        return self._virtual.now

    def stall(self, seconds: float) -> None:
        """The loop is blocked for ``seconds`` (a CPU stall, a long GC pause): the clock
        jumps and every timer that fell due meanwhile runs late, all at once."""
        self._virtual.now += seconds


def loop() -> VirtualClockLoop:
    """The running virtual-time loop (fails clearly when a test forgot :func:`run`)."""
    running = asyncio.get_running_loop()
    assert isinstance(running, VirtualClockLoop), "run the test body with tests.vtime.run"
    return running


def clock() -> float:
    """Now, on the running loop's virtual clock: pass ``clock=vtime.clock`` to the code
    under test."""
    return loop().time()


async def elapse(seconds: float) -> None:
    """Let ``seconds`` of virtual time pass with everything running normally: the span
    over which the test then counts what happened, not a wait for something to happen."""
    await asyncio.sleep(seconds)


def bounded(awaitable: Awaitable[T], seconds: float = 5.0) -> Awaitable[T]:
    """Every wait is bounded (in virtual seconds), so a bug fails the test, not hangs it."""
    return asyncio.wait_for(awaitable, seconds)


def run(body: Callable[[], Awaitable[Any]], bound: float = TEST_BOUND) -> None:
    """Run a test body on a fresh :class:`VirtualClockLoop`, bounded in virtual time."""

    async def bounded_body() -> None:
        await asyncio.wait_for(body(), bound)

    with asyncio.Runner(loop_factory=VirtualClockLoop) as runner:
        runner.run(bounded_body())
