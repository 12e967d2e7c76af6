"""The iSCSI transport: one libiscsi session per path, many commands in flight, on asyncio.

:class:`IscsiTransport` implements :class:`mpath.transports.base.Transport` over
libiscsi's asynchronous C API (through the cffi binding in
:mod:`mpath.transports.libiscsi`). docs/transports.md explains the design; in short:

* **The session core.** Context setup, the service loop and session-level steps
  (login, NOP-Out, logout) come from :mod:`mpath.transports.session`, shared with the
  discovery sessions; this module adds SCSI commands, teardown and fencing.
* **Event loop integration.** libiscsi never blocks and owns no thread: it tells us
  which poll events its socket needs (``iscsi_which_events``) and does its work when
  we call ``iscsi_service`` with the events that happened. The transport registers the
  socket with the asyncio loop (``add_reader`` / ``add_writer``) for exactly those
  events, re-evaluates them after every service call, and touches the registration
  only when the set changes. A new command is written out at once (one
  ``iscsi_service(POLLOUT)``), so the writer is only registered while the socket
  buffer is full; one ``iscsi_service(POLLIN)`` per wake-up drains every response
  that has arrived.
* **Callbacks.** libiscsi reports every completion through a C callback. There is
  one long-lived cffi callback per kind (commands; session events), made at import;
  each command passes an integer key as ``private_data``, and a module-level table
  maps the key to its Python record and answer callback. No cffi callback is created per
  command; reads are received straight into the ``bytes`` object returned.
* **Failures.** libiscsi's own reconnect is off (``iscsi_set_noautoreconnect(1)``):
  when the connection breaks, libiscsi cancels every outstanding command, and the
  transport tears the session down and fails every outstanding command at once with
  :class:`~mpath.transports.base.PathDisconnectedError`. It never reconnects or
  retries by itself; the filter layer decides what a failure means.
* **Errors** from libiscsi (return codes, status values above 0xff, the error string)
  are translated here, and only here, into the classes of
  :mod:`mpath.transports.base`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
import os
import socket
import struct
import sys
from typing import TYPE_CHECKING, Any

from mpath.errors import UsageError
from mpath.scsi.sense import SenseKey, decode_sense
from mpath.transports import libiscsi as li
from mpath.transports.base import (
    Answer,
    CommandTimeoutError,
    FenceError,
    FenceUnavailableError,
    LoginError,
    PathDisconnectedError,
    ScsiResult,
    ScsiStatus,
    Transport,
    TransportError,
)
from mpath.transports.session import (
    ContextError,
    DiscoverySession,
    LibiscsiSession,
    StepNotStartedError,
    callback_error,
    keys,
    new_context,
    session_event_cb,
)
from mpath.transports.urls import IscsiUrl, parse_iscsi_url, portal_groups

if TYPE_CHECKING:
    from mpath.config.chap import ChapCredentials

log = logging.getLogger(__name__)

#: The initiator name mpath logs in with unless told otherwise. Real arrays usually
#: grant LUNs by initiator name (ACLs), so pass the host's configured name there.
DEFAULT_INITIATOR_NAME = "iqn.2026-11.org.mpath:initiator"
#: Seconds connect() waits for TCP connect + login + the first TEST UNIT READY. TCP's
#: own SYN retries would take minutes against a black-holed portal.
DEFAULT_LOGIN_TIMEOUT = 5.0
#: Seconds the SendTargets exchange that learns the portals' groups may take, and its
#: polite logout.
PORTAL_GROUPS_TIMEOUT = 2.0
PORTAL_GROUPS_LOGOUT_TIMEOUT = 0.5
#: How often connect() re-sends TEST UNIT READY while the LUN reports UNIT ATTENTION
#: (power on, reset, ...: normal right after a login), as libiscsi itself does.
MAX_LOGIN_UNIT_ATTENTIONS = 10

_TEST_UNIT_READY = bytes(6)
_ASC_LOGICAL_UNIT_NOT_SUPPORTED = 0x25
ffi = li.ffi


#: Whether reads may be received straight into the ``bytes`` object they return: only
#: on CPython, where cffi's from_buffer() points into the object itself.
_ZERO_COPY = sys.implementation.name == "cpython"

#: Outstanding commands of every transport in this process, by private_data key.
_COMMANDS: dict[int, _Command] = {}


def _command_done(_ctx: Any, status: int, _task: Any, key: int) -> None:
    """libiscsi finished (or cancelled) the command with this key."""
    cmd = _COMMANDS.pop(key, None)
    if cmd is None:
        return
    try:
        cmd.transport._complete(cmd, status)
    except Exception as exc:
        # Never leave the caller waiting on a bug or a MemoryError here.
        cmd.answer(TransportError(cmd.transport.url, f"completing the command failed: {exc!r}"))
        raise


def _resolve(future: asyncio.Future[ScsiResult], outcome: ScsiResult | TransportError) -> None:
    """The answer callback of :meth:`IscsiTransport.execute`: settle its future."""
    if future.done():
        return
    if isinstance(outcome, ScsiResult):
        future.set_result(outcome)
    else:
        future.set_exception(outcome)


#: The long-lived C callback for commands (made once: a cffi callback per command would
#: be slow and would leak executable memory). Session-level steps have theirs in
#: mpath.transports.session.
_command_done_cb = ffi.callback(li.CALLBACK_TYPE, _command_done, onerror=callback_error)


class _Command:
    """One command outstanding in libiscsi: what is needed to finish it and clean up."""

    __slots__ = ("buffer", "keep_alive", "key", "length", "on_answer", "task", "transport")

    def __init__(
        self,
        key: int,
        transport: IscsiTransport,
        on_answer: Answer,
        task: Any,
        buffer: bytes | bytearray | None,
        length: int,
        keep_alive: Any,
    ) -> None:
        self.key = key
        self.transport = transport
        #: Called once with the outcome (then set to None).
        self.on_answer: Answer | None = on_answer
        self.task = task
        #: The object the data-in lands in (see _new_data_in_buffer), or None.
        self.buffer = buffer
        self.length = length
        #: The cdata pointer libiscsi reads data-out from / writes data-in to: it (and
        #: the object behind it) must live until libiscsi is done with the command.
        self.keep_alive = keep_alive

    def answer(self, outcome: ScsiResult | TransportError) -> None:
        """Give the command's outcome to whoever sent it; only the first one counts."""
        on_answer, self.on_answer = self.on_answer, None
        if on_answer is not None:
            on_answer(outcome)


def _new_data_in_buffer(size: int) -> bytes | bytearray:
    """The object one read's data-in is received into, and (usually) returned as.

    On CPython this is a brand-new ``bytes`` object that libiscsi fills in place, as C
    code fills a fresh ``PyBytes_FromStringAndSize(NULL, n)`` before anyone else can
    see it (``bytes(n)`` for n >= 2 is always a new, unshared, unhashed object). A read
    then costs no copy and, more importantly, no short-lived large allocation per
    completion: a 256 KiB buffer copied out at completion and freed soon after makes
    glibc grow and trim the heap for nearly every command (~55 page faults each), which
    cost more than the copy itself (docs/transports.md, Performance). It is zero-filled
    on purpose: a target that sent less than it claimed would otherwise hand the caller
    stale memory of this process. Elsewhere: a ``bytearray``, copied at completion.
    """
    if _ZERO_COPY and size >= 2:
        return bytes(size)
    return bytearray(size)


class IscsiTransport(LibiscsiSession):
    """One iSCSI session to one LUN through one portal (one path).

    ``url`` is ``iscsi://HOST[:PORT]/TARGET-IQN/LUN`` (or a parsed
    :class:`~mpath.transports.urls.IscsiUrl`); a bad URL raises
    :class:`~mpath.errors.UsageError` here, before anything is connected.
    ``initiator_name`` is the iSCSI name to log in as. ``loop`` is the event loop to
    run on (default: the running loop at :meth:`connect`). ``login_timeout`` bounds
    :meth:`connect` as a whole. ``header_digest`` asks for CRC32C header digests
    (default: offer none or CRC32C and let the target choose, like libiscsi's tools).
    ``chap`` gives CHAP credentials (one-way, or mutual) for every login.

    The transport keeps no timeout of its own on commands (libiscsi's is off): the
    caller bounds each :meth:`execute` with ``asyncio.wait_for`` and calls
    :meth:`close` when it gives up on the path.
    """

    def __init__(
        self,
        url: str | IscsiUrl,
        *,
        initiator_name: str = DEFAULT_INITIATOR_NAME,
        loop: asyncio.AbstractEventLoop | None = None,
        login_timeout: float = DEFAULT_LOGIN_TIMEOUT,
        header_digest: bool = False,
        chap: ChapCredentials | None = None,
        isid: bytes | None = None,
    ) -> None:
        super().__init__()
        self._address = url if isinstance(url, IscsiUrl) else parse_iscsi_url(url)
        #: The session's ISID, kept for every login of this path: a re-login (or a
        #: fence login through another portal) then reinstates the old session.
        self._isid = isid if isid is not None else new_isid()
        if len(self._isid) != 6 or self._isid[0] & 0xC0 != 0x80:
            raise UsageError(f"bad ISID {self._isid.hex()}: expected 6 bytes of the random type")
        #: CHAP credentials for every login (mpath.config's [[chap]] entry), or None.
        self._chap = chap
        self._url = str(url)
        if not initiator_name or len(initiator_name.encode()) > 223:
            raise UsageError(f"bad initiator name {initiator_name!r}")
        if login_timeout <= 0:
            raise UsageError(f"login timeout must be positive, not {login_timeout!r}")
        self._initiator = initiator_name.encode()
        self._target = self._address.target.encode()
        self._portal = self._address.portal.encode()
        self._lun = self._address.lun
        self._digest = (
            li.ISCSI_HEADER_DIGEST_CRC32C if header_digest else li.ISCSI_HEADER_DIGEST_NONE_CRC32C
        )
        self._login_timeout = login_timeout
        self._configured_loop = loop
        #: This path's target portal group tag, once a SendTargets answer named it.
        self._portal_group: int | None = None
        self._logged_in = False
        self._connected = False
        self._max_commands: int | None = None
        #: Why libiscsi cancelled our commands without being asked (connection lost).
        self._lost_reason: str | None = None
        #: The expected end of the connection (a logout), if one was asked for.
        self._ending: str | None = None
        #: Why the session is being torn down (set while iscsi_destroy_context runs).
        self._teardown_reason: str | None = None
        self._pending: dict[int, _Command] = {}
        #: One struct iscsi_data reused for every write (libiscsi copies its contents).
        self._data_out: Any = None

    # -- the Transport protocol ------------------------------------------------------------

    @property
    def url(self) -> str:
        return self._url

    @property
    def address(self) -> IscsiUrl:
        """The parsed URL: portal, target name and LUN."""
        return self._address

    @property
    def isid(self) -> bytes:
        """The 6-byte ISID every login of this path presents (random format, 0x80...)."""
        return self._isid

    @property
    def portal_group(self) -> int | None:
        """This path's target portal group tag, once learned (see :meth:`fence`)."""
        return self._portal_group

    @property
    def relogin_fences(self) -> bool:
        """A successful re-login of this path reinstates (ends) its old session."""
        return True

    @property
    def fence_method(self) -> str:
        return "session-reinstatement"

    @property
    def fence_identity(self) -> str | None:
        return self._isid.hex()

    @property
    def connected(self) -> bool:
        """True between a successful :meth:`connect` and the session's end."""
        return self._connected

    @property
    def max_commands(self) -> int | None:
        """The CmdSN window the target granted at login (its queue depth for us).

        Read right after login, while the session is idle, as MaxCmdSN - ExpCmdSN + 1;
        None when not logged in or when the window cannot be read safely (see
        :func:`mpath.transports.libiscsi.cmdsn_window`).
        """
        return self._max_commands if self._connected else None

    @property
    def outstanding(self) -> int:
        """Commands sent through this transport that have not completed yet."""
        return len(self._pending)

    async def connect(self) -> None:
        """Connect to the portal, log in, and check the LUN answers; raise LoginError.

        Runs entirely on the event loop (nothing blocks). After :meth:`close`, a new
        call logs in afresh with a new libiscsi context (a new session). Calling it
        while connected does nothing.
        """
        if self._connected:
            return
        if self._ctx is not None:
            raise LoginError(self._url, "a login is already in progress")
        loop = self._configured_loop or asyncio.get_running_loop()
        self._loop = loop
        try:
            lib = self._lib = li.load()
        except OSError as exc:
            raise LoginError(
                self._url, f"cannot load {li.LIBRARY_NAME} ({exc}): install libiscsi7"
            ) from None
        deadline = loop.time() + self._login_timeout
        self._open_context(lib)
        portal = self._portal
        try:
            login = self.step(
                lambda key: lib.iscsi_full_connect_async(
                    self._ctx, portal, -1, session_event_cb, key
                )
            )
            status, reason, _ = await asyncio.wait_for(login, self._login_timeout)
        except StepNotStartedError as exc:
            self._teardown(str(exc))
            raise LoginError(self._url, f"cannot start the login: {exc}") from None
        except TimeoutError:
            self._teardown("login timed out")
            raise LoginError(
                self._url,
                f"no login answer from portal {self._address.portal} within "
                f"{self._login_timeout:g} s (unreachable or not an iSCSI portal)",
            ) from None
        except BaseException:
            self._teardown("connect interrupted")
            raise
        if status != li.SCSI_STATUS_GOOD:
            self._teardown(reason or "login failed")
            raise LoginError(self._url, f"login failed: {reason or 'session closed'}")
        self._logged_in = True
        try:
            await self._absorb_unit_attentions(deadline)
        except BaseException:
            self._teardown("connect interrupted")
            raise
        self._max_commands = li.cmdsn_window(
            lib, self._ctx, initiator_name=self._initiator, target_name=self._target
        )
        self._connected = True

    async def execute(
        self,
        cdb: bytes,
        *,
        data_out: bytes | memoryview | None = None,
        data_in_length: int = 0,
    ) -> ScsiResult:
        """Send one SCSI command and return the target's answer.

        Raises :class:`PathDisconnectedError` when the session is down or breaks (or is
        closed) before the answer arrives; :class:`~mpath.errors.UsageError` for a CDB
        libiscsi cannot carry (empty, over 16 bytes) or for a bidirectional command.
        """
        if not self._connected:
            raise PathDisconnectedError(self._url, self._last_reason, sent=False)
        return await self._answer_future(cdb, data_out, data_in_length)

    def submit(
        self,
        cdb: bytes,
        *,
        data_out: bytes | memoryview | None = None,
        data_in_length: int = 0,
        on_answer: Answer,
    ) -> None:
        """Queue one SCSI command now; ``on_answer`` gets its outcome (see
        :class:`~mpath.transports.base.DirectSubmit`).

        Raises as :meth:`execute` does when the command cannot be queued. The outcome
        is the target's answer, or :class:`PathDisconnectedError` when the session
        breaks; it is given from inside libiscsi's completion (possibly before this
        returns, when the session breaks as the command is written out).
        """
        if not self._connected:
            raise PathDisconnectedError(self._url, self._last_reason, sent=False)
        self._submit(cdb, data_out, data_in_length, on_answer)

    async def close(self) -> None:
        """Tear the session down now: the socket is closed before this returns.

        Every outstanding command fails with :class:`PathDisconnectedError`; nothing
        queued can reach the target afterwards. No logout is attempted (it would have
        to wait for a path that may be dead); see :meth:`logout`. Safe to call twice.
        """
        self._teardown("session closed")

    async def fence(self, through: Transport | None) -> None:
        """End this path's old session on the target: nothing it sent can execute later.

        Logs in with this path's initiator name and ISID and TSIH 0 through
        ``through``'s portal (a working path to the same target), or through this
        path's own portal when ``through`` is None; the target then closes every
        connection of the old session and drops what arrives on them (session
        reinstatement, RFC 7143 section 6.3.5), and the fencing session is logged out.

        An iSCSI session is named by initiator name, ISID, target name *and* target
        portal group: a login through a portal of another group is a new session and
        leaves the old one running. So before logging in through another path, the
        portals' groups are read with SendTargets through ``through``'s portal, and
        the login is made only when both portals are in one group.

        Raises :class:`FenceError` when the fence cannot be made now (its message says
        why, naming the groups when they differ). Must not be called while this
        transport itself is logged in (that would end it).
        """
        if self._connected:
            raise UsageError(f"{self._url}: fence() called on a live session")
        address = self._address
        if through is not None:
            if not isinstance(through, IscsiTransport):
                raise FenceUnavailableError(self._url, f"{through.url} is not an iSCSI path")
            if through.address.target != self._address.target:
                raise FenceUnavailableError(
                    self._url,
                    f"{through.url} leads to target {through.address.target}, not "
                    f"{self._address.target}: session reinstatement works within one target",
                )
            if through.address.portal != address.portal:
                await self._check_portal_group(through)
            address = dataclasses.replace(
                address, host=through.address.host, port=through.address.port
            )
        portal = address.portal
        fencer = IscsiTransport(
            address,
            initiator_name=self._initiator.decode(),
            loop=self._configured_loop,
            login_timeout=self._login_timeout,
            chap=self._chap,
            isid=self._isid,
        )
        try:
            await fencer.connect()
        except LoginError as exc:
            raise FenceError(
                self._url, f"fencing login through portal {portal} failed: {exc.message}"
            ) from None
        await fencer.logout()
        log.info("%s: old session fenced by reinstatement through portal %s", self._url, portal)

    async def prepare_fence(self) -> None:
        """Learn this path's target portal group while it works (SendTargets through its
        own portal, which every target names in its answer: tgt names no other).

        Called by the filter layer after each login; a failure leaves the group as it
        was (unknown at first), which only makes fences through other portals refused.
        """
        groups = await self._portal_groups_via(self)
        mine = groups.get(self._address.portal)
        if mine is not None:
            self._portal_group = mine

    @property
    def fence_scope(self) -> str | None:
        """Where a reinstating login must go: ``target portal group N`` (or unknown)."""
        if self._portal_group is None:
            return "this path's target portal group (not learned)"
        return f"target portal group {self._portal_group}"

    async def _portal_groups_via(self, path: IscsiTransport) -> dict[str, int]:
        """{portal: group tag} of this target as SendTargets through ``path``'s portal
        tells it; raises :class:`FenceError` when the exchange fails."""
        session = DiscoverySession(path.address.portal, self._initiator.decode(), self._chap)
        try:
            answer = await session.send_targets(PORTAL_GROUPS_TIMEOUT, PORTAL_GROUPS_LOGOUT_TIMEOUT)
        except TransportError as exc:
            raise FenceError(
                self._url,
                f"cannot learn the target portal groups through {path.url}: {exc.message}",
            ) from None
        addresses = [a for name, found in answer if name == self._address.target for a in found]
        return portal_groups(addresses)

    async def _check_portal_group(self, through: IscsiTransport) -> None:
        """Raise :class:`FenceError` unless ``through``'s portal is in this path's group.

        libiscsi does not keep the TargetPortalGroupTag of a login answer, so groups
        come from SendTargets: this path's from its own portal while it worked
        (:meth:`prepare_fence`), ``through``'s from ``through``'s portal now. A portal
        whose group is not known never counts as in the same group.
        """
        groups = await self._portal_groups_via(through)
        theirs = groups.get(through.address.portal)
        mine = groups.get(self._address.portal, self._portal_group)
        if theirs is not None:
            through._portal_group = theirs
        if mine is None or theirs is None:
            unnamed = self._address.portal if mine is None else through.address.portal
            raise FenceError(
                self._url,
                f"the target portal group of portal {unnamed} is not known: a login "
                f"through {through.url} may be a new session, not a reinstatement",
            )
        self._portal_group = mine
        if mine != theirs:
            raise FenceUnavailableError(
                self._url,
                f"{through.url} is in target portal group {theirs}, this path in {mine}: "
                f"a login there is a new session and leaves the old one running",
            )

    async def nop(self) -> None:
        """Ping the target: NOP-Out, return when its NOP-In arrives.

        For path checkers: proves the session and the target's iSCSI layer answer,
        without touching the LU. Raises :class:`PathDisconnectedError` when the session
        is down or breaks first. Like :meth:`execute` it has no deadline of its own:
        bound it with ``asyncio.wait_for``.
        """
        ctx = self._ctx
        if ctx is None or not self._connected or self._loop is None:
            raise PathDisconnectedError(self._url, self._last_reason)
        lib = self._lib
        try:
            status, reason, _ = await self.step(
                lambda key: lib.iscsi_nop_out_async(ctx, session_event_cb, ffi.NULL, 0, key),
                write_now=True,
            )
        except StepNotStartedError as exc:
            raise PathDisconnectedError(self._url, f"cannot send a NOP-Out: {exc}") from None
        if status != li.SCSI_STATUS_GOOD:
            raise PathDisconnectedError(self._url, reason or "NOP-Out failed")

    async def logout(self, timeout: float = 1.0) -> None:
        """Log out politely if the session is up and idle, then :meth:`close`.

        For planned shutdowns: the target learns at once that the session is over
        instead of noticing a dropped connection. Waits at most ``timeout`` seconds for
        the target's answer; never raises for a failed logout.
        """
        ctx = self._ctx
        if ctx is not None and self._connected and not self._pending and self._loop:
            lib = self._lib

            def start(key: int) -> int:
                started: int = lib.iscsi_logout_async(ctx, session_event_cb, key)
                if started == 0:
                    # No new commands; and the target closing the connection after its
                    # answer is the expected end, not a lost connection.
                    self._connected = False
                    self._last_reason = self._ending = "session logged out"
                return started

            with contextlib.suppress(TimeoutError, StepNotStartedError):
                await asyncio.wait_for(self.step(start, write_now=True), timeout)
        self._teardown("session logged out")

    # -- commands -------------------------------------------------------------------------

    def _answer_future(
        self, cdb: bytes, data_out: bytes | memoryview | None, data_in_length: int
    ) -> asyncio.Future[ScsiResult]:
        """Queue one command; the future of its outcome (for callers that await)."""
        future: asyncio.Future[ScsiResult] = asyncio.get_running_loop().create_future()
        self._submit(cdb, data_out, data_in_length, functools.partial(_resolve, future))
        return future

    def _submit(
        self,
        cdb: bytes,
        data_out: bytes | memoryview | None,
        data_in_length: int,
        on_answer: Answer,
    ) -> None:
        """Queue one command in libiscsi; its callback gives ``on_answer`` the outcome."""
        ctx = self._ctx
        if ctx is None or not self._logged_in:
            raise PathDisconnectedError(self._url, self._last_reason)
        cdb_size = len(cdb)
        if not 0 < cdb_size <= li.SCSI_CDB_MAX_SIZE:
            raise UsageError(f"a CDB of {cdb_size} bytes: libiscsi carries 1 to 16 bytes")
        lib = self._lib
        buffer = None
        keep_alive = None
        data = ffi.NULL
        if data_out is not None and len(data_out):
            if data_in_length:
                raise UsageError("bidirectional commands (data-out and data-in) not supported")
            try:
                keep_alive = ffi.from_buffer("unsigned char[]", data_out)
            except (TypeError, ValueError, BufferError) as exc:
                raise UsageError(
                    f"data_out must be a contiguous bytes-like object: {exc}"
                ) from None
            data = self._data_out
            data.size = len(keep_alive)
            data.data = keep_alive
            task = lib.scsi_create_task(cdb_size, cdb, li.SCSI_XFER_WRITE, len(keep_alive))
        elif data_in_length > 0:
            task = lib.scsi_create_task(cdb_size, cdb, li.SCSI_XFER_READ, data_in_length)
            buffer = _new_data_in_buffer(data_in_length)
            keep_alive = ffi.from_buffer("unsigned char[]", buffer)
            if task != ffi.NULL and lib.scsi_task_add_data_in_buffer(
                task, data_in_length, keep_alive
            ):
                lib.scsi_free_scsi_task(task)
                task = ffi.NULL
        elif data_in_length < 0:
            raise UsageError(f"data_in_length must not be negative, not {data_in_length}")
        else:
            task = lib.scsi_create_task(cdb_size, cdb, li.SCSI_XFER_NONE, 0)
        if task == ffi.NULL:
            raise TransportError(self._url, "out of memory creating a SCSI task")
        key = next(keys)
        if lib.iscsi_scsi_command_async(ctx, self._lun, task, _command_done_cb, data, key):
            reason = self.error_text()
            lib.scsi_free_scsi_task(task)
            raise PathDisconnectedError(self._url, f"cannot queue the command: {reason}")
        cmd = _Command(key, self, on_answer, task, buffer, data_in_length, keep_alive)
        _COMMANDS[key] = cmd
        self._pending[key] = cmd
        # Write it out now rather than in a flush on the next loop iteration: libiscsi
        # sends every PDU with its own send() anyway, and a completion -> resubmit ->
        # send cycle then takes two loop iterations instead of three.
        self._service(li.POLLOUT)

    def _complete(self, cmd: _Command, status: int) -> None:
        """Turn libiscsi's answer into a ScsiResult or an error; free the task.

        Called from inside ``iscsi_service`` / ``iscsi_destroy_context`` (through the
        C callback), so neither it nor the answer callback may call back into the
        session: it reads the task, frees it and hands the outcome on.
        """
        self._pending.pop(cmd.key, None)
        task = cmd.task
        outcome: ScsiResult | TransportError
        try:
            if status in (li.SCSI_STATUS_GOOD, li.SCSI_STATUS_CONDITION_MET):
                residual = (
                    int(task.residual) if task.residual_status == li.SCSI_RESIDUAL_UNDERFLOW else 0
                )
                buffer = cmd.buffer
                if buffer is not None:
                    received = max(cmd.length - residual, 0)
                    if received == cmd.length and type(buffer) is bytes:
                        data = buffer  # zero-copy: libiscsi received straight into it
                    else:
                        data = bytes(memoryview(buffer)[:received])
                    outcome = ScsiResult(status, data=data, residual=residual)
                else:
                    outcome = ScsiResult(status, residual=residual)
            elif status == li.SCSI_STATUS_CHECK_CONDITION:
                outcome = ScsiResult(status, sense=self._sense_of(task))
            elif status <= 0xFF:
                outcome = ScsiResult(status)
            else:
                outcome = self._status_error(status)
        finally:
            self._lib.scsi_free_scsi_task(task)
        cmd.answer(outcome)

    @staticmethod
    def _sense_of(task: Any) -> bytes:
        """The sense data of a CHECK CONDITION: libiscsi keeps the raw data segment
        (a 2-byte big-endian length, then the sense bytes) in ``task->datain``."""
        size = int(task.datain.size)
        if size < 2 or task.datain.data == ffi.NULL:
            return b""
        raw: bytes = ffi.buffer(task.datain.data, size)[:]
        length = int.from_bytes(raw[:2], "big")
        return raw[2 : 2 + length]

    def _status_error(self, status: int) -> TransportError:
        """The error for one of libiscsi's own (non-SCSI) outcomes of a command."""
        if status == li.SCSI_STATUS_CANCELLED:
            return PathDisconnectedError(self._url, self.cancel_reason())
        if status == li.SCSI_STATUS_TIMEOUT:
            return CommandTimeoutError(self._url, "libiscsi timed the command out")
        if status == li.SCSI_STATUS_ERROR:
            return TransportError(self._url, f"command failed: {self.error_text()}")
        return TransportError(self._url, f"unexpected libiscsi status {status:#x}")

    # -- the socket and the event loop ----------------------------------------------------

    def _service(self, revents: int) -> None:
        """Let libiscsi handle socket events; then follow the events it wants next."""
        ctx = self._ctx
        if ctx is None:
            return
        if self._lib.iscsi_service(ctx, revents) < 0 or self._lost_reason is not None:
            self._teardown(self._lost_reason or self._ending or self._loss_reason())
            return
        events = self._lib.iscsi_which_events(ctx)
        if events != self._socket.events:
            self._watch(events)

    def _lost_socket(self) -> None:
        self._teardown("libiscsi has no socket")

    # -- session life cycle ---------------------------------------------------------------

    def _open_context(self, lib: Any) -> None:
        """Create and configure a fresh libiscsi context (one per login)."""
        try:
            ctx = new_context(
                lib,
                initiator=self._initiator,
                session_type=li.ISCSI_SESSION_NORMAL,
                target=self._target,
                digest=self._digest,
                chap=self._chap,
                isid=self._isid,
            )
        except ContextError as exc:
            raise LoginError(self._url, str(exc)) from None
        self._ctx = ctx
        self._data_out = ffi.new("struct iscsi_data *")
        self._lost_reason = None
        self._teardown_reason = None
        self._ending = None
        self._socket.clear()

    async def _absorb_unit_attentions(self, deadline: float) -> None:
        """TEST UNIT READY until the LUN stops reporting UNIT ATTENTION.

        libiscsi can do this itself inside its connect, but 1.19.0 dereferences a NULL
        task there if the session is torn down at that moment, so mpath passes LUN -1
        (no check) and does it here. It also proves the LUN exists: a target without
        it answers ILLEGAL REQUEST / LOGICAL UNIT NOT SUPPORTED.
        """
        loop = self._loop
        assert loop is not None
        for _ in range(MAX_LOGIN_UNIT_ATTENTIONS):
            remaining = deadline - loop.time()
            try:
                if remaining <= 0:
                    raise TimeoutError
                result = await asyncio.wait_for(
                    self._answer_future(_TEST_UNIT_READY, None, 0), remaining
                )
            except TimeoutError:
                self._teardown("login timed out")
                raise LoginError(
                    self._url,
                    f"no answer to TEST UNIT READY within {self._login_timeout:g} s of login",
                ) from None
            except TransportError as exc:
                self._teardown(str(exc))
                raise LoginError(self._url, f"session lost right after login: {exc}") from None
            if result.status != ScsiStatus.CHECK_CONDITION:
                return  # GOOD, or BUSY/RESERVATION CONFLICT...: the LUN is there.
            sense = decode_sense(result.sense)
            if sense is None:
                return
            key, asc, ascq = sense.key, sense.asc, sense.ascq
            if key == SenseKey.UNIT_ATTENTION:
                continue
            if key == SenseKey.NOT_READY:
                return  # no medium, becoming ready: the LUN exists; I/O will say more.
            self._teardown("login refused")
            if key == SenseKey.ILLEGAL_REQUEST and asc == _ASC_LOGICAL_UNIT_NOT_SUPPORTED:
                raise LoginError(self._url, f"target {self._address.target} has no LUN {self._lun}")
            raise LoginError(
                self._url,
                f"LUN {self._lun} refused TEST UNIT READY "
                f"(sense key {key:#x}, ASC/ASCQ {asc:#04x}/{ascq:#04x})",
            )
        self._teardown("login refused")
        raise LoginError(
            self._url,
            f"LUN {self._lun} still reports UNIT ATTENTION after "
            f"{MAX_LOGIN_UNIT_ATTENTIONS} TEST UNIT READY",
        )

    def _teardown(self, reason: str) -> None:
        """End the session now: close the socket, fail everything outstanding.

        The socket is first set to reset on close (:func:`_discard_unsent`), so that
        nothing still in its send buffer can reach the target later.
        ``iscsi_destroy_context`` then closes it and cancels every
        command libiscsi still holds; their callbacks answer them with
        PathDisconnectedError(reason). Anything libiscsi did not report back (it skips
        callbacks for sessions that never logged in) is failed and freed here.
        """
        ctx = self._ctx
        if ctx is None:
            return
        self._ctx = None
        self._connected = False
        self._logged_in = False
        self._last_reason = reason
        self._socket.clear()
        self._teardown_reason = reason
        _discard_unsent(self._lib.iscsi_get_fd(ctx))
        try:
            self._lib.iscsi_destroy_context(ctx)
        finally:
            leftovers = list(self._pending.values())
            self._pending.clear()
            for cmd in leftovers:
                _COMMANDS.pop(cmd.key, None)
                self._lib.scsi_free_scsi_task(cmd.task)
                try:
                    cmd.answer(PathDisconnectedError(self._url, reason))
                except Exception:  # one sender's bug must not strand the others
                    log.exception("%s: answering a cancelled command failed", self._url)
            self.fail_steps(reason)
            self._data_out = None
            self._teardown_reason = None
            self._lost_reason = None
        if reason not in ("session closed", "session logged out"):
            log.info("%s: session ended: %s", self._url, reason)

    def cancel_reason(self) -> str:
        """Why libiscsi cancelled a command or request.

        Either we are tearing the session down, or (not asked for: with auto-reconnect
        off) libiscsi is telling us the connection broke; then the reason is recorded
        once and _service() tears the session down as soon as libiscsi returns.
        """
        if self._teardown_reason is not None:
            return self._teardown_reason
        if self._lost_reason is None:
            self._lost_reason = self._loss_reason()
        return self._lost_reason

    def _loss_reason(self) -> str:
        """Why the connection broke, in one line.

        libiscsi does not always say (a target closing the connection sets no error,
        so its error string may still describe an older event); the socket itself
        does: a pending socket error, or end-of-stream. Only libiscsi knows about
        protocol errors, so its text is the fallback.
        """
        if self._socket.fd >= 0:
            try:
                with socket.socket(fileno=os.dup(self._socket.fd)) as sock:
                    error = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                    if error:
                        return f"connection lost: {os.strerror(error)}"
                    try:
                        if sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b"":
                            return "connection closed by the target"
                    except BlockingIOError:
                        pass
            except OSError as exc:
                return f"connection lost: {exc.strerror or exc}"
        return f"connection lost: {self.error_text()}"

    def __repr__(self) -> str:
        state = "connected" if self._connected else "disconnected"
        return f"<IscsiTransport {self._url} {state}, {len(self._pending)} outstanding>"


def new_isid() -> bytes:
    """A fresh ISID of the random format (RFC 7143 section 10.12.5: type 0x80).

    Random, so that two mpath processes on one host (or two paths of one process)
    never present the same ISID and reinstate each other's sessions.
    """
    return bytes([0x80]) + os.urandom(5)


#: SO_LINGER with a zero timeout: close() resets the connection and throws away
#: whatever the socket still holds unsent.
_LINGER_RESET = struct.pack("ii", 1, 0)


def _discard_unsent(fd: int) -> None:
    """Make the coming close() of ``fd`` reset the connection, dropping unsent data.

    A normal close() leaves an orphaned TCP socket that keeps retransmitting what it
    still holds; on a path that only *seemed* dead (packets dropped for a while), a
    write retransmitted after its retry on another path would overwrite newer data on
    the target. With the send buffer discarded, nothing of this session can reach the
    target once the path is torn down.
    """
    if fd < 0:
        return
    try:
        sock = socket.socket(fileno=os.dup(fd))
    except OSError:
        return
    with sock, contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)
