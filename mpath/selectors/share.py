"""``share``: dynamic load balancing by measured transfer speed (the default policy).

This is the patent's claim 4: the filter measures each path's data transfer speed,
derives each path's load-balancing *share* from those speeds, and picks paths by share.

**Measuring speed, at every completion.** An I/O's *serial time* runs from its start,
or from the path's previous completion if that came later: an I/O that waited behind
seven others took eight transfer times, and only its own counts. Serial times and
bytes are gathered into one sample until it spans ``window_ms / 8`` of busy time (or
the path has nothing left in flight), because completions come in bursts (one network
read ends several commands at once, with serial times of 0). Each sample,
``bytes / busy time``, moves the estimate by ``age / (W + age)`` of the gap, where
``age`` is the time since the path's previous sample and ``W`` is ``window_ms``, or a
quarter of it for a sample more than 1.5 times above or below the estimate: an
exponential average over wall-clock time that holds steady through a real link's
jitter and follows a real change within a few tens of milliseconds. A path sampled
after an idle spell (a probe) replaces its stale estimate almost outright. Every
``period_ms`` a path that has held I/O for ``w`` seconds without completing any is
capped at ``in_flight_bytes / w`` (it cannot be faster), so a stalled path loses its
share before anything completes.

**Shares.** ``share_i = speed_i / sum(speed_j)`` over the usable paths. A path not yet
measured counts as the mean of the measured ones (all equal at first). When a path
fails its share is zero at once and the others' shares are rescaled to sum to 1. A
reinstated path restarts from ``probe_share`` of the mean speed and earns its share
back as its completions are measured.

**Choosing a path.** An I/O of ``n`` bytes goes to the path with the smallest
``(in_flight_bytes_i + n) / speed_i``: the time that path needs to move what it holds
plus this I/O, i.e. when this I/O would complete there. The I/O's own size counts, so
with mixed sizes a small read goes to the path that drains first and a large one leans
to the faster path. Each I/O going where it completes first keeps every path's queue
in proportion to its speed, so all queues drain in the same time and the tail latency
is that common time, not the slowest path's; with enough I/O in flight every path
stays busy.

**Probing.** A usable path that has had nothing in flight for ``probe_ms`` gets the
next I/O, whatever its share, so a path that was slow (or idle because the load is
light) is measured again and a path that became fast again is noticed.

**Cost.** The paths are kept in a binary heap keyed by completion time for an I/O of
the reference size ``ref`` (the mean size in flight at the last period), with lazy
updates: ``end_io`` (the key fell) pushes the path's new key; ``start_io`` (the key
grew) only marks the path, and ``select`` re-keys a marked path when it reaches the
top (a key that only grew cannot be chosen too late by waiting), dropping superseded
entries as it goes. An I/O of size ``ref`` takes the top. Another size moves each key
by ``(n - ref) / speed_i``, which can reorder paths of different speeds, so the heap is
searched from the top, skipping every subtree whose root's key is more than
``(ref - n) / slowest speed`` above the best key found (nothing below it can win):
exact, and a few entries in practice. The heap is rebuilt, O(n), at each period and
when stale entries pile up, so per-I/O cost is O(log n) and in practice flat.

**Filling to the bandwidth-delay product (``fill=bdp``, opt-in).** Earliest completion
is the right choice for a given load, but with a *fixed*, small number of I/Os
outstanding over paths of very different latency it keeps every I/O on the near path
(an I/O completes there first even behind seven others) and leaves the far path idle:
the near path is saturated, so one more I/O there adds no throughput, while on the idle
far path it would. With ``fill=bdp`` each path also has a window, its
bandwidth-delay product::

    window_i = FILL_GAIN * speed_i * rtt_i

where ``rtt_i`` is the latency of an I/O that met no other completion on the path
during its life (so it queued behind nothing: the path's base latency plus its own
transfer), kept as a lower envelope (a lower sample replaces it, a higher one moves it
by ``age / (RTT_WINDOWS * window + age)``). An I/O goes to the earliest-completing path
*among the paths holding less than their window*; when every path is at or above its
window, the choice is the default one. ``FILL_GAIN`` is above 1 because a path below its
capacity delivers ``in_flight / rtt``, so ``speed * rtt`` is what it holds: the gain
lets its window grow until its speed stops growing, i.e. until it is full. The
bookkeeping lives in :class:`FillShareSelector`, which ``fill=bdp`` builds, so the
default pays nothing for it.

Selector arguments (``name=value``): ``window_ms`` (default 100), ``period_ms``
(default 50), ``probe_ms`` (default 1000), ``probe_share`` (percent of the mean speed
a reinstated path restarts from, 1..100, default 5), ``fill`` (``completion``, the
default, or ``bdp``). No per-path arguments.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from heapq import heapify, heappop, heappush, heapreplace
from typing import Any, cast

from mpath.selectors.base import (
    P,
    PathInfo,
    SelectorArgError,
    TrackedSelector,
    check_arg_count,
    parse_options,
    parse_uint,
)

DEFAULT_PERIOD_MS = 50
DEFAULT_PROBE_MS = 1000
DEFAULT_WINDOW_MS = 100
JUMP = 1.5  # a speed sample this many times above or below the estimate is a change
DEFAULT_PROBE_SHARE_PERCENT = 5
FILLS = ("completion", "bdp")  # the values of the ``fill`` argument, the default first
FILL_GAIN = 1.25  # window = FILL_GAIN * speed * rtt: room to grow while below capacity
RTT_WINDOWS = 10  # a higher unqueued latency moves rtt with a time constant of 10 windows
_STALE = -1  # the stamp of a path with no live heap entry
_SCAN_PATHS = 4  # up to this many paths, an I/O of another size compares them all
_SEARCH_LIMIT = 8  # heap entries an I/O of another size looks at, beyond that


@dataclass(slots=True, eq=False)
class _ShareInfo(PathInfo[P]):
    speed: float = 0.0  # measured bytes/s; 0.0 = not measured yet
    inverse: float = 1.0  # 1 / the speed the choice assumes (measured, else the mean)
    sample_bytes: int = 0  # bytes completed since the last speed sample
    sample_time: float = 0.0  # busy time since the last speed sample
    sampled_at: float = 0.0  # when the last speed sample was taken
    stamp: int = _STALE  # the stamp of the path's live heap entry
    dirty: bool = False  # its load grew since that entry was pushed: the key is low
    busy_since: float = 0.0  # when its in-flight count last rose from 0
    last_finish: float = -math.inf  # when its last I/O ended
    idle_since: float = 0.0  # last time it was seen busy or completed anything
    probe_pending: bool = False
    rtt: float = 0.0  # fill=bdp: latency of an I/O that queued behind nothing (0: none yet)
    rtt_at: float = 0.0  # fill=bdp: when rtt was last sampled
    window: float = 0.0  # fill=bdp: bytes the path can hold before it queues


_Entry = tuple[float, int, _ShareInfo[Any]]


class ShareSelector(TrackedSelector[P, _ShareInfo[P]]):
    """Paths chosen by shares from transfer speeds measured at every completion."""

    name = "share"
    version = "2.2.0"

    def __new__(cls, args: Sequence[str] = (), **kwargs: Any) -> ShareSelector[P]:
        """``fill=bdp`` builds :class:`FillShareSelector` (the default pays nothing for it).

        Only a well-formed ``fill=bdp`` picks the subclass; every argument, that one
        included, is still parsed strictly by ``_configure``.
        """
        target: type[ShareSelector[Any]] = cls
        if cls is ShareSelector and "fill=bdp" in args:
            target = FillShareSelector
        return cast("ShareSelector[P]", super().__new__(target))

    def _configure(self, args: tuple[str, ...]) -> None:
        known = ("period_ms", "probe_ms", "window_ms", "probe_share", "fill")
        options = parse_options(self.name, args, known)
        fill = options.get("fill", FILLS[0])
        if fill not in FILLS:
            raise SelectorArgError(
                f"{self.name} ps: invalid fill {fill!r} (expected {' or '.join(FILLS)})"
            )
        self._fill = fill

        def option(key: str, default: int, high: int | None = None) -> int:
            if key not in options:
                return default
            return parse_uint(self.name, key, options[key], low=1, high=high)

        self._period = option("period_ms", DEFAULT_PERIOD_MS) / 1000
        self._probe_after = option("probe_ms", DEFAULT_PROBE_MS) / 1000
        self._window = option("window_ms", DEFAULT_WINDOW_MS) / 1000
        self._sample_after = self._window / 8
        self._jump_window = self._window / 4
        self._probe_share = option("probe_share", DEFAULT_PROBE_SHARE_PERCENT, 100) / 100
        self._heap: list[_Entry] = []
        self._heap_limit = 64
        self._stamp = 0
        self._probes: deque[_ShareInfo[P]] = deque()
        self._next_period = -math.inf
        self._ref = 0.0  # the I/O size the heap is keyed for: the mean in flight
        self._inverse_max = 1.0  # 1 / the slowest usable path's speed (or above)

    def _new_info(self, path: P, args: Sequence[str]) -> _ShareInfo[P]:
        check_arg_count(self.name, "path", args, 0)
        return _ShareInfo(path, idle_since=self._clock())

    # -- membership ------------------------------------------------------------------

    def _on_add(self, info: _ShareInfo[P]) -> None:
        self._reshare()

    def _on_fail(self, info: _ShareInfo[P]) -> None:
        info.stamp = _STALE
        info.probe_pending = False
        self._reshare()

    def _on_reinstate(self, info: _ShareInfo[P]) -> None:
        known = [other.speed for other in self._valid.values() if other.speed and other is not info]
        info.speed = self._probe_share * sum(known) / len(known) if known else 0.0
        info.idle_since = info.sampled_at = self._clock()
        self._reshare()

    # -- the per-I/O path ------------------------------------------------------------

    def select(self, nbytes: int, avoid: P | None = None) -> P | None:
        chosen = self._select(nbytes)
        if chosen is None or chosen is not avoid or self.valid_count < 2:
            return chosen
        # Rare (an ALUA transition on the best path): the next best path by the same
        # key, computed afresh (heap entries of paths with new I/O are stale).
        others = [info for info in self._valid.values() if info.path is not avoid]
        if not others:
            return None
        best = min(others, key=lambda i: (i.in_flight_bytes + nbytes) * i.inverse)
        return best.path

    def _select(self, nbytes: int) -> P | None:
        now = self._clock()
        if now >= self._next_period:
            self._new_period(now, nbytes)
        probes = self._probes
        while probes:
            info = probes.popleft()
            if info.probe_pending:
                info.probe_pending = False
                return info.path
        heap = self._heap
        while heap:
            entry = heap[0]
            info = entry[2]
            if entry[1] != info.stamp:
                heappop(heap)  # superseded by a newer entry, or the path failed
            elif info.dirty:
                # I/O was started on it since: its key only grew, so put it back
                # with the true key and look again.
                info.dirty = False
                stamp = self._stamp = self._stamp + 1
                info.stamp = stamp
                heapreplace(heap, ((info.in_flight_bytes + self._ref) * info.inverse, stamp, info))
            elif nbytes == self._ref:
                return info.path  # the heap's own order is this I/O's order
            else:
                return self._search(nbytes, info)
        return None

    def _search(self, nbytes: int, top: _ShareInfo[P]) -> P:
        """The path where an I/O of ``nbytes`` completes first, from a clean heap top.

        The heap orders paths by their completion time for an I/O of the reference
        size; for ``nbytes`` each key moves by ``(nbytes - ref) / speed_i``, which can
        reorder paths of different speeds. With few paths they are all compared (the
        heap, holding superseded entries too, is bigger than the list of paths).
        Otherwise the heap is searched from the top: a path's key for ``nbytes`` is at
        least its entry's key less ``(ref - nbytes) / slowest speed`` (an entry is never
        above its path's true key: a stale one has a live one below it), and an entry is
        never below its parent, so only the subtrees whose root is within that slack of
        the best key found so far can hold a better path. The search stops after
        ``_SEARCH_LIMIT`` entries (the best found so far then goes: balanced paths all
        have keys within one I/O's time, and any of them is nearly as good).
        """
        best = (top.in_flight_bytes + nbytes) * top.inverse
        chosen = top
        if len(self._valid) <= _SCAN_PATHS:
            for info in self._valid.values():
                key = (info.in_flight_bytes + nbytes) * info.inverse
                if key < best:
                    best = key
                    chosen = info
            return chosen.path
        slack = (self._ref - nbytes) * self._inverse_max if nbytes < self._ref else 0.0
        bound = best + slack
        heap = self._heap
        size = len(heap)
        stack = [1, 2]
        pop = stack.pop
        push = stack.append
        budget = _SEARCH_LIMIT
        while stack and budget:
            index = pop()
            if index >= size:
                continue
            entry = heap[index]
            if entry[0] >= bound:
                continue
            budget -= 1
            info = entry[2]
            if entry[1] == info.stamp:
                key = (info.in_flight_bytes + nbytes) * info.inverse
                if key < best:
                    best = key
                    bound = best + slack
                    chosen = info
            push(2 * index + 2)
            push(2 * index + 1)
        return chosen.path

    def start_io(self, path: P, nbytes: int) -> None:
        info = self._infos[path]
        info.in_flight += 1
        info.in_flight_bytes += nbytes
        if info.in_flight == 1:
            info.busy_since = self._clock()
        # Its key grew: select re-keys its entry when that reaches the top (a key
        # that only grows can wait; pushing here would double the heap traffic).
        info.dirty = True

    def end_io(self, path: P, nbytes: int, started: float) -> None:
        info = self._infos[path]
        info.in_flight -= 1
        held = info.in_flight_bytes - nbytes
        info.in_flight_bytes = held
        now = self._clock()
        # The I/O's serial time: since it started or since the path's previous
        # completion, whichever is later, so queueing on the path is not counted.
        last = info.last_finish
        busy = info.sample_time + now - (started if started > last else last)
        info.last_finish = now
        if busy < self._sample_after and (info.in_flight or busy <= 0.0):
            # Completions come in bursts (several in one network read): gather them
            # until the sample spans enough busy time to be a speed, or the path idles.
            info.sample_bytes += nbytes
            info.sample_time = busy
        else:
            done = info.sample_bytes + nbytes
            info.sample_bytes = 0
            info.sample_time = 0.0
            speed = info.speed
            age = now - info.sampled_at
            info.sampled_at = now
            if speed:
                # Exponential average, time constant ``window``: the older the estimate
                # (an idle path's), the more a new sample counts. A sample off by more
                # than half is a change, not noise: it is followed four times faster.
                sample = done / busy
                window = self._window
                if sample > JUMP * speed or speed > JUMP * sample:
                    window = self._jump_window
                speed += (sample - speed) * age / (window + age)
                info.speed = speed
                inverse = info.inverse = 1.0 / speed
                if inverse > self._inverse_max:  # noqa: PLR1730 - per completion: no call
                    self._inverse_max = inverse
            else:
                info.speed = done / busy
                self._reshare()
        if info.in_flight == 0:
            info.idle_since = now
            if info.removed:
                del self._infos[path]
                return
        if not info.failed:
            info.dirty = False
            stamp = self._stamp = self._stamp + 1
            info.stamp = stamp
            heap = self._heap
            heappush(heap, ((held + self._ref) * info.inverse, stamp, info))
            if len(heap) > self._heap_limit:
                self._rebuild_heap()

    # -- the periodic part -----------------------------------------------------------

    def _new_period(self, now: float, nbytes: int) -> None:
        """Probe long-idle paths, pull down stalled ones, refresh the mean I/O size."""
        for info in self._valid.values():
            if info.in_flight:
                info.idle_since = now
                # Busy and nothing finished for a while (a stalled or crawling path):
                # it cannot be faster than what it holds over the time it has held it.
                # Commands without data (a SYNCHRONIZE CACHE) bound nothing: a speed of
                # 0 would have no inverse.
                waited = now - max(info.busy_since, info.last_finish)
                if waited > 0 and info.speed * waited > info.in_flight_bytes > 0:
                    info.speed = info.in_flight_bytes / waited
                    info.inverse = 1.0 / info.speed
            if not info.in_flight and now - info.idle_since >= self._probe_after:
                if not info.probe_pending:
                    info.probe_pending = True
                    self._probes.append(info)
                info.idle_since = now
        # The mean size of the I/Os in flight (of the one asked for, when none is).
        count = sum(info.in_flight for info in self._valid.values())
        if count:
            self._ref = sum(info.in_flight_bytes for info in self._valid.values()) / count
        elif not self._ref:
            self._ref = float(nbytes)
        self._next_period = now + self._period
        self._reshare()

    def _reshare(self) -> None:
        """Refresh the speeds the choice assumes (unmeasured paths count as the mean)."""
        valid = self._valid.values()
        measured = [info.speed for info in valid if info.speed]
        default = sum(measured) / len(measured) if measured else 1.0
        inverse_max = 0.0
        for info in valid:
            inverse = info.inverse = 1.0 / (info.speed or default)
            inverse_max = max(inverse_max, inverse)
        self._inverse_max = inverse_max
        self._rebuild_heap()

    def _rebuild_heap(self) -> None:
        ref = self._ref
        heap: list[_Entry] = []
        for info in self._valid.values():
            self._stamp += 1
            info.stamp = self._stamp
            info.dirty = False
            heap.append(((info.in_flight_bytes + ref) * info.inverse, self._stamp, info))
        heapify(heap)
        self._heap = heap
        self._heap_limit = 4 * len(heap) + 64

    # -- reporting -------------------------------------------------------------------

    def share(self, path: P) -> float:
        info = self._info(path)
        if info.failed:
            return 0.0
        return (1.0 / info.inverse) / sum(1.0 / other.inverse for other in self._valid.values())

    def speed(self, path: P) -> float:
        """The path's measured transfer speed in bytes/s (0.0 until measured)."""
        return self._info(path).speed

    def _selector_status(self) -> dict[str, Any]:
        return {
            "period_ms": self._period * 1000,
            "probe_ms": self._probe_after * 1000,
            "window_ms": self._window * 1000,
            "fill": self._fill,
        }

    def _path_status(self, info: _ShareInfo[P]) -> dict[str, Any]:
        return {"speed_mbps": info.speed / 1e6}


class FillShareSelector(ShareSelector[P]):
    """``share fill=bdp``: fill every path to its bandwidth-delay product first.

    Built by ``ShareSelector(["fill=bdp", ...])`` (the registry's ``share`` with that
    argument); the default ``share`` runs none of this. The paths below their window
    are kept in ``_below`` (in the order they got there, so ties go the same way every
    run): a path leaves when ``start_io`` takes it to its window and is re-judged when
    its window moves, at its completions, at each period and when it comes back.
    """

    def _configure(self, args: tuple[str, ...]) -> None:
        super()._configure(args)
        self._below: dict[P, _ShareInfo[P]] = {}
        self._rtt_window = RTT_WINDOWS * self._window

    def _select(self, nbytes: int) -> P | None:
        now = self._clock()
        if now >= self._next_period:
            self._new_period(now, nbytes)
        below = self._below
        if not below or self._probes:
            # Every path holds its window (or a probe is due): the default choice.
            return super()._select(nbytes)
        best: _ShareInfo[P] | None = None
        best_key = math.inf
        for info in below.values():
            key = (info.in_flight_bytes + nbytes) * info.inverse
            if key < best_key:
                best_key = key
                best = info
        return None if best is None else best.path

    def start_io(self, path: P, nbytes: int) -> None:
        super().start_io(path, nbytes)
        info = self._infos[path]
        if info.in_flight_bytes >= info.window:
            self._below.pop(path, None)

    def end_io(self, path: P, nbytes: int, started: float) -> None:
        info = self._infos[path]
        last = info.last_finish
        super().end_io(path, nbytes, started)
        if info.removed:
            self._below.pop(path, None)
            return
        now = info.last_finish
        latency = now - started
        if started >= last and latency > 0:
            # Nothing completed on the path while this I/O was in flight, so it queued
            # behind nothing: its latency is the path's base latency plus its transfer.
            if not info.rtt or latency < info.rtt:
                info.rtt = latency
            else:
                age = now - info.rtt_at
                info.rtt += (latency - info.rtt) * age / (self._rtt_window + age)
            info.rtt_at = now
        self._judge(info)

    def _judge(self, info: _ShareInfo[P]) -> None:
        """Recompute the path's window and whether it is below it."""
        info.window = FILL_GAIN * info.speed * info.rtt
        if not info.failed and info.in_flight_bytes < info.window:
            self._below[info.path] = info
        else:
            self._below.pop(info.path, None)

    def _new_period(self, now: float, nbytes: int) -> None:
        super()._new_period(now, nbytes)
        for info in self._valid.values():
            self._judge(info)  # a stalled path's speed may have been capped

    def _on_fail(self, info: _ShareInfo[P]) -> None:
        super()._on_fail(info)
        self._below.pop(info.path, None)

    def _on_reinstate(self, info: _ShareInfo[P]) -> None:
        super()._on_reinstate(info)
        self._judge(info)

    def _path_status(self, info: _ShareInfo[P]) -> dict[str, Any]:
        return {
            **super()._path_status(info),
            "rtt_ms": info.rtt * 1000,
            "window_bytes": round(info.window),
        }
