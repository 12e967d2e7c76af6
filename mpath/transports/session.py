"""The libiscsi session core: one libiscsi context driven by the asyncio event loop.

Every iSCSI session mpath opens goes through here: the transport's normal sessions
(:class:`mpath.transports.iscsi.IscsiTransport`, which adds SCSI commands), and the
discovery sessions that ask a portal for its targets (:class:`DiscoverySession`). This
module owns what they share:

* **the context**: :func:`new_context` creates and configures it (initiator name,
  session type, target name, digests, CHAP, ISID), the same way for every session, so
  every login offers the same things (see :data:`NO_CHAP_USER` for why a login without
  CHAP still passes through security negotiation);
* **the service loop**: libiscsi never blocks; :class:`LibiscsiSession` registers its
  socket with the loop for exactly the events libiscsi asks for
  (``iscsi_which_events``), calls ``iscsi_service`` when they happen, and follows the
  events it wants next;
* **session-level steps** (login, NOP-Out, SendTargets, logout): one long-lived C
  callback resolves the future of the step whose integer key libiscsi hands back;
  :meth:`LibiscsiSession.step` starts a step and awaits it.

Errors from libiscsi are reported here as status codes and libiscsi's text; the
sessions built on this translate them into :mod:`mpath.transports.base` errors.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any

from mpath.transports import libiscsi as li
from mpath.transports.base import TransportError
from mpath.transports.socket_watch import SocketWatch
from mpath.transports.tcp import LinkState, read_link

if TYPE_CHECKING:
    from mpath.config.chap import ChapCredentials

log = logging.getLogger(__name__)
ffi = li.ffi

#: Login credentials for a target that has no CHAP account. libiscsi skips the
#: security negotiation stage of a login when no CHAP user is set; with one, it offers
#: "AuthMethod=CHAP,None" and a target without accounts answers None. Going through
#: that stage matters: tgt reinstates an existing session (same initiator name and
#: ISID, TSIH 0) only there, and reinstatement is how a failed path is fenced.
NO_CHAP_USER = b"mpath"
NO_CHAP_SECRET = b"mpath-offers-chap-or-none"

#: Keys handed to libiscsi as private_data; one counter for every kind of callback.
keys = itertools.count(1)


@dataclass(slots=True)
class _Waiter:
    session: LibiscsiSession
    future: asyncio.Future[tuple[int, str, Any]]
    #: Reads the callback's data while it is valid (libiscsi frees it afterwards).
    read: Callable[[Any], Any] | None


#: Session-level steps in flight in this process, by private_data key.
_WAITERS: dict[int, _Waiter] = {}


def callback_error(
    exc_type: type[BaseException] | None,
    exc: BaseException | None,
    tb: TracebackType | None,
) -> None:
    """An exception escaped a libiscsi callback: log it (C cannot propagate it)."""
    log.error("error in libiscsi callback", exc_info=(exc_type, exc, tb))  # type: ignore[arg-type]


def _session_event(_ctx: Any, status: int, data: Any, key: int) -> None:
    """libiscsi finished a session-level step (login, NOP-Out, SendTargets, logout)."""
    waiter = _WAITERS.pop(key, None)
    if waiter is None:
        return
    payload = None
    if status == li.SCSI_STATUS_GOOD:
        reason = ""
        if waiter.read is not None:
            payload = waiter.read(data)
    elif status == li.SCSI_STATUS_CANCELLED:
        reason = waiter.session.cancel_reason()
    else:
        reason = waiter.session.error_text()
    if not waiter.future.done():
        waiter.future.set_result((status, reason, payload))


#: The one long-lived C callback for session-level steps (see the module docstring).
session_event_cb = ffi.callback(li.CALLBACK_TYPE, _session_event, onerror=callback_error)


class ContextError(Exception):
    """A libiscsi context could not be created or configured (the reason is the text)."""


def new_context(
    lib: Any,
    *,
    initiator: bytes,
    session_type: int,
    target: bytes | None = None,
    digest: int = li.ISCSI_HEADER_DIGEST_NONE_CRC32C,
    chap: ChapCredentials | None = None,
    isid: bytes | None = None,
) -> Any:
    """A fresh libiscsi context configured for one login; raises :class:`ContextError`.

    Auto-reconnect is off (the filter layer decides what a lost session means). ``isid``
    (6 bytes, random format) names the session to the target; None lets libiscsi draw
    one. Without ``chap`` the login still offers CHAP-or-None (:data:`NO_CHAP_USER`).
    """
    ctx = lib.iscsi_create_context(initiator)
    if ctx == ffi.NULL:
        raise ContextError("cannot create a libiscsi context (out of memory?)")
    failed = (
        (target is not None and lib.iscsi_set_targetname(ctx, target))
        or lib.iscsi_set_session_type(ctx, session_type)
        or lib.iscsi_set_header_digest(ctx, digest)
        or (
            li.set_chap(lib, ctx, chap)
            if chap is not None
            else lib.iscsi_set_initiator_username_pwd(ctx, NO_CHAP_USER, NO_CHAP_SECRET)
        )
        or (
            isid is not None
            and lib.iscsi_set_isid_random(
                ctx, int.from_bytes(isid[1:4], "big"), int.from_bytes(isid[4:6], "big")
            )
        )
    )
    if failed:
        reason = li.error_text(lib, ctx)
        lib.iscsi_destroy_context(ctx)
        raise ContextError(f"cannot configure the session: {reason}")
    lib.iscsi_set_noautoreconnect(ctx, 1)
    return ctx


class LibiscsiSession:
    """One libiscsi context on the event loop: its socket, its service, its steps.

    Subclasses create the context (:func:`new_context`) into ``_ctx``, and may refine
    :meth:`_service` (the transport tears a broken session down there),
    :meth:`cancel_reason` and :meth:`_lost_socket`.
    """

    def __init__(self) -> None:
        self._lib: Any = None
        self._ctx: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._socket = SocketWatch(self._service)
        self._waiter_keys: set[int] = set()
        self._last_reason = "not connected"

    def error_text(self) -> str:
        """libiscsi's last error on this session, or why the session is gone."""
        if self._ctx is None or self._lib is None:
            return self._last_reason
        return li.error_text(self._lib, self._ctx)

    def cancel_reason(self) -> str:
        """Why libiscsi cancelled a step (refined by the transport)."""
        return self.error_text()

    async def step(
        self,
        start: Callable[[int], int],
        *,
        read: Callable[[Any], Any] | None = None,
        write_now: bool = False,
    ) -> tuple[int, str, Any]:
        """Start one session-level step and wait for its callback.

        ``start(key)`` calls the ``*_async`` function with :data:`session_event_cb` and
        ``key``; a non-zero return means libiscsi refused to start it, which raises
        :class:`StepNotStartedError` with libiscsi's reason. ``write_now`` sends the request
        at once (a session that is already connected); otherwise the socket is watched
        for what libiscsi wants (a connect in progress). Returns (status, reason,
        what ``read`` made of the callback's data). Cancelling the caller is safe: the
        late callback finds no waiter.
        """
        loop = self._loop
        assert loop is not None and self._ctx is not None
        key = next(keys)
        future: asyncio.Future[tuple[int, str, Any]] = loop.create_future()
        _WAITERS[key] = _Waiter(self, future, read)
        self._waiter_keys.add(key)
        try:
            if start(key):
                raise StepNotStartedError(self.error_text())
            if write_now:
                self._service(li.POLLOUT)
            else:
                self._watch(self._lib.iscsi_which_events(self._ctx))
            return await future
        finally:
            _WAITERS.pop(key, None)
            self._waiter_keys.discard(key)

    def link(self) -> LinkState | None:
        """What the session's TCP connection says about the network now (None: no
        socket): read by the stall watchdog when every path is silent."""
        if self._ctx is None or self._lib is None:
            return None
        fd = self._lib.iscsi_get_fd(self._ctx)
        return read_link(fd) if fd >= 0 else None

    def fail_steps(self, reason: str) -> None:
        """Resolve every step still waiting as cancelled (the session is going away)."""
        for key in list(self._waiter_keys):
            waiter = _WAITERS.pop(key, None)
            if waiter is not None and not waiter.future.done():
                waiter.future.set_result((li.SCSI_STATUS_CANCELLED, reason, None))
        self._waiter_keys.clear()

    def destroy_context(self) -> Any:
        """Stop watching the socket and forget the context; returns it (or None)."""
        self._socket.clear()
        ctx, self._ctx = self._ctx, None
        return ctx

    # -- the socket and the event loop ----------------------------------------------------

    def _service(self, revents: int) -> None:
        """Let libiscsi handle socket events; then follow the events it wants next."""
        ctx = self._ctx
        if ctx is None:
            return
        if self._lib.iscsi_service(ctx, revents) < 0:
            self.fail_steps(self.error_text())
            return
        events = self._lib.iscsi_which_events(ctx)
        if events != self._socket.events:
            self._watch(events)

    def _watch(self, events: int) -> None:
        """Register the socket with the loop for exactly ``events`` (POLLIN/POLLOUT)."""
        assert self._loop is not None
        fd = self._lib.iscsi_get_fd(self._ctx)
        if fd < 0:
            self._lost_socket()
            return
        self._socket.update(self._loop, fd, events)

    def _lost_socket(self) -> None:
        """libiscsi has no socket any more (refined by the transport)."""
        self._socket.clear()


class StepNotStartedError(Exception):
    """libiscsi refused to start a step; the text is its reason."""


class DiscoverySession(LibiscsiSession):
    """One discovery session: connect, log in, SendTargets, log out.

    ``portal`` is ``host:port`` as libiscsi takes it. :meth:`send_targets` returns the
    raw (target name, [TargetAddress texts]) pairs; parsing the addresses is the
    caller's business.
    """

    def __init__(self, portal: str, initiator: str, chap: ChapCredentials | None) -> None:
        super().__init__()
        self._portal = portal
        self._initiator = initiator.encode()
        self._chap = chap

    async def send_targets(
        self, timeout: float, logout_timeout: float
    ) -> list[tuple[str, list[str]]]:
        """Log in, ask for every target, log out; raise TransportError on failure."""
        self._loop = asyncio.get_running_loop()
        try:
            self._lib = lib = li.load()
        except OSError as exc:
            raise TransportError(
                self._portal, f"cannot load {li.LIBRARY_NAME} ({exc}): install libiscsi7"
            ) from None
        portal = self._portal.encode()
        try:
            async with asyncio.timeout(timeout):
                try:
                    self._ctx = new_context(
                        lib,
                        initiator=self._initiator,
                        session_type=li.ISCSI_SESSION_DISCOVERY,
                        chap=self._chap,
                    )
                except ContextError as exc:
                    raise TransportError(self._portal, str(exc)) from None
                await self._checked(
                    "login",
                    lambda key: lib.iscsi_full_connect_async(
                        self._ctx, portal, -1, session_event_cb, key
                    ),
                )
                targets: list[tuple[str, list[str]]] = await self._checked(
                    "SendTargets",
                    lambda key: lib.iscsi_discovery_async(self._ctx, session_event_cb, key),
                    read=li.discovery_addresses,
                )
            try:
                async with asyncio.timeout(logout_timeout):
                    await self._checked(
                        "logout",
                        lambda key: lib.iscsi_logout_async(self._ctx, session_event_cb, key),
                    )
            except (TimeoutError, TransportError):
                pass  # the answer is in; a logout the portal ignores changes nothing
            return targets
        except TimeoutError:
            raise TransportError(
                self._portal,
                f"no answer within {timeout:g} s (unreachable, or not an iSCSI portal)",
            ) from None
        finally:
            ctx = self.destroy_context()
            if ctx is not None:
                lib.iscsi_destroy_context(ctx)

    async def _checked(
        self, what: str, start: Callable[[int], int], read: Callable[[Any], Any] | None = None
    ) -> Any:
        try:
            status, reason, payload = await self.step(start, read=read)
        except StepNotStartedError as exc:
            raise TransportError(self._portal, f"{what}: {exc}") from None
        if status != li.SCSI_STATUS_GOOD:
            raise TransportError(self._portal, f"{what} failed: {reason}")
        return payload
