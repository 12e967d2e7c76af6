"""How long a device's I/O waited with no usable path, and how often it began failing.

multipathd counts both per map (``total_q_time`` and ``q_timeouts``): an operator
reads from them how long an outage held applications up and whether it outlasted
``no_path_retry``. Here the device reports each wait as it starts and ends; the meter
turns overlapping waits into one span of time (seconds during which at least one
command was queued and no path could carry it), on the device's injected clock.

*Failing I/O* begins when a command gives up its wait (``no_path_retry`` ran out, or
a write that waited for its failed path to be fenced found no path in time): counted
once per outage, however many commands fail in it, and over when a path is usable
again.
"""

from __future__ import annotations

import time
from collections.abc import Callable


class NoPathMeter:
    """Seconds of I/O queued with no usable path, and entries into failing I/O."""

    __slots__ = ("_clock", "_queued", "_seconds", "_since", "fail_io", "failing")

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._queued = 0
        self._since = 0.0
        self._seconds = 0.0
        #: Times the device began failing I/O for want of a path.
        self.fail_io = 0
        #: Failing I/O now: a command gave up waiting and no path came back since.
        self.failing = False

    def waiter(self) -> NoPathWait:
        """One command's wait, to start and end as often as paths come and go."""
        return NoPathWait(self)

    def wait_started(self) -> None:
        """A command began waiting for a usable path (none is)."""
        if not self._queued:
            self._since = self._clock()
        self._queued += 1

    def wait_ended(self) -> None:
        """That command stopped waiting: a path is usable, it failed, or was cancelled."""
        self._queued -= 1
        if not self._queued:
            self._seconds += self._clock() - self._since

    @property
    def queued(self) -> int:
        """Commands waiting for a path now."""
        return self._queued

    def seconds(self) -> float:
        """Seconds during which I/O waited with no usable path, the current wait included."""
        if self._queued:
            return self._seconds + self._clock() - self._since
        return self._seconds

    def gave_up(self) -> None:
        """A command failed for want of a path: the device is failing I/O."""
        if not self.failing:
            self.failing = True
            self.fail_io += 1

    def path_usable(self) -> None:
        """A path can carry I/O again: the outage, and failing I/O, are over."""
        self.failing = False


class NoPathWait:
    """One waiting command's part in a :class:`NoPathMeter`: ``start`` when it finds no
    usable path, ``end`` when one is usable or it stops waiting (both idempotent, so a
    ``finally`` can always ``end``)."""

    __slots__ = ("_active", "_meter")

    def __init__(self, meter: NoPathMeter) -> None:
        self._meter = meter
        self._active = False

    def start(self) -> None:
        if not self._active:
            self._active = True
            self._meter.wait_started()

    def end(self) -> None:
        if self._active:
            self._active = False
            self._meter.wait_ended()
