"""MultipathDevice: reads, writes, flushes and raw commands over several paths.

For every command it asks the selector for a path, runs the command on that path's
transport, and decides from the outcome (through the sense table in
:mod:`mpath.scsi.classify`) whether to return, retry on the same path, or fail the
path over. A failed path's session is torn down *before* its commands are reissued
elsewhere. A write that was in flight on it (its outcome unknown: it may still be
waiting in the network) is reissued only once the path is **fenced**: the target has
ended that path's session, so nothing it held can execute later and overwrite newer
data (see :meth:`MultipathDevice._fence`). Total commands in flight never exceed the
LUN's cap. When no path is left, I/O waits at most ``no_path_retry`` seconds for one to
come back, then fails with a clear error.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
import time
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from mpath.errors import (
    DeviceError,
    FenceTimeoutError,
    IdentityMismatchError,
    NoPathError,
    TargetIOError,
    UsageError,
)
from mpath.filter import alua
from mpath.filter.monitor import MonitorFactory, PathMonitor, ReconnectMonitor
from mpath.filter.path import Path, PathState
from mpath.filter.queueing import NoPathMeter, NoPathWait
from mpath.filter.reservation import ReservationError, Reservations
from mpath.filter.slots import CommandSlots
from mpath.filter.stall import Network, PathView, StallJudge
from mpath.scsi import cdb
from mpath.scsi.alua import parse_target_port_groups, state_name
from mpath.scsi.capacity import Capacity
from mpath.scsi.classify import Disposition, Recheck, classify, explain
from mpath.scsi.errors import ScsiError
from mpath.scsi.probe import LunInfo, probe_lun, read_capacity
from mpath.selectors import create_selector
from mpath.selectors.base import PathSelector
from mpath.selectors.groups import PriorityGroups
from mpath.settings import DEFAULT_MAX_COMMANDS, DeviceSettings
from mpath.transports.base import (
    Fenceable,
    FenceError,
    FenceUnavailableError,
    LinkAware,
    PathDisconnectedError,
    ScsiResult,
    ScsiStatus,
    Transport,
    TransportError,
)

log = logging.getLogger(__name__)

Clock = Callable[[], float]
T = TypeVar("T")
TransportFactory = Callable[[str], Transport]
#: How often the stall watchdog looks at the paths (seconds).
WATCHDOG_TICK = 0.05
#: Retransmission timeouts in a row, without an acknowledgement, after which a silent
#: path's network counts as down (TCP's first two take about 0.6 s on a LAN).
LINK_DOWN_TIMEOUTS = 2
#: A silent path is pinged again this often (seconds) while it stays silent, so the
#: network's word stays fresh; an acknowledged ping counts for twice as long.
LINK_PING_INTERVAL = 1.0
#: Pause before retrying a command the target answered BUSY or TASK SET FULL.
BUSY_BACKOFF = 0.01
#: Pause (times the attempt number) before reissuing a command that met an ALUA
#: state transition; five attempts span 1.5 s, then the path counts as failed.
TRANSITION_BACKOFF = 0.1
#: Longest wait between two tries to fence a failed path (a path coming back or a
#: working path appearing wakes the fence at once).
FENCE_RETRY_INTERVAL = 0.25
#: Bound on one fencing attempt (one login through one portal).
FENCE_ATTEMPT_TIMEOUT = 2.0
#: asyncio may fire a timer up to its clock resolution early: a wait with less than
#: this left counts as over (else it would be re-armed for ~0 s, again and again).
CLOCK_SLACK = 1e-6
#: How often REPORT TARGET PORT GROUPS is read while a port is transitioning (the
#: kernel's ALUA handler re-reads every 2 s; a transition often settles in well under).
ALUA_TRANSITION_POLL = 0.2
#: Bound on one REPORT TARGET PORT GROUPS through one path.
ALUA_RTPG_TIMEOUT = 2.0
#: Tries of one REPORT TARGET PORT GROUPS that meets a unit attention (which the
#: state change itself queues on every session of the group).
ALUA_RTPG_ATTEMPTS = 3
#: How often one command may be sent elsewhere because its path's port answered with
#: an ALUA state; bounds a target whose sense and RTPG answers disagree.
ALUA_REDIRECTS = 32
#: Bound on one READ CAPACITY through one path when the capacity is re-read.
CAPACITY_READ_TIMEOUT = 5.0


@dataclass(frozen=True, slots=True)
class CapacityChange:
    """What :meth:`MultipathDevice.refresh_capacity` found: the size before and now,
    and what each path that answered reported (paths not in use are not asked)."""

    old_bytes: int
    new_bytes: int
    reports: dict[str, int]

    @property
    def grown(self) -> bool:
        return self.new_bytes > self.old_bytes


@dataclass(frozen=True, slots=True)
class _Lost:
    """A command's path failed under it. ``epoch`` is the path's failure count then;
    ``unknown`` is True when the command may have reached the target."""

    epoch: int
    unknown: bool


@dataclass(frozen=True, slots=True)
class _Direct(Generic[T]):
    """One command of a direct entry (:meth:`MultipathDevice.start_read`,
    ``start_write``): what to send, and ``result_of``, which turns the GOOD answer into
    what the entry gives (raising :class:`DeviceError` when it cannot)."""

    command: bytes
    nbytes: int
    operation: str
    result_of: Callable[[ScsiResult], T]
    data_out: memoryview | None = None
    data_in_length: int = 0
    mutating: bool = False


@dataclass(frozen=True, slots=True)
class _Started:
    """A command a direct entry sent once, and what came of it (see ``first`` in
    :meth:`MultipathDevice._command`)."""

    path: Path
    started: float
    outcome: ScsiResult | TransportError


@dataclass(slots=True)
class DeviceStats:
    """Counters of one device since it was opened.

    ``no_path`` counts the waits with no usable path (``queueing_seconds``) and the
    times the device began failing I/O for want of one (``fail_io``), on the device's
    clock (:mod:`mpath.filter.queueing`).
    """

    ios: int = 0
    bytes_read: int = 0
    bytes_written: int = 0
    errors: int = 0
    failovers: int = 0
    retries: int = 0
    fences: int = 0
    #: Stalls of every path at once blamed on the LUN (no path failed for them).
    lun_stalls: int = 0
    #: Writes of failed paths reissued without a fence, because none could exist
    #: (``unfenceable_writes = reissue``).
    unfenced_reissues: int = 0
    no_path: NoPathMeter = field(default_factory=NoPathMeter)

    def describe(self) -> dict[str, int | float]:
        return {
            "ios": self.ios,
            "bytes_read": self.bytes_read,
            "bytes_written": self.bytes_written,
            "errors": self.errors,
            "failovers": self.failovers,
            "retries": self.retries,
            "fences": self.fences,
            "lun_stalls": self.lun_stalls,
            "unfenced_reissues": self.unfenced_reissues,
            "queueing_seconds": round(self.no_path.seconds(), 3),
            "fail_io": self.no_path.fail_io,
        }


def _default_transport(url: str) -> Transport:
    from mpath.transports import open_transport

    return open_transport(url)


class MultipathDevice:
    """One LUN reached over several paths. Create it with :meth:`open`."""

    def __init__(
        self,
        transports: Sequence[Transport],
        settings: DeviceSettings | None = None,
        *,
        clock: Clock = time.monotonic,
        monitor: MonitorFactory | None = None,
    ) -> None:
        if not transports:
            raise UsageError("a multipath device needs at least one path")
        self.settings = settings or DeviceSettings()
        self._clock = clock
        self._paths = [Path(i + 1, t) for i, t in enumerate(transports)]
        self.stats = DeviceStats(no_path=NoPathMeter(clock))
        self.lun: LunInfo | None = None
        self.max_commands = self.settings.max_commands or DEFAULT_MAX_COMMANDS
        priorities = self.settings.priorities
        if priorities is not None:
            if len(priorities) != len(self._paths):
                raise UsageError(f"{len(priorities)} priorities given for {len(self._paths)} paths")
            for path, priority in zip(self._paths, priorities, strict=True):
                path.priority = priority
        path_args = self.settings.path_args
        if path_args is not None:
            if len(path_args) != len(self._paths):
                raise UsageError(
                    f"per-path arguments given for {len(path_args)} paths, "
                    f"the device has {len(self._paths)}"
                )
            for path, args in zip(self._paths, path_args, strict=True):
                path.selector_args = args
        self._selector: PathSelector[Path] = self._new_selector()
        self._slots = CommandSlots(self.max_commands)
        self._paths_changed = asyncio.Event()
        self._completed = asyncio.Event()
        self._completion_waiters = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._monitor: PathMonitor = (monitor or ReconnectMonitor)(self)
        self._closed = False
        #: The loop the device runs on, kept for the direct entries: asking asyncio
        #: for it costs a getpid() system call each time on Python 3.11.
        self._loop: asyncio.AbstractEventLoop | None = None
        self._last_failure = ""
        #: Per path: the failure epoch up to which it is fenced, and the running fence
        #: (epoch, task).
        self._fenced: dict[Path, int] = {}
        self._fence_tasks: dict[Path, tuple[int, asyncio.Task[None]]] = {}
        self._fences_done: dict[Path, int] = {}
        #: Why the last fence of a path failed (for ``mpath show``), until one works.
        self._fence_failure: dict[Path, str] = {}
        #: Persistent-reservation fencing, when a reservation_key is configured.
        key = self.settings.reservation_key
        self._reservations = Reservations(key) if key is not None else None
        #: The LU reports ALUA states; paths of worse states are kept out of the
        #: selector (``_alua_held``) while their session stays up.
        self.alua = False
        self._alua_held: set[Path] = set()
        self._alua_wake = asyncio.Event()
        self._capacity_lock = asyncio.Lock()
        self._capacity_task: asyncio.Task[None] | None = None
        #: The stall watchdog's judgement: a stall of one path, or of the whole LUN.
        self.stall_judge = StallJudge(
            floor=self.settings.io_timeout_max,
            ceiling=self.settings.lun_stall_timeout,
            clock=clock,
            name=f"device of {self._paths[0].url}",
        )

    # -- opening -----------------------------------------------------------------------

    @classmethod
    async def open(
        cls,
        paths: Sequence[str | Transport],
        settings: DeviceSettings | None = None,
        *,
        transport_factory: TransportFactory = _default_transport,
        clock: Clock = time.monotonic,
        monitor: MonitorFactory | None = None,
        login_failures: Mapping[Transport, str] | None = None,
    ) -> MultipathDevice:
        """Log in on every path, check they lead to one LUN, and start serving.

        Paths that cannot log in start failed (and are retried in the background);
        at least one must work. Paths with different identities are refused with
        :class:`IdentityMismatchError` before any command with data is sent.
        Transports already logged in are used as they are; ``login_failures`` names
        transports whose login was just tried and failed (with the reason): they start
        failed at once instead of waiting out a second login (see
        :func:`mpath.api.open_device`).
        """
        transports = [p if isinstance(p, Transport) else transport_factory(p) for p in paths]
        device = cls(transports, settings, clock=clock, monitor=monitor)
        try:
            await device._start(login_failures or {})
        except BaseException:
            await device.close()
            raise
        return device

    async def _start(self, login_failures: Mapping[Transport, str]) -> None:
        async def login(path: Path) -> None:
            reason = login_failures.get(path.transport)
            if reason is not None:
                raise TransportError(path.url, reason.removeprefix(f"{path.url}: "))
            await path.transport.connect()

        outcomes = await asyncio.gather(*(login(p) for p in self._paths), return_exceptions=True)
        probes: dict[Path, LunInfo] = {}
        failures: dict[Path, str] = {}
        for path, outcome in zip(self._paths, outcomes, strict=True):
            if isinstance(outcome, BaseException):
                if not isinstance(outcome, TransportError):
                    raise outcome
                failures[path] = str(outcome)
                continue
            try:
                probes[path] = await probe_lun(path.transport)
            except TransportError as exc:
                failures[path] = str(exc)
        if not probes:
            reasons = "; ".join(failures.values())
            raise DeviceError(f"no path could be opened: {reasons}")
        first_path, first = next(iter(probes.items()))
        for path, info in probes.items():
            if info.wwid != first.wwid:
                raise IdentityMismatchError(first_path.url, first.wwid, path.url, info.wwid)
        self.lun = first
        await self._prepare_fencing(probes, failures)
        if not probes:
            reasons = "; ".join(failures.values())
            raise DeviceError(f"no path could be opened: {reasons}")
        self.alua = any(info.alua for info in probes.values())
        for path, info in probes.items():
            path.alua_group = info.target_port_group
        self._apply_lun_limits(first)
        for path in self._paths:
            if isinstance(self._selector, PriorityGroups):
                self._selector.add_path(path, path.selector_args, priority=path.priority)
            else:
                self._selector.add_path(path, path.selector_args)
        for path, reason in failures.items():
            self._mark_failed(path, reason)
            await path.transport.close()
            self._start_recovery(path)
        if self.alua:
            await self.refresh_alua()
            self._spawn(self._alua_watch())
        self._spawn(self._watchdog())
        self._monitor.start()

    async def _prepare_fencing(
        self, probes: dict[Path, LunInfo], failures: dict[Path, str]
    ) -> None:
        """Learn what fences will need on every open path; with a ``reservation_key``,
        refuse a LUN another initiator reserved, then register each path (a path that
        cannot register is failed: its writes would be refused)."""
        await asyncio.gather(*(self._prepare_fence(p) for p in probes))
        reservations = self._reservations
        if reservations is None:
            return
        await reservations.check_free(next(iter(probes)))
        for path in list(probes):
            try:
                await reservations.register(path)
            except ReservationError as exc:
                del probes[path]
                failures[path] = str(exc)
        if probes:
            await reservations.sweep(next(iter(probes)))

    async def _end_preempted_sessions(self, reservations: Reservations) -> None:
        """Before the reservation is released: end the old sessions of paths fenced by a
        preempt, by a reinstating login through each path's own portal (bounded)."""
        for path in list(reservations.live_fenced):
            transport = path.transport
            if not isinstance(transport, Fenceable) or not transport.relogin_fences:
                continue
            if not transport.connected:
                with contextlib.suppress(TransportError, TimeoutError):
                    await asyncio.wait_for(transport.fence(None), FENCE_ATTEMPT_TIMEOUT)
                    reservations.live_fenced.discard(path)

    async def _prepare_fence(self, path: Path) -> None:
        transport = path.transport
        if isinstance(transport, Fenceable):
            try:
                async with asyncio.timeout(FENCE_ATTEMPT_TIMEOUT):
                    await transport.prepare_fence()
            except (TransportError, TimeoutError) as exc:
                log.info("path %s: %s", path.url, exc)

    def _apply_lun_limits(self, info: LunInfo) -> None:
        if self.settings.max_commands is None:
            windows = [p.transport.max_commands for p in self._paths]
            known = [w for w in windows if w]
            if known:
                self.max_commands = min(known)
                self._slots = CommandSlots(self.max_commands)
                self._selector = self._new_selector()
        limit = self.settings.max_io_bytes
        if info.max_transfer_bytes:
            limit = min(limit, info.max_transfer_bytes)
        self.max_io_bytes = max(info.block_size, limit - limit % info.block_size)

    def _new_selector(self) -> PathSelector[Path]:
        """The policy's selector, or one per priority group when paths have priorities."""
        if self.settings.priorities is not None:
            return PriorityGroups(
                self.settings.policy_args,
                policy=self.settings.policy,
                clock=self._clock,
                max_commands=self.max_commands,
            )
        return create_selector(
            self.settings.policy,
            self.settings.policy_args,
            clock=self._clock,
            max_commands=self.max_commands,
        )

    # -- the public API --------------------------------------------------------------------

    @property
    def block_size(self) -> int:
        return self._lun().block_size

    @property
    def size_bytes(self) -> int:
        return self._lun().size_bytes

    @property
    def paths(self) -> list[dict[str, Any]]:
        """Each path's state, counters and selector share (JSON-able)."""
        return [{**p.describe(), "share": self._selector.share(p)} for p in self._paths]

    @property
    def monitor(self) -> PathMonitor:
        """Who watches this device's paths (checker state for ``mpath show``)."""
        return self._monitor

    @property
    def policy(self) -> str:
        return self.settings.policy

    def selector_status(self) -> dict[str, Any]:
        return self._selector.status()

    async def read(self, offset: int, length: int) -> bytes:
        """Read ``length`` bytes at ``offset`` (both multiples of the block size)."""
        lba, blocks = self._blocks(offset, length)
        if length <= self.max_io_bytes:  # the common case: one command
            return await self._read_chunk(lba, blocks)
        chunks = self._chunks(lba, blocks)
        parts = await asyncio.gather(*(self._read_chunk(c_lba, n) for c_lba, n in chunks))
        return b"".join(parts)

    def start_read(self, offset: int, length: int) -> asyncio.Future[bytes]:
        """Begin :meth:`read`; the future gives what it returns or raises.

        Why a second entry: a task and its chain of coroutines cost a 4 KiB read more
        CPU than everything else the server does for it (docs/nbd.md, *Where the time
        goes*). A read of one command, with a slot under the LUN's cap and a path the
        selector offers at once, is sent from this call, and the future is resolved
        from the transport's own completion when the target answers GOOD with every
        byte. Anything else (no free slot or path, a failed path, sense data) goes on
        in the one command engine, :meth:`_command`, from where it stands: path
        choice, retries and failover are the same as for :meth:`read`.
        """
        loop = self._loop or self._bind_loop()
        if length > self.max_io_bytes or self._closed:
            return loop.create_task(self.read(offset, length))
        try:
            lba, blocks = self._blocks(offset, length)
        except UsageError as exc:
            return _failed(loop, exc)
        direct = _Direct(
            cdb.read16(lba, blocks),
            length,
            "read",
            functools.partial(self._read_data, lba=lba, nbytes=length),
            data_in_length=length,
        )
        return self._start_direct(direct, lambda: self.read(offset, length))

    def start_write(
        self, offset: int, data: bytes | bytearray | memoryview
    ) -> asyncio.Future[None]:
        """Begin :meth:`write` (without FUA); the future gives what it returns or raises.

        The direct path of :meth:`start_read`, for a write of one command: answered
        GOOD, it is acknowledged from the transport's completion. Anything else goes on
        in :meth:`_command` as a write: a write whose path failed while it was in
        flight is reissued only after that path is fenced.
        """
        loop = self._loop or self._bind_loop()
        view = memoryview(data).cast("B")
        length = len(view)
        if length > self.max_io_bytes or self._closed:
            return loop.create_task(self.write(offset, view))
        try:
            lba, blocks = self._blocks(offset, length)
        except UsageError as exc:
            return _failed(loop, exc)
        direct = _Direct(
            cdb.write16(lba, blocks, fua=False),
            length,
            "write",
            functools.partial(self._wrote, nbytes=length),
            data_out=view,
            mutating=True,
        )
        return self._start_direct(direct, lambda: self.write(offset, view))

    def _bind_loop(self) -> asyncio.AbstractEventLoop:
        self._loop = asyncio.get_running_loop()
        return self._loop

    def _start_direct(
        self, direct: _Direct[T], fallback: Callable[[], Coroutine[Any, Any, T]]
    ) -> asyncio.Future[T]:
        """Send ``direct`` now if a slot and a path are free at once; else ``fallback``
        (the coroutine entry) in a task, which waits for them in the engine."""
        loop = self._loop or self._bind_loop()
        if not self._slots.try_acquire():
            return loop.create_task(fallback())
        nbytes = direct.nbytes
        path = self._selector.select(nbytes, None)
        if path is None:  # every path busy or failed: wait in the engine
            self._slots.release()
            return loop.create_task(fallback())
        done: asyncio.Future[T] = loop.create_future()
        started = self._begin(path, nbytes, slow=False)
        answer = functools.partial(self._direct_answered, done, direct, path, started)
        try:
            if path.submit is not None:
                path.submit(
                    direct.command,
                    data_out=direct.data_out,
                    data_in_length=direct.data_in_length,
                    on_answer=answer,
                )
            else:  # a transport without a direct submit: its execute, in a task
                running = loop.create_task(
                    path.transport.execute(
                        direct.command,
                        data_out=direct.data_out,
                        data_in_length=direct.data_in_length,
                    )
                )
                running.add_done_callback(functools.partial(_answer_from_task, answer))
        except TransportError as exc:  # refused before anything was sent
            answer(exc)
        except BaseException:
            self._finish(path, nbytes, started, ok=False)
            self._slots.release()
            raise
        return done

    def _direct_answered(
        self,
        done: asyncio.Future[T],
        direct: _Direct[T],
        path: Path,
        started: float,
        outcome: ScsiResult | BaseException,
    ) -> None:
        """The outcome of a command :meth:`_start_direct` sent. Called from the
        transport's completion handling: it only accounts and resolves; anything more
        (a retry, failing or fencing the path) goes on in a task."""
        nbytes = direct.nbytes
        if isinstance(outcome, ScsiResult) and outcome.status == ScsiStatus.GOOD:
            self._answered(path, nbytes, direct.data_in_length, started, slow=False)
            self.stats.ios += 1
            self._slots.release()
            if done.cancelled():
                return
            try:
                done.set_result(direct.result_of(outcome))
            except DeviceError as exc:
                done.set_exception(exc)
            return
        if isinstance(outcome, ScsiResult | TransportError):
            first = _Started(path, started, outcome)
            engine = (self._loop or self._bind_loop()).create_task(
                self._continue_direct(direct, first)
            )
            _settle_from(engine, done)
            return
        self._finish(path, nbytes, started, ok=False)
        self._slots.release()
        if done.cancelled():
            return
        if isinstance(outcome, asyncio.CancelledError):
            done.cancel()
        else:
            done.set_exception(outcome)

    async def _continue_direct(self, direct: _Direct[T], first: _Started) -> T:
        """A direct command that was not simply answered GOOD, in the one engine."""
        operation = direct.operation
        result = await self._command(
            direct.command,
            direct.nbytes,
            operation,
            data_out=direct.data_out,
            data_in_length=direct.data_in_length,
            mutating=direct.mutating,
            first=first,
        )
        self._raise_unless_good(result, operation)
        return direct.result_of(result)

    async def write(
        self, offset: int, data: bytes | bytearray | memoryview, *, fua: bool = False
    ) -> None:
        """Write ``data`` at ``offset`` (offset and length multiples of the block size).

        Returns once the target acknowledged every byte; the acknowledgement is never
        given for a write that was lost with a path.
        """
        view = memoryview(data).cast("B")
        lba, blocks = self._blocks(offset, len(view))
        block = self.block_size
        if len(view) <= self.max_io_bytes:  # the common case: one command
            await self._write_chunk(lba, blocks, view, fua)
            return
        chunks = self._chunks(lba, blocks)
        await asyncio.gather(
            *(
                self._write_chunk(
                    c_lba, n, view[(c_lba - lba) * block : (c_lba - lba + n) * block], fua
                )
                for c_lba, n in chunks
            )
        )

    async def flush(self) -> None:
        """SYNCHRONIZE CACHE: what was acknowledged is on stable storage afterwards."""
        result = await self._command(cdb.synchronize_cache16(), 0, "flush", slow=True)
        self._raise_unless_good(result, "flush")

    async def passthrough(
        self, command: bytes, *, data_out: bytes | None = None, data_in_length: int = 0
    ) -> ScsiResult:
        """Send a raw CDB on a chosen path; path failures are handled like any I/O.

        Target errors are not raised: the result (status and sense) is returned as is.
        """
        nbytes = len(data_out or b"") + data_in_length
        return await self._command(
            bytes(command), nbytes, "passthrough", data_out=data_out,
            data_in_length=data_in_length, raw=True, slow=True, mutating=True,
        )  # fmt: skip

    async def close(self) -> None:
        """Stop background work and log out of every path. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(Exception):
            await self._monitor.close()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._reservations is not None and self.lun is not None:
            with contextlib.suppress(Exception):
                await self._end_preempted_sessions(self._reservations)
                await self._reservations.release(self._paths)
        await asyncio.gather(*(p.transport.close() for p in self._paths), return_exceptions=True)

    async def __aenter__(self) -> MultipathDevice:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- splitting -------------------------------------------------------------------------

    def _lun(self) -> LunInfo:
        if self.lun is None:
            raise DeviceError("device is not open")
        return self.lun

    def _blocks(self, offset: int, length: int) -> tuple[int, int]:
        info = self._lun()
        block = info.block_size
        if offset % block or length % block or offset < 0 or length <= 0:
            raise UsageError(
                f"offset {offset} and length {length} must be non-negative multiples of the "
                f"{block}-byte block size (length at least one block)"
            )
        if offset + length > info.size_bytes:
            raise UsageError(
                f"offset {offset} + length {length} is beyond the end of the LUN "
                f"({info.size_bytes} bytes)"
            )
        return offset // block, length // block

    def _chunks(self, lba: int, blocks: int) -> list[tuple[int, int]]:
        per = self.max_io_bytes // self.block_size
        return [(start, min(per, lba + blocks - start)) for start in range(lba, lba + blocks, per)]

    async def _read_chunk(self, lba: int, blocks: int) -> bytes:
        nbytes = blocks * self.block_size
        result = await self._command(cdb.read16(lba, blocks), nbytes, "read", data_in_length=nbytes)
        self._raise_unless_good(result, "read")
        return self._read_data(result, lba, nbytes)

    def _read_data(self, result: ScsiResult, lba: int, nbytes: int) -> bytes:
        """The data of a good read, which must be every byte asked for."""
        if len(result.data) != nbytes:
            self.stats.errors += 1
            raise DeviceError(
                f"read at LBA {lba}: target returned {len(result.data)} of {nbytes} bytes"
            )
        self.stats.bytes_read += nbytes
        return result.data

    async def _write_chunk(self, lba: int, blocks: int, data: memoryview, fua: bool) -> None:
        result = await self._command(
            cdb.write16(lba, blocks, fua=fua), len(data), "write", data_out=data, mutating=True
        )
        self._raise_unless_good(result, "write")
        self._wrote(result, len(data))

    def _wrote(self, result: ScsiResult, nbytes: int) -> None:
        """Count a good write."""
        self.stats.bytes_written += nbytes

    def _raise_unless_good(self, result: ScsiResult, operation: str) -> None:
        if result.status in (ScsiStatus.GOOD, ScsiStatus.CONDITION_MET):
            return
        self.stats.errors += 1
        raise TargetIOError(operation, result.status, result.sense, _describe(result))

    # -- the command engine ----------------------------------------------------------------

    async def _command(
        self,
        command: bytes,
        nbytes: int,
        operation: str,
        *,
        data_out: bytes | memoryview | None = None,
        data_in_length: int = 0,
        raw: bool = False,
        slow: bool = False,
        mutating: bool = False,
        first: _Started | None = None,
    ) -> ScsiResult:
        """Run one command to completion, failing paths over as needed.

        ``slow`` marks commands that may legitimately take long (a cache flush, a raw
        command of unknown kind): they neither feed the path's latency estimate nor
        count as a stall until ``slow_command_timeout``. ``mutating`` marks commands
        that may change data (writes, raw commands): when their path fails while they
        are in flight, they are reissued only after that path is fenced.

        ``first`` is a command already sent once, from a direct entry such as
        :meth:`start_read`, with its outcome: it holds a slot under the cap, and the
        engine goes on from that outcome as if it had sent the command itself.
        """
        if first is None:
            if self._closed:
                raise DeviceError("device is closed")
            await self._slots.acquire()
        try:
            same_path: Path | None = None
            avoid: Path | None = None
            same_path_tries = 0
            alua_redirects = 0
            while True:
                path, result = await self._attempt(
                    first, same_path, avoid, command, nbytes, data_out, data_in_length, slow=slow
                )
                first = same_path = avoid = None
                if isinstance(result, _Lost):  # the path failed; its session is closed
                    if mutating and result.unknown:
                        await self._fence(path, result.epoch, operation)
                    self.stats.retries += 1
                    continue
                if result.status == ScsiStatus.GOOD:
                    self.stats.ios += 1
                    return result
                verdict = explain(result.status, result.sense)
                disposition = verdict.disposition
                if disposition is Disposition.OK or (
                    raw and disposition is Disposition.TARGET_ERROR
                ):
                    self.stats.ios += 1
                    return result
                if disposition is Disposition.TARGET_ERROR:
                    return result
                self.stats.retries += 1
                self._recheck(verdict.recheck)
                if alua_redirects < ALUA_REDIRECTS and self._hold_by_alua(path, verdict.alua_state):
                    alua_redirects += 1
                    continue
                transient = disposition in (
                    Disposition.RETRY_SAME_PATH,
                    Disposition.RETRY_OTHER_PATH,
                )
                if transient and same_path_tries < self.settings.same_path_retries:
                    same_path_tries += 1
                    if disposition is Disposition.RETRY_OTHER_PATH:
                        # ALUA transition: this path is not broken, only busy changing
                        # state; prefer another path, and give the change time.
                        avoid = path
                        await asyncio.sleep(TRANSITION_BACKOFF * same_path_tries)  # policy
                        continue
                    if result.status in (ScsiStatus.BUSY, ScsiStatus.TASK_SET_FULL):
                        await asyncio.sleep(BUSY_BACKOFF * same_path_tries)  # backoff policy
                    if path.state is PathState.ACTIVE:
                        same_path = path
                    continue
                same_path_tries = 0
                await self._fail_path(path, f"{operation}: {_describe(result)}")
        finally:
            self._slots.release()

    async def _attempt(
        self,
        first: _Started | None,
        same_path: Path | None,
        avoid: Path | None,
        command: bytes,
        nbytes: int,
        data_out: bytes | memoryview | None,
        data_in_length: int,
        *,
        slow: bool,
    ) -> tuple[Path, ScsiResult | _Lost]:
        """One try of :meth:`_command`: the outcome of ``first`` when given, else the
        command sent on ``same_path`` or on a path chosen (avoiding ``avoid``)."""
        if first is not None:
            outcome = await self._settle(
                first.path, nbytes, data_in_length, first.started, first.outcome, slow=slow
            )
            return first.path, outcome
        path = same_path if same_path is not None else await self._choose(nbytes, avoid=avoid)
        return path, await self._run_on(path, command, nbytes, data_out, data_in_length, slow=slow)

    def _hold_by_alua(self, path: Path, reported: int | None) -> bool:
        """The port told its group's state (standby, unavailable, transitioning): the
        command was not executed and the path is not broken. Keep it out of I/O until
        RTPG shows it usable again. False when there is nothing to hold it for."""
        if not self.alua or reported is None or path.state is not PathState.ACTIVE:
            return False
        self._set_alua(path, reported)
        self._apply_alua()
        return True

    def _recheck(self, recheck: Recheck) -> None:
        """Act on what a sense row says changed on the LU (re-read ALUA, capacity)."""
        if self.alua and recheck & Recheck.ALUA:
            self._alua_wake.set()
        if recheck & Recheck.CAPACITY:
            self._capacity_changed()

    async def _run_on(
        self,
        path: Path,
        command: bytes,
        nbytes: int,
        data_out: bytes | memoryview | None,
        data_in_length: int,
        *,
        slow: bool,
    ) -> ScsiResult | _Lost:
        """Send one command on ``path``; :class:`_Lost` if the path failed (now closed)."""
        started = self._begin(path, nbytes, slow=slow)
        outcome: ScsiResult | TransportError
        try:
            outcome = await path.transport.execute(
                command, data_out=data_out, data_in_length=data_in_length
            )
        except TransportError as exc:
            outcome = exc
        except BaseException:
            self._finish(path, nbytes, started, ok=False, slow=slow)
            raise
        return await self._settle(path, nbytes, data_in_length, started, outcome, slow=slow)

    def _begin(self, path: Path, nbytes: int, *, slow: bool) -> float:
        """Account a command sent on ``path``; the time it started."""
        started = self._clock()
        self._selector.start_io(path, nbytes)
        if path.in_flight == 0:
            path.progress = started
        path.in_flight += 1
        path.slow_in_flight += slow
        return started

    async def _settle(
        self,
        path: Path,
        nbytes: int,
        data_in_length: int,
        started: float,
        outcome: ScsiResult | TransportError,
        *,
        slow: bool,
    ) -> ScsiResult | _Lost:
        """Account the outcome of a command of :meth:`_begin`; a transport error fails
        the path (its session is then closed) and gives :class:`_Lost`."""
        if isinstance(outcome, TransportError):
            self._finish(path, nbytes, started, ok=False, slow=slow)
            await self._fail_path(path, str(outcome))
            unknown = not (isinstance(outcome, PathDisconnectedError) and not outcome.sent)
            return _Lost(path.failures, unknown)
        self._answered(path, nbytes, data_in_length, started, slow=slow)
        return outcome

    def _answered(
        self, path: Path, nbytes: int, data_in_length: int, started: float, *, slow: bool
    ) -> None:
        """Account a command ``path`` answered (whatever its status)."""
        self._finish(path, nbytes, started, ok=True, slow=slow)
        if data_in_length:
            path.reads += 1
            path.read_bytes += data_in_length
        if nbytes > data_in_length:
            path.writes += 1
            path.written_bytes += nbytes - data_in_length

    def _finish(
        self, path: Path, nbytes: int, started: float, *, ok: bool, slow: bool = False
    ) -> None:
        now = self._clock()
        self._selector.end_io(path, nbytes, started)
        path.in_flight -= 1
        path.slow_in_flight -= slow
        if ok:
            path.progress = path.answered = now
            path.ios += 1
            path.bytes += nbytes
            path.histogram.observe(now - started)
            if not slow:
                path.record_latency(now - started)
        else:
            path.errors += 1
        if self._completion_waiters:
            self._completed.set()

    async def _choose(self, nbytes: int, avoid: Path | None = None) -> Path:
        """A path for the next command; waits while all are busy or (bounded) all failed.

        With ``avoid``, the selector chooses another path by its own rule (budgets and
        shares hold), and offers ``avoid`` only when it is the only usable path.
        """
        path = self._selector.select(nbytes, avoid)
        if path is not None:
            return path
        no_path_since: float | None = None
        meter = self.stats.no_path
        # Counted in the meter while no path is usable; made only then (waiting for a
        # busy path, the common case under load, allocates nothing).
        waiting: NoPathWait | None = None
        try:
            while path is None:
                if self._closed:
                    raise DeviceError("device is closed")
                if self._selector.valid_count == 0:
                    if waiting is None:
                        waiting = meter.waiter()
                    waiting.start()
                    now = self._clock()
                    if self._transition_pending(now):
                        # A port is changing ALUA state: wait for it, not for no_path_retry.
                        no_path_since = None
                        remaining = ALUA_TRANSITION_POLL
                    else:
                        if no_path_since is None:
                            no_path_since = now
                        remaining = self.settings.no_path_retry - (now - no_path_since)
                        if remaining <= CLOCK_SLACK:
                            self.stats.errors += 1
                            meter.gave_up()
                            raise NoPathError(
                                now - no_path_since, self.settings.no_path_retry, self._last_failure
                            )
                    changed = self._paths_changed
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(changed.wait(), remaining)
                else:
                    if waiting is not None:
                        waiting.end()
                    self._completion_waiters += 1
                    try:
                        await self._completed.wait()
                    finally:
                        self._completion_waiters -= 1
                        if not self._completion_waiters:
                            self._completed.clear()
                path = self._selector.select(nbytes, avoid)
        finally:
            if waiting is not None:
                waiting.end()
        return path

    # -- failing and reinstating paths -------------------------------------------------------

    def _mark_failed(self, path: Path, reason: str) -> None:
        path.state = PathState.FAILED
        path.failures += 1
        path.last_failure = reason
        self._last_failure = f"{path.url}: {reason}"
        self._selector.fail_path(path)
        self._alua_held.discard(path)
        self._apply_alua()
        self.stats.failovers += 1
        log.warning("path %s failed: %s", path.url, reason)

    async def _fail_path(self, path: Path, reason: str) -> None:
        """Fail ``path``: out of the selector, session torn down, recovery started.

        Returns only once the session's socket is closed, so the caller may reissue a
        write elsewhere without the stale copy ever reaching the target afterwards.
        Concurrent callers for one path all wait on the same close.
        """
        if path.state is PathState.ACTIVE:
            self._mark_failed(path, reason)
            path.close_task = asyncio.ensure_future(path.transport.close())
            self._start_recovery(path)
        if path.close_task is not None:
            with contextlib.suppress(Exception):
                await asyncio.shield(path.close_task)

    def _start_recovery(self, path: Path) -> None:
        if not self._closed:
            self._monitor.path_failed(path)

    async def fail(self, path: Path, reason: str) -> None:
        """Fail ``path`` on a monitor's word (a checker found it down while idle)."""
        await self._fail_path(path, reason)

    async def verify_identity(self, path: Path) -> str | None:
        """Log ``path`` in afresh and check it still leads to this LUN.

        Returns None when the path may be reinstated, else why not. The session is
        left open on success (reinstatement needs it) and closed otherwise. Raises
        nothing: transport failures become the returned reason.
        """
        if path.close_task is not None:
            with contextlib.suppress(Exception):
                await path.close_task
        epoch = path.failures
        try:
            await path.transport.connect()
            if isinstance(path.transport, Fenceable) and path.transport.relogin_fences:
                self._mark_fenced(path, epoch, "its own re-login")
            info = await probe_lun(path.transport)
        except (TransportError, DeviceError) as exc:
            with contextlib.suppress(Exception):
                await path.transport.close()
            return str(exc)
        path.alua_group = info.target_port_group
        if info.wwid != self._lun().wwid:
            with contextlib.suppress(Exception):
                await path.transport.close()
            log.error("path %s now leads to %s: not reinstated", path.url, info.wwid)
            return f"identity changed to {info.wwid}; path kept out of use"
        await self._prepare_fence(path)
        if self._reservations is not None:
            if isinstance(path.transport, Fenceable) and path.transport.relogin_fences:
                self._reservations.live_fenced.discard(path)  # that login ended it
            try:
                await self._reservations.register(path)
            except ReservationError as exc:
                with contextlib.suppress(Exception):
                    await path.transport.close()
                return str(exc)
        return None

    # -- fencing ------------------------------------------------------------------------------

    def fence_info(self, path: Path) -> dict[str, Any]:
        """How ``path`` is fenced and how often it was (for ``mpath show``).

        ``methods`` lists the ways in the order they are tried; ``scope`` where a
        reinstating login must go (iSCSI: the path's target portal group);
        ``reservation`` the path's key and whether it is registered (None without a
        ``reservation_key``); ``last_failure`` why the last fence that did not work
        failed, until one works.
        """
        transport = path.transport
        fenceable = transport if isinstance(transport, Fenceable) else None
        methods = []
        if fenceable is not None and self.settings.fence_method != "reservation":
            methods.append(fenceable.fence_method)
        reservations = self._reservations
        if reservations is not None and self.settings.fence_method != "reinstatement":
            methods.append("persistent-reservation")
        return {
            "method": methods[0] if methods else None,
            "methods": methods,
            "identity": None if fenceable is None else fenceable.fence_identity,
            "scope": None if fenceable is None else fenceable.fence_scope,
            "reservation": None if reservations is None else reservations.describe(path),
            "fenced_failures": self._fences_done.get(path, 0),
            "last_failure": self._fence_failure.get(path),
        }

    def _mark_fenced(self, path: Path, epoch: int, how: str) -> None:
        """Record that ``path``'s sessions up to failure ``epoch`` can execute nothing more.

        Counted and logged only when a write was waiting for it; a re-login after a
        failure that lost no write fences silently.
        """
        if self._fenced.get(path, 0) >= epoch:
            return
        self._fenced[path] = epoch
        entry = self._fence_tasks.get(path)
        if entry is not None and not entry[1].done():
            self.stats.fences += 1
            self._fences_done[path] = self._fences_done.get(path, 0) + 1
            log.info("path %s fenced by %s", path.url, how)
        self._fence_failure.pop(path, None)

    async def _fence(self, path: Path, epoch: int, operation: str) -> None:
        """Return once ``path`` can no longer execute what it held at failure ``epoch``.

        All writes lost with one failure share one fencing task. When no fence works
        within ``fence_timeout``, raise :class:`FenceTimeoutError`: the write is then
        neither acknowledged nor reissued (the target may still execute it).
        """
        if self._fenced.get(path, 0) >= epoch:
            return
        entry = self._fence_tasks.get(path)
        if entry is None or entry[0] < epoch or entry[1].done():
            task = asyncio.ensure_future(self._run_fence(path, epoch))
            self._fence_tasks[path] = entry = (epoch, task)
            task.add_done_callback(_retrieve_exception)
        try:
            await asyncio.shield(entry[1])
        except FenceTimeoutError as exc:
            self.stats.errors += 1
            raise FenceTimeoutError(operation, exc.url, exc.fence_timeout, exc.reason) from None

    async def _run_fence(self, path: Path, epoch: int) -> None:
        """Try every way to fence ``path`` until one works or ``fence_timeout`` passes.

        Ways, in order: a fence through each working path (for iSCSI, a login that
        reinstates the failed session through another portal of the same target), then
        the transport's own (a block device: its system calls have all returned). The
        path's own re-login counts too, for transports where it reinstates the old
        session; it is then left to the monitor (a fence through the path's own portal
        would only race with that re-login).

        A fence and a re-login of the same path may overlap; whichever login the target
        takes last ends the other's session. That costs at most one more failure of
        the path, never data: the ended session's commands are fenced by that very
        reinstatement, and anything reissued waits for a fence of its own.

        A fence that fails through a path makes the device check that path (one TEST
        UNIT READY under the stall watchdog): a dead carrier is failed like any dead
        path. When no path is left, ``no_path_retry`` applies as for any I/O: after it,
        the write fails with :class:`NoPathError` (unacknowledged, outcome unknown).
        The writes waiting for it meanwhile count as I/O queued with no path
        (``stats.no_path``).
        """
        waiting = self.stats.no_path.waiter()  # counted while no path is usable
        try:
            await self._fence_until_done(path, epoch, waiting)
        finally:
            waiting.end()

    async def _fence_until_done(  # noqa: PLR0915
        self, path: Path, epoch: int, waiting: NoPathWait
    ) -> None:
        """:meth:`_run_fence`'s loop; ``waiting`` is started while no path is usable."""
        transport = path.transport
        deadline = self._clock() + self.settings.fence_timeout
        no_path_since: float | None = None
        reason = f"{type(transport).__name__} has no way to fence a path"
        if path.close_task is not None:
            with contextlib.suppress(Exception):
                await asyncio.shield(path.close_task)
        while True:
            if self._fenced.get(path, 0) >= epoch:
                return
            reservations = self._reservations
            if isinstance(transport, Fenceable) or reservations is not None:
                throughs: list[Path | None] = [
                    p for p in self._paths if p is not path and p.state is PathState.ACTIVE
                ]
                if isinstance(transport, Fenceable) and not transport.relogin_fences:
                    throughs.append(None)
                if not throughs:
                    reason = "no working path to carry the fence, and the path is not back"
                failed: list[str] = []
                unavailable = 0
                for through in throughs:
                    if self._fenced.get(path, 0) >= epoch:
                        return
                    if transport.connected:  # logged in again: that login fenced it
                        break
                    attempt = min(FENCE_ATTEMPT_TIMEOUT, deadline - self._clock())
                    if attempt <= 0:
                        break
                    outcome, how, impossible = await self._fence_via(path, through, attempt)
                    if outcome is None:
                        self._mark_fenced(path, epoch, how)
                        return
                    failed.append(outcome)
                    unavailable += impossible
                if failed:
                    reason = "; ".join(dict.fromkeys(failed))
                scope = transport.fence_scope if isinstance(transport, Fenceable) else None
                if throughs and reservations is None and scope is not None:
                    reason = f"no portal in {scope} reachable and no reservation_key ({reason})"
                self._fence_failure[path] = reason
                if throughs and unavailable == len(throughs) and self._give_up_fence(path, epoch):
                    return
            now = self._clock()
            if self._selector.valid_count == 0:
                waiting.start()
                no_path_since = now if no_path_since is None else no_path_since
                if now - no_path_since >= self.settings.no_path_retry:
                    self.stats.errors += 1
                    self.stats.no_path.gave_up()
                    raise NoPathError(
                        now - no_path_since,
                        self.settings.no_path_retry,
                        f"{self._last_failure}; a write in flight on {path.url} was not "
                        f"fenced ({reason}), so its outcome is unknown",
                    )
            else:
                waiting.end()
                no_path_since = None
            remaining = deadline - now
            if remaining <= 0 or self._closed:
                log.error("path %s could not be fenced: %s", path.url, reason)
                raise FenceTimeoutError("write", path.url, self.settings.fence_timeout, reason)
            changed = self._paths_changed
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), min(remaining, FENCE_RETRY_INTERVAL))

    def _give_up_fence(self, path: Path, epoch: int) -> bool:
        """No method can ever fence ``path`` (its portal group has no other portal, and
        there is no reservation): with ``unfenceable_writes = reissue``, let its writes
        be reissued now, as an unfenced stack would, rather than fail writes the caller
        expects to succeed. True when given up."""
        if path.transport.connected or self.settings.unfenceable_writes != "reissue":
            return False
        self._fenced[path] = epoch
        self.stats.unfenced_reissues += 1
        log.warning(
            "path %s cannot be fenced (%s): its writes are reissued unfenced and the "
            "originals may still land; set reservation_key to fence it",
            path.url,
            self._fence_failure.get(path),
        )
        return True

    async def _fence_via(
        self, path: Path, through: Path | None, limit: float
    ) -> tuple[str | None, str, bool]:
        """Fence ``path`` through ``through`` (None: its own way), every allowed way in
        turn: (None, how it worked, False) or (why not, "", whether no allowed way can
        ever work through ``through``).

        Session reinstatement first (it leaves nothing on the target; the transport
        refuses a portal of another target portal group), then preempting the failed
        path's reservation key through ``through``, which works across groups.
        """
        transport = path.transport
        method = self.settings.fence_method
        reasons: list[str] = []
        impossible = False
        if isinstance(transport, Fenceable) and method != "reservation":
            outcome, impossible = await self._fence_once(transport, through, limit)
            if outcome is None:
                how = "itself" if through is None else f"reinstatement via {through.url}"
                return None, how, False
            reasons.append(outcome)
        reservations = self._reservations
        if (
            reservations is not None
            and method != "reinstatement"
            and through is not None
            and through.state is PathState.ACTIVE
        ):
            try:
                async with asyncio.timeout(limit):
                    outcome = await reservations.preempt(path, through)
            except TimeoutError:
                outcome = f"preempting through {through.url} got no answer within {limit:.1f} s"
            if outcome is None:
                return None, f"preempting its reservation key via {through.url}", False
            reasons.append(outcome)
            impossible = False
        return "; ".join(reasons) or "no fencing method applies", "", impossible

    async def _fence_once(
        self, transport: Fenceable, through: Path | None, limit: float
    ) -> tuple[str | None, bool]:
        """One fencing attempt, bounded by ``limit``: (None, False) when it worked, else
        (why not, whether it can never work through ``through``).

        The carrier path is checked at the same time with one TEST UNIT READY under the
        stall watchdog: when it turns out dead (and is failed like any dead path), the
        attempt through it is given up at once instead of waiting for its login timeout.
        """
        via = "its own way" if through is None else f"through {through.url}"
        attempt = asyncio.ensure_future(
            asyncio.wait_for(transport.fence(None if through is None else through.transport), limit)
        )
        probe = None if through is None else asyncio.ensure_future(self._probe(through))
        try:
            pending: set[asyncio.Future[None]] = {attempt} | ({probe} if probe else set())
            while not attempt.done():
                _, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                if through is not None and through.state is not PathState.ACTIVE:
                    attempt.cancel()
                    return f"fencing {via}: that path failed too", False
            try:
                attempt.result()
            except FenceUnavailableError as exc:
                return exc.message, True
            except FenceError as exc:
                return exc.message, False
            except TimeoutError:
                return f"fencing {via} got no answer within {limit:.1f} s", False
            return None, False
        finally:
            for task in (attempt, probe):
                if task is not None and not task.done():
                    task.cancel()
                    with contextlib.suppress(BaseException):
                        await task

    async def _probe(self, path: Path) -> None:
        """One TEST UNIT READY on ``path``: fails it (watchdog, transport) if it is dead."""
        if path.state is not PathState.ACTIVE:
            return
        with contextlib.suppress(TransportError, DeviceError):
            await self._run_on(path, cdb.test_unit_ready(), 0, None, 0, slow=False)

    @property
    def path_objects(self) -> list[Path]:
        """The paths themselves (for monitors); ``paths`` gives their JSON view."""
        return list(self._paths)

    def reinstate(self, path: Path) -> None:
        """Put a logged-in path back into use and wake I/O waiting for a path."""
        if path.state is PathState.ACTIVE:
            return
        path.state = PathState.ACTIVE
        self._selector.reinstate_path(path)
        log.info("path %s reinstated", path.url)
        self._apply_alua()
        if self.alua:
            self._alua_wake.set()  # its group's state may have changed while it was out
        self._wake_paths()

    def switch_group(self, number: int) -> int:
        """Make priority group ``number`` carry the I/O until failback moves it
        (multipathd's ``switchgroup``); returns that group's priority.

        Groups are numbered from 1, best priority first, as ``show topology`` lists
        them. The choice holds while the group has a usable path, until a path of a
        better group is reinstated (when, the failback policy decides: at once under
        ``immediate``, never by itself under ``manual``). I/O in flight on the old
        group finishes there. Raises :class:`UsageError` for a number out of range and
        :class:`DeviceError` for a group with no usable path.
        """
        selector = self._selector
        if isinstance(selector, PriorityGroups):
            priorities = selector.priorities
        else:
            priorities = sorted({p.priority for p in self._paths}, reverse=True)
        if not 1 <= number <= len(priorities):
            raise UsageError(
                f"no path group {number}: this LUN has {len(priorities)} "
                f"(1-{len(priorities)}, best priority first, as 'show topology' numbers them)"
            )
        priority = priorities[number - 1]
        if isinstance(selector, PriorityGroups):
            usable = selector.usable(priority)
        else:
            usable = selector.valid_count
        if not usable:
            raise DeviceError(f"path group {number} (priority {priority}) has no usable path")
        if isinstance(selector, PriorityGroups):
            selector.switch_group(priority)
        log.info("switched to path group %d (priority %d)", number, priority)
        self._wake_paths()
        return priority

    def _wake_paths(self) -> None:
        """Wake I/O waiting for a usable path."""
        if self._selector.valid_count:
            self.stats.no_path.path_usable()
        changed, self._paths_changed = self._paths_changed, asyncio.Event()
        changed.set()

    # -- capacity -----------------------------------------------------------------------------

    async def refresh_capacity(self) -> CapacityChange:
        """Re-read READ CAPACITY (16) on every path in use and take the LUN's new size.

        After a LUN grew on the target (multipathd's ``resize map``). Paths that are
        failed, or that fail to answer, are left out: their answer would be stale or
        missing, and they are checked again before they carry I/O. Every path that
        answers must report the same size and block size, else nothing changes (the
        target may be part way through the resize; try again). A smaller size is
        refused with :class:`DeviceError` and the old size kept: data past the new end
        would be gone under whoever uses it, and that needs a person, not a daemon.
        Readers of :attr:`size_bytes` (an NBD export) see the new size at once.
        """
        async with self._capacity_lock:
            info = self._lun()
            usable = [
                p
                for p in self._paths
                if p.state is PathState.ACTIVE and p.transport.connected and p.close_task is None
            ]
            answers = await asyncio.gather(*(self._read_capacity(p) for p in usable))
            reports = {p.url: c for p, c in zip(usable, answers, strict=True) if c is not None}
            if not reports:
                raise DeviceError("no usable path answered READ CAPACITY; the size is unchanged")
            sizes = {c.size_bytes for c in reports.values()}
            blocks = {c.block_size for c in reports.values()}
            if len(sizes) > 1 or len(blocks) > 1:
                told = ", ".join(f"{url}: {c.size_bytes} bytes" for url, c in reports.items())
                raise DeviceError(
                    f"paths disagree on the capacity ({told}); the size is unchanged (the "
                    "target may be part way through the resize: try again)"
                )
            (new,), (block,) = sizes, blocks
            old = info.size_bytes
            if block != info.block_size:
                raise DeviceError(
                    f"the block size changed from {info.block_size} to {block} bytes: "
                    "refused; reopen the LUN"
                )
            if new < old:
                raise DeviceError(
                    f"the LUN shrank from {old} to {new} bytes: refused, the size stays "
                    f"{old} (data past the new end is gone; stop its users and reopen it)"
                )
            if new > old:
                self.lun = dataclasses.replace(info, size_bytes=new)
                log.warning("LUN %s grew from %d to %d bytes", info.wwid, old, new)
            return CapacityChange(old, new, {url: c.size_bytes for url, c in reports.items()})

    async def _read_capacity(self, path: Path) -> Capacity | None:
        try:
            async with asyncio.timeout(CAPACITY_READ_TIMEOUT):
                return await read_capacity(path.transport)
        except (TransportError, DeviceError, TimeoutError) as exc:
            log.info("path %s: READ CAPACITY failed, left out: %s", path.url, exc)
            return None

    def _capacity_changed(self) -> None:
        """A path said the capacity changed (unit attention 2a/09): re-read it in the
        background, once at a time; a shrink is logged and refused."""
        if self._closed or (self._capacity_task is not None and not self._capacity_task.done()):
            return

        async def refresh() -> None:
            try:
                await self.refresh_capacity()
            except DeviceError as exc:
                log.error("capacity changed: %s", exc)

        task: asyncio.Task[None] = asyncio.ensure_future(refresh())
        self._capacity_task = task
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- ALUA ---------------------------------------------------------------------------------

    async def refresh_alua(self) -> bool:
        """Read REPORT TARGET PORT GROUPS through one logged-in path and apply the states.

        Any logged-in path will do (standby and unavailable ports still answer RTPG),
        active ones first. Returns False when no path gave an answer; the states are
        then left as they were.
        """
        order = sorted(
            (p for p in self._paths if p.transport.connected and p.close_task is None),
            key=lambda p: p.state is not PathState.ACTIVE,
        )
        for path in order:
            data = await self._report_target_port_groups(path)
            if data is None:
                continue
            try:
                groups = parse_target_port_groups(data)
            except ScsiError as exc:
                log.warning("path %s: bad REPORT TARGET PORT GROUPS data: %s", path.url, exc)
                continue
            for each in self._paths:
                group = None if each.alua_group is None else groups.group(each.alua_group)
                if group is not None:
                    self._set_alua(each, group.state)
            self._apply_alua()
            return True
        return False

    async def _report_target_port_groups(self, path: Path) -> bytes | None:
        """RTPG's data through ``path`` (None: no usable answer), unit attentions retried."""
        command = cdb.report_target_port_groups()
        for _ in range(ALUA_RTPG_ATTEMPTS):
            try:
                async with asyncio.timeout(ALUA_RTPG_TIMEOUT):
                    result = await path.transport.execute(
                        command, data_in_length=cdb.DEFAULT_RTPG_ALLOC_LEN
                    )
            except (TransportError, TimeoutError) as exc:
                log.debug("path %s: REPORT TARGET PORT GROUPS failed: %s", path.url, exc)
                return None
            if result.status == ScsiStatus.GOOD:
                return result.data
            if classify(result.status, result.sense) is not Disposition.RETRY_SAME_PATH:
                log.debug("path %s: REPORT TARGET PORT GROUPS: %s", path.url, _describe(result))
                return None
        return None

    def _set_alua(self, path: Path, state: int) -> None:
        if state == path.alua_state:
            return
        log.info(
            "path %s: ALUA group %s %s -> %s", path.url, path.alua_group,
            state_name(path.alua_state), state_name(state),
        )  # fmt: skip
        path.alua_state = state
        path.alua_since = self._clock()

    def _apply_alua(self) -> None:
        """Keep in the selector only the usable paths of the best ALUA state.

        The others stay logged in and ACTIVE (not failed: no failover is counted, no
        fence is needed, since their port executed nothing) but get no I/O. On a LU
        without ALUA every path ranks the same and nothing changes.
        """
        chosen = alua.carriers((p, p.state is PathState.ACTIVE, p.alua_state) for p in self._paths)
        woke = False
        for path in self._paths:
            if path.state is not PathState.ACTIVE:
                self._alua_held.discard(path)
            elif path in chosen:
                if path in self._alua_held:
                    self._alua_held.discard(path)
                    self._selector.reinstate_path(path)
                    woke = True
            elif path not in self._alua_held:
                self._alua_held.add(path)
                self._selector.fail_path(path)
        if woke:
            self._wake_paths()

    def _transition_pending(self, now: float) -> bool:
        if not self.alua:
            return False
        return alua.transition_pending(
            ((p.state is PathState.ACTIVE, p.alua_state, p.alua_since) for p in self._paths),
            now,
            self.settings.alua_transition_timeout,
        )

    async def _alua_watch(self) -> None:
        """Re-read the ALUA states: every ``alua_poll_interval``, often while a port is
        transitioning, and at once when an answer says they changed."""
        while not self._closed:
            pending = self._transition_pending(self._clock())
            interval = ALUA_TRANSITION_POLL if pending else self.settings.alua_poll_interval
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._alua_wake.wait(), interval)
            self._alua_wake.clear()
            if not self._closed:
                await self.refresh_alua()

    async def _watchdog(self) -> None:
        """Fail busy paths that made no progress within their timeout, unless the LUN
        is to blame (:mod:`mpath.filter.stall`: when every path is silent at once, the
        LUN is slow, not its paths).

        Time during which this process did not run its event loop (a long callback, a
        garbage collection, the process starved of CPU) does not count against a path:
        completions may have been waiting, unread, on its socket. When a tick comes
        late, the lost time is added to every busy path's last progress instead.
        """
        judge = self.stall_judge
        probing: set[Path] = set()  # idle peers asked whether the LUN answers
        last = self._clock()
        while not self._closed:
            await asyncio.sleep(WATCHDOG_TICK)  # periodic scan, not synchronisation
            now = self._clock()
            lag = now - last - WATCHDOG_TICK
            last = now
            if lag > WATCHDOG_TICK:
                for path in self._paths:
                    if path.in_flight:
                        path.progress += lag
                        path.pinged += lag  # the network's word keeps its age too
                        path.carried += lag
                judge.skip(lag)
                continue
            self._judge_stalls(probing)

    def _judge_stalls(self, probing: set[Path]) -> None:
        """One judgement of the busy paths: fail the lagging, probe idle peers."""
        judge = self.stall_judge
        verdict = judge.judge([self._stall_view(p) for p in self._paths])
        for failure in verdict.fail:
            path = self._paths[failure.key - 1]
            self._spawn(self._fail_path(path, failure.reason))
        for key in verdict.probe:
            peer = self._paths[key - 1]
            if peer not in probing:  # one TEST UNIT READY at a time per peer
                probing.add(peer)
                self._spawn(self._probe_peer(peer, probing))
        self.stats.lun_stalls = judge.lun_stalls

    def _stall_view(self, path: Path) -> PathView:
        if path.in_flight and path.in_flight == path.slow_in_flight:
            limit = self.settings.slow_command_timeout
        else:
            limit = path.timeout(self.settings)
        network = None if path.link is None else self._network(path, limit)
        return PathView(
            path.index, path.state is PathState.ACTIVE, path.in_flight > 0,
            path.progress, path.answered, limit, network,
        )  # fmt: skip

    def _network(self, path: Path, limit: float) -> Network:
        """What a busy path silent past its limit can learn from its TCP connection.

        Once nothing it sent is waiting for an acknowledgement, it is pinged (NOP-Out),
        and again every :data:`LINK_PING_INTERVAL` while it stays silent: a target's
        kernel acknowledges the ping even while its SCSI layer is stalled, and a cut
        network never does. The ping's answer (the NOP-In) is not awaited: the
        acknowledgement is the evidence, counted only when the peer's acknowledged
        bytes grew (a ping that never left this host proves nothing).
        """
        now = self._clock()
        if not path.in_flight or now - path.progress <= limit or path.link is None:
            return Network.UNKNOWN
        state = path.link()
        if state is None:
            return Network.UNKNOWN
        if state.unacked and state.timeouts >= LINK_DOWN_TIMEOUTS:
            return Network.SILENT
        if not state.unacked:
            if path.pinged >= path.progress and state.bytes_acked > path.acked_before_ping:
                path.carried = now
            if path.pinged < path.progress or now - path.pinged >= LINK_PING_INTERVAL:
                path.pinged = now
                path.acked_before_ping = state.bytes_acked
                self._spawn(self._ping(path))
        fresh = now - path.carried <= 2 * LINK_PING_INTERVAL
        return Network.CARRIES if path.carried >= path.progress and fresh else Network.UNKNOWN

    async def _ping(self, path: Path) -> None:
        """One NOP-Out on a silent path, for its TCP acknowledgement (:meth:`_network`)."""
        transport = path.transport
        if isinstance(transport, LinkAware):
            with contextlib.suppress(TransportError, TimeoutError):
                await asyncio.wait_for(transport.nop(), self.settings.lun_stall_timeout)

    async def _probe_peer(self, path: Path, probing: set[Path]) -> None:
        """Ask an idle path whether the LUN answers (another path is silent); judge
        again at once when it does, so a dead path is not kept a tick longer."""
        try:
            await self._probe(path)
        finally:
            probing.discard(path)
        if not self._closed:
            self._judge_stalls(probing)

    def _spawn(self, coro: Any) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def _answer_from_task(
    answer: Callable[[ScsiResult | BaseException], None], task: asyncio.Task[ScsiResult]
) -> None:
    """Give ``answer`` what a transport's ``execute`` task ended with."""
    if task.cancelled():
        answer(asyncio.CancelledError())
    elif (error := task.exception()) is not None:
        answer(error)
    else:
        answer(task.result())


def _failed(loop: asyncio.AbstractEventLoop, error: BaseException) -> asyncio.Future[Any]:
    """A future that already failed with ``error`` (a direct entry's bad request)."""
    future: asyncio.Future[Any] = loop.create_future()
    future.set_exception(error)
    return future


def _settle_from(task: asyncio.Task[T], done: asyncio.Future[T]) -> None:
    """Resolve ``done`` as ``task`` ends (a direct entry's work gone on in a task)."""

    def copy(_: asyncio.Task[T]) -> None:
        if done.cancelled():
            if not task.cancelled():
                task.exception()  # seen: nobody waits for it any more
            return
        if task.cancelled():
            done.cancel()
        elif (error := task.exception()) is not None:
            done.set_exception(error)
        else:
            done.set_result(task.result())

    task.add_done_callback(copy)


def _retrieve_exception(task: asyncio.Task[None]) -> None:
    """Mark a shared fence's failure as seen (every waiter got it through a shield)."""
    if not task.cancelled():
        task.exception()


def _describe(result: ScsiResult) -> str:
    from mpath.scsi.sense import decode_sense

    if result.status == ScsiStatus.CHECK_CONDITION:
        sense = decode_sense(result.sense)
        if sense is not None:
            return f"CHECK CONDITION, {sense}"
    try:
        return f"status {ScsiStatus(result.status).name.replace('_', ' ')}"
    except ValueError:
        return f"status 0x{result.status:02x}"
