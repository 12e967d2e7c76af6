"""CheckerMonitor: path checkers as the filter layer's failure and recovery reporters.

The device (:class:`~mpath.filter.device.MultipathDevice`) fails a path by itself the
moment a command shows it broken; this monitor covers the rest (docs/checkers.md):

* **Idle paths.** Every path is checked on an interval that backs off while it is
  stable (:mod:`mpath.checkers.schedule`). An active path found ``down``/``timeout``
  is failed through :meth:`~mpath.filter.device.MultipathDevice.fail` (path-fail:
  reroute now).
* **Recovery.** A failed path is logged in afresh and its identity checked
  (:meth:`~mpath.filter.device.MultipathDevice.verify_identity`), then checked; when
  up it is reinstated (path-up) unless flap damping holds it (it failed too often
  lately: state ``shaky``, :mod:`mpath.checkers.damping`) or the failback policy holds
  it (its priority group is better than the active one and the policy says not yet,
  :mod:`mpath.checkers.failback`). A device failure (:meth:`path_failed`) schedules a
  check of that path at once.
* **Failover always wins.** When the device has no active path left, a held path that
  is up is reinstated at once, whatever damping or failback say.

**Which session a check uses.** An active path is checked through the device's own
session (multipathd checks through the same device node): the check then sees exactly
what the data sees, costs no extra login, and a dead session is noticed by the check.
A failed path has no session; its check logs in afresh, and a held path keeps that
session (not carrying I/O) until it is reinstated or fails again. A check that timed
out leaves its session unusable: an active path's is torn down by failing the path, a
held path's is closed. While an active path has commands in flight, a check timeout is
not taken as a failure: the check may just be queued behind data, and the device's
stall watchdog already judges busy paths by their progress.

**A slow LUN is not a dead path** (the watchdog's rule, :mod:`mpath.filter.stall`). A
check of an idle path that times out fails it only when another path answered
meanwhile: a command of the device's I/O, or a check (one through each other logged-in
path is sent at once to ask). When no path answers, the LUN is slow, not this path: it is
logged once, the path is checked again at the base interval, and it is failed only when
the silence outlasts the device's ``lun_stall_timeout`` (with a single path there is
nothing to compare, so that is its bound too).

**Scale.** One scheduler task serves all paths: a due-time heap, one timer for the
earliest due check, and one short task per check. Checks due within a few
milliseconds of each other are started together.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Final, Protocol

from mpath.checkers import create_checker
from mpath.checkers.base import CheckResult
from mpath.checkers.damping import Damping
from mpath.checkers.failback import Failback
from mpath.checkers.schedule import DueQueue, next_interval
from mpath.checkers.settings import CheckerSettings
from mpath.filter.monitor import MonitoredDevice
from mpath.filter.path import Path, PathState
from mpath.scsi.states import CheckerMsg, CheckerState
from mpath.settings import DeviceSettings

log = logging.getLogger(__name__)

Clock = Callable[[], float]

#: Checks due this close together start in one scheduler wake-up (seconds).
BATCH_SLACK: Final = 0.005
#: Monitor events kept for inspection (oldest dropped first).
EVENT_LOG_SIZE: Final = 1000
#: Checker states that fail an active path.
_FAILING: Final = frozenset({CheckerState.DOWN, CheckerState.TIMEOUT, CheckerState.REMOVED})
#: Checker states with no verdict on the path itself (wrong checker for it).
_NO_VERDICT: Final = frozenset({CheckerState.WILD, CheckerState.UNCHECKED})
#: Checker states of a group member that stop followover failback (multipathd: not
#: down and not shaky).
_NOT_BACK: Final = frozenset(
    {
        CheckerState.DOWN,
        CheckerState.TIMEOUT,
        CheckerState.SHAKY,
        CheckerState.REMOVED,
        CheckerState.UNCHECKED,
    }
)


class DeviceView(Protocol):
    """What the checker monitor uses of a device: the part of
    :class:`~mpath.filter.monitor.MonitoredDevice` it needs (a
    :class:`MultipathDevice` provides it)."""

    @property
    def settings(self) -> DeviceSettings: ...

    @property
    def path_objects(self) -> list[Path]: ...

    async def fail(self, path: Path, reason: str) -> None: ...

    async def verify_identity(self, path: Path) -> str | None: ...

    def reinstate(self, path: Path) -> None: ...

    def selector_status(self) -> dict[str, Any]: ...


class Hold(StrEnum):
    """Why a path that is up is not reinstated yet."""

    SHAKY = "shaky"  # flap damping: not up long enough since its last failures
    FAILBACK = "failback"  # its group is better than the active one; policy says wait


class EventKind(StrEnum):
    FAILED = "failed"  # the device failed the path (I/O error, stall, or on our word)
    DOWN = "down"  # a check found an active path down and asked the device to fail it
    REINSTATED = "reinstated"  # path-up: back in use
    HELD_SHAKY = "held-shaky"  # up, held out by flap damping
    HELD_FAILBACK = "held-failback"  # up, held out by the failback policy
    FAILBACK = "failback"  # reinstated: its better group takes the I/O back
    RESCUED = "rescued"  # held path reinstated because no other path was usable


#: The level each event is logged at; None: not logged here, because the device logs
#: the same change ("path ... failed: reason" at warning, "path ... reinstated" at
#: info). Why a path came back (failback, rescue) is debug detail beside that line.
EVENT_LOG_LEVELS: Final[dict[EventKind, int | None]] = {
    EventKind.FAILED: None,
    EventKind.DOWN: None,
    EventKind.REINSTATED: None,
    EventKind.HELD_SHAKY: logging.INFO,
    EventKind.HELD_FAILBACK: logging.INFO,
    EventKind.FAILBACK: logging.DEBUG,
    EventKind.RESCUED: logging.DEBUG,
}


def selector_plan(status: dict[str, Any]) -> str:
    """The selector's decision in one line: its policy and each path's state and share
    of the I/O (whole percent, so a debug log shows changes of plan, not noise)."""
    parts = []
    for entry in status.get("paths", ()):
        if not isinstance(entry, dict):
            continue
        share = float(entry.get("share", 0.0))
        prio = f" prio {entry['priority']}" if "priority" in entry else ""
        parts.append(f"{entry.get('path')} {entry.get('state')}{prio} {share:.0%}")
    return f"{status.get('policy', '?')}: " + ", ".join(parts)


@dataclass(frozen=True, slots=True)
class MonitorEvent:
    """One notable thing the monitor saw or did, with the monitor clock's time."""

    at: float
    url: str
    kind: EventKind
    detail: str = ""


@dataclass(slots=True, eq=False)
class PathWatch:
    """The monitor's record of one path."""

    path: Path
    damping: Damping
    interval: float
    state: CheckerState = CheckerState.UNCHECKED
    result: CheckResult | None = None
    usable: bool = True
    hold: Hold | None = None
    checking: bool = False
    recheck: bool = False
    checks: int = 0
    last_check: float | None = field(default=None)
    #: When the path was last seen failing (device failure or a check finding it down).
    last_down: float | None = None
    #: The current shaky period was announced (logged once, not at every re-check).
    shaky_announced: bool = False
    #: When the last check through this path got an answer from the LUN.
    answered: float | None = None
    #: When this path's checks began timing out while no other path answered either
    #: (the LUN stalled, not the path); None while its checks are answered.
    silent_since: float | None = None

    @property
    def priority(self) -> int:
        """The path's priority group, as the device assigned it (:attr:`Path.priority`)."""
        return self.path.priority

    def describe(self, now: float) -> dict[str, Any]:
        result = self.result
        return {
            "url": self.path.url,
            "checker": self.state.value,
            "message": result.message if result else "",
            "latency_ms": round(result.latency_ms, 3) if result else None,
            "held": self.hold.value if self.hold else None,
            "failures": self.damping.failures(now),
            "priority": self.priority,
            "interval": self.interval,
            "checks": self.checks,
        }


class CheckerMonitor:
    """A :class:`~mpath.filter.monitor.PathMonitor` that checks, damps and fails back.

    Give a device one with ``MultipathDevice.open(urls, settings,
    monitor=CheckerMonitor.factory(CheckerSettings(...)))``.
    """

    def __init__(
        self,
        device: DeviceView,
        settings: CheckerSettings | None = None,
        *,
        clock: Clock = time.monotonic,
    ) -> None:
        self._device = device
        self.settings = settings = settings or CheckerSettings()
        self.checker = create_checker(settings.checker, settings.timeout)
        self._clock = clock
        self.failback_state = Failback(settings.failback_policy)
        self._watches: dict[Path, PathWatch] = {}
        for path in device.path_objects:
            watch = PathWatch(path, Damping(settings.damping), settings.polling_interval)
            watch.usable = path.state is PathState.ACTIVE
            self._watches[path] = watch
        self._queue: DueQueue[PathWatch] = DueQueue()
        self._tasks: set[asyncio.Task[None]] = set()
        self._runner: asyncio.Task[None] | None = None
        self._wakeup: asyncio.Future[None] | None = None
        self._changed = asyncio.Event()
        self._waiters = 0
        self._closed = False
        self.events: deque[MonitorEvent] = deque(maxlen=EVENT_LOG_SIZE)
        self._last_plan = ""
        self._lun_silent = False  # a check timed out with every path silent (logged)

    @classmethod
    def factory(
        cls, settings: CheckerSettings | None = None, *, clock: Clock = time.monotonic
    ) -> Callable[[MonitoredDevice], CheckerMonitor]:
        """A monitor factory for ``MultipathDevice.open(..., monitor=...)``."""
        return lambda device: cls(device, settings, clock=clock)

    # -- the PathMonitor protocol --------------------------------------------------------

    def start(self) -> None:
        """Start checking (first checks spread out)."""
        now = self._clock()
        count = len(self._watches)
        spread = self.settings.polling_interval
        for index, watch in enumerate(self._watches.values()):
            if watch.recheck or watch.path.state is not PathState.ACTIVE:
                watch.recheck = False
                self._queue.schedule(watch, now)
            else:
                self._queue.schedule(watch, now + spread * (index + 1) / count)
        self._runner = asyncio.ensure_future(self._run())

    def path_failed(self, path: Path) -> None:
        """The device failed ``path``: count it for damping and check the path at once."""
        watch = self._watches.get(path)
        if watch is None or self._closed:
            return
        now = self._clock()
        if watch.usable:
            watch.usable = False
            if watch.damping.record_failure(now):
                log.warning("path %s is shaky: failed too often", path.url)
        watch.damping.record_down()
        watch.hold = None
        watch.state = CheckerState.DOWN
        watch.last_down = now
        watch.interval = self.settings.polling_interval
        self.failback_state.path_failed()
        self._log(EventKind.FAILED, watch, path.last_failure)
        if watch.checking or self._runner is None:
            watch.recheck = True
        else:
            self._queue.schedule(watch, now)
            self._wake()
        if self._runner is not None and not self._any_active():
            asyncio.get_running_loop().call_soon(self._rescue)
        self._notify()

    async def close(self) -> None:
        """Stop the scheduler and every check in progress."""
        self._closed = True
        tasks = [*self._tasks, *([self._runner] if self._runner else [])]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # -- what others may ask ---------------------------------------------------------------

    def failback(self) -> None:
        """Manual failback: let better groups that are up take the I/O back now."""
        self.failback_state.request()
        now = self._clock()
        for watch in self._watches.values():
            if watch.hold is Hold.FAILBACK:
                self._queue.schedule(watch, now)
        self._wake()

    def checker_state(self, path: Path) -> CheckerState:
        """What the monitor last concluded about ``path`` (``shaky`` while damped)."""
        return self._watches[path].state

    def watch(self, path: Path) -> PathWatch:
        return self._watches[path]

    def describe(self) -> list[dict[str, Any]]:
        """Each path's checker state, message, hold and interval (JSON-able)."""
        now = self._clock()
        return [watch.describe(now) for watch in self._watches.values()]

    async def wait_until(self, predicate: Callable[[], bool]) -> None:
        """Return once ``predicate()`` holds, re-testing after every check and event.

        Unbounded by itself: callers bound it with ``asyncio.wait_for``.
        """
        while not predicate():
            self._waiters += 1
            try:
                await self._changed.wait()
            finally:
                self._waiters -= 1

    # -- the scheduler ----------------------------------------------------------------------

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        queue = self._queue
        while True:
            now = self._clock()
            for watch in queue.pop_due(now + BATCH_SLACK):
                watch.checking = True
                task = loop.create_task(self._check(watch))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            wakeup = self._wakeup = loop.create_future()
            due = queue.next_due()
            timer = None if due is None else loop.call_later(due - now, _resolve, wakeup)
            try:
                await wakeup
            finally:
                if timer is not None:
                    timer.cancel()

    def _wake(self) -> None:
        wakeup = self._wakeup
        if wakeup is not None and not wakeup.done():
            wakeup.set_result(None)

    def _reschedule(self, watch: PathWatch, settled: bool) -> None:
        settings = self.settings
        now = self._clock()
        watch.interval = next_interval(
            watch.interval,
            base=settings.polling_interval,
            maximum=settings.max_polling_interval,
            settled=settled,
        )
        due = now + watch.interval
        if watch.recheck:
            watch.recheck = False
            due = now
        elif watch.hold is Hold.SHAKY:
            release = watch.damping.release_at()
            if release is not None:
                due = min(due, release)
        elif watch.hold is Hold.FAILBACK and self.failback_state.due is not None:
            due = min(due, self.failback_state.due)
        self._queue.schedule(watch, due)
        self._wake()

    # -- one check ------------------------------------------------------------------------

    async def _check(self, watch: PathWatch) -> None:
        before = watch.state
        try:
            if watch.path.state is PathState.ACTIVE:
                await self._check_active(watch)
            else:
                await self._check_failed(watch)
        except Exception:
            log.exception("check of %s failed unexpectedly", watch.path.url)
        finally:
            watch.checking = False
            watch.checks += 1
            watch.last_check = self._clock()
            settled = (
                watch.state is before
                and watch.state.usable
                and watch.hold is None
                and watch.path.state is PathState.ACTIVE
            )
            if not self._closed:
                self._reschedule(watch, settled)
                self._log_check(watch)
            self._notify()

    async def _check_active(self, watch: PathWatch) -> None:
        path = watch.path
        started = self._clock()
        result = await self.checker.check(path.transport)
        if path.state is not PathState.ACTIVE:
            return  # the device failed it meanwhile; path_failed took over
        watch.result = result
        if _answered(result):
            watch.answered = self._clock()
            watch.silent_since = None
            self._lun_silent = False
        if result.state in _FAILING:
            if result.state is CheckerState.TIMEOUT:
                if path.in_flight:
                    return  # queued behind data: the device's stall watchdog judges it
                if not await self._lags(watch, started):
                    return  # the LUN is slow, not this path
            watch.silent_since = None
            watch.state = result.state
            self._log(EventKind.DOWN, watch, result.message)
            await self._device.fail(path, f"checker {self.checker.name}: {result.message}")
        elif result.state not in _NO_VERDICT:
            watch.state = result.state
            if result.state.usable:
                watch.damping.record_up(self._clock())

    async def _lags(self, watch: PathWatch, started: float) -> bool:
        """A check of ``watch``'s idle path timed out: is the path to blame, or the LUN?

        The path lags when another path answered since its silence began (device I/O,
        or a check), asking each other logged-in path once now when none did. When none
        answers, the LUN is slow: the path is kept until the silence outlasts the
        device's ``lun_stall_timeout``.
        """
        path = watch.path
        since = started if watch.silent_since is None else watch.silent_since
        if path.answered > started:
            return False  # its own I/O was answered meanwhile: alive, the check was queued
        others = [w for w in self._watches.values() if w is not watch]
        if any(
            w.path.answered > since or (w.answered is not None and w.answered > since)
            for w in others
        ):
            return True
        # Paths held out of use (damping, failback) keep a session: they can answer too.
        reachable = [w for w in others if w.path.transport.connected and not w.checking]
        if reachable:
            checks = (self.checker.check(w.path.transport) for w in reachable)
            results = await asyncio.gather(*checks)
            if any(map(_answered, results)):
                return True
        now = self._clock()
        if watch.silent_since is None:
            watch.silent_since = started
        if not self._lun_silent:  # once until some check is answered again
            self._lun_silent = True
            log.info(
                "path %s: check timed out, and no other path answers either: the LUN is "
                "slow, not this path (failed only after %g s of it)",
                path.url, self._device.settings.lun_stall_timeout,
            )  # fmt: skip
        return now - watch.silent_since > self._device.settings.lun_stall_timeout

    async def _check_failed(self, watch: PathWatch) -> None:
        path = watch.path
        verified = False
        if not path.transport.connected:
            started = time.perf_counter()
            reason = await self._login(path)
            if reason is not None:
                latency = (time.perf_counter() - started) * 1000.0
                self._found_down(
                    watch, CheckResult(CheckerState.DOWN, CheckerMsg.DOWN, latency, reason)
                )
                return
            verified = True
        result = await self.checker.check(path.transport)
        if result.state in _NO_VERDICT and path.transport.connected:
            # This checker cannot judge the path; the login and identity check did (now,
            # or when this held session was opened, and the session is still up).
            detail = "logged in, identity verified" if verified else "session still logged in"
            result = CheckResult(CheckerState.UP, CheckerMsg.UP, result.latency_ms, detail)
        if _answered(result):
            watch.answered = self._clock()
            self._lun_silent = False
        if path.state is PathState.ACTIVE:
            return
        if result.state.usable:
            watch.result = result
            watch.state = result.state
            self._found_up(watch)
        elif result.state is CheckerState.PENDING:
            watch.result = result
            watch.state = result.state
        else:
            self._found_down(watch, result)
            with contextlib.suppress(Exception):
                await path.transport.close()  # the next check logs in afresh

    async def _login(self, path: Path) -> str | None:
        """Log a failed path in afresh and check its identity, within login_timeout."""
        limit = self.settings.login_timeout
        try:
            async with asyncio.timeout(limit):
                return await self._device.verify_identity(path)
        except TimeoutError:
            with contextlib.suppress(Exception):
                await path.transport.close()
            return f"login and identity check took over {limit:g} s"

    # -- decisions ----------------------------------------------------------------------------

    def _found_down(self, watch: PathWatch, result: CheckResult) -> None:
        watch.result = result
        watch.state = result.state
        watch.hold = None
        watch.last_down = self._clock()
        if watch.usable:  # was up (held) until now: that is a failure too
            watch.usable = False
            watch.damping.record_failure(self._clock())
        watch.damping.record_down()

    def _found_up(self, watch: PathWatch) -> None:
        now = self._clock()
        # The scheduler starts checks up to BATCH_SLACK before they are due, so a check
        # run for a hold's release (damping, deferred failback) may come that early.
        # Judging it by ``now`` would find the hold still on, schedule the check for
        # the release time again - already due - and spin until the clock catches up.
        on_time = now + BATCH_SLACK
        watch.usable = True
        watch.damping.record_up(now)
        if not watch.damping.may_reinstate(on_time):
            if not self._any_active():
                watch.damping.release()
                self._reinstate(watch, EventKind.RESCUED, "no other usable path")
                return
            if not watch.shaky_announced:
                watch.shaky_announced = True
                failures = watch.damping.failures(now)
                self._log(EventKind.HELD_SHAKY, watch, f"{failures} failures lately")
            watch.hold = Hold.SHAKY
            watch.state = CheckerState.SHAKY
            return
        active = self._active_priority()
        if active is None or watch.priority <= active:
            self._reinstate(watch, EventKind.REINSTATED)
            return
        new_up = watch.hold is not Hold.FAILBACK
        first_in_group = not any(
            other is not watch and other.priority == watch.priority and other.state not in _NOT_BACK
            for other in self._watches.values()
        )
        if self.failback_state.decide(on_time, new_up=new_up, first_in_group=first_in_group):
            self._fail_back(watch)
        elif watch.hold is not Hold.FAILBACK:
            watch.hold = Hold.FAILBACK
            self._log(EventKind.HELD_FAILBACK, watch, f"failback {self.failback_state.policy}")

    def _fail_back(self, trigger: PathWatch) -> None:
        """Reinstate ``trigger`` and every other path held for failback that is up."""
        self.failback_state.done()
        for watch in self._watches.values():
            if watch is trigger or (watch.hold is Hold.FAILBACK and watch.path.transport.connected):
                self._reinstate(watch, EventKind.FAILBACK, f"priority {watch.priority}")

    def _rescue(self) -> None:
        """No path is active: reinstate held paths that are up, failback-held ones first."""
        if self._closed or self._any_active():
            return
        for hold in (Hold.FAILBACK, Hold.SHAKY):
            held = [
                w
                for w in self._watches.values()
                if w.hold is hold and w.path.transport.connected
                and w.path.state is not PathState.ACTIVE
            ]  # fmt: skip
            for watch in held:
                watch.damping.release()
                self._reinstate(watch, EventKind.RESCUED, "no other usable path")
            if held:
                self.failback_state.done()
                return

    def _reinstate(self, watch: PathWatch, kind: EventKind, detail: str = "") -> None:
        watch.hold = None
        watch.shaky_announced = False
        watch.usable = True
        if watch.state is CheckerState.SHAKY:
            watch.state = watch.result.state if watch.result else CheckerState.UP
        self._device.reinstate(watch.path)
        self._log(kind, watch, detail)

    # -- helpers -------------------------------------------------------------------------------

    def _any_active(self) -> bool:
        return any(path.state is PathState.ACTIVE for path in self._watches)

    def _active_priority(self) -> int | None:
        """The priority group carrying I/O: the one an administrator switched to
        (``switchgroup``) while that holds, else the best one with an active path."""
        switched = self._device.selector_status().get("switched")
        if isinstance(switched, int):
            return switched
        active = [w.priority for w in self._watches.values() if w.path.state is PathState.ACTIVE]
        return max(active, default=None)

    def _log(self, kind: EventKind, watch: PathWatch, detail: str = "") -> None:
        """Record ``kind`` and log it at its level (:data:`EVENT_LOG_LEVELS`).

        A path's failure and its return to use are logged by the device, which makes
        them (one line each, with the reason); the monitor logs only what the device
        cannot know: paths held back, and (debug) why a path was failed or reinstated.
        """
        event = MonitorEvent(self._clock(), watch.path.url, kind, detail)
        self.events.append(event)
        level = EVENT_LOG_LEVELS[kind]
        if level is not None:
            log.log(
                level, "path %s: %s%s", watch.path.url, kind.value, f" ({detail})" if detail else ""
            )

    def _log_check(self, watch: PathWatch) -> None:
        """Debug: every check's verdict, and the selector's plan when it changed."""
        if not log.isEnabledFor(logging.DEBUG):
            return
        result = watch.result
        if result is not None:
            log.debug(
                "path %s: check %s: %s in %.1f ms%s",
                watch.path.url,
                self.checker.name,
                result.state.value,
                result.latency_ms,
                f" ({result.message})" if result.message else "",
            )
        plan = selector_plan(self._device.selector_status())
        if plan != self._last_plan:
            self._last_plan = plan
            log.debug("selector %s", plan)

    def _notify(self) -> None:
        if self._waiters:
            changed, self._changed = self._changed, asyncio.Event()
            changed.set()


def _answered(result: CheckResult) -> bool:
    """The check got an answer from the LUN (not a timeout, not a lost session)."""
    return result.state.usable or result.state is CheckerState.PENDING


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
