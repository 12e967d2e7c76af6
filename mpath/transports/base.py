"""The contract between the filter layer and a transport (one path to one LUN).

A transport carries SCSI commands over one path. It reports what the *target* said
(status byte, sense data, data-in) as a :class:`ScsiResult`, and what went wrong with
the *path* itself (connection lost, login refused, session closed) as a
:class:`TransportError`. Deciding what a result means (fail over, retry, return the
error) is the filter layer's job, through the sense table in :mod:`mpath.scsi`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from mpath.errors import MpathError
from mpath.scsi.status import ScsiStatus
from mpath.transports.tcp import LinkState


@dataclass(frozen=True, slots=True)
class ScsiResult:
    """What the target answered to one command.

    ``status`` is the SCSI status byte; ``sense`` the raw sense data (empty unless
    CHECK CONDITION); ``data`` the data-in bytes actually received (empty for commands
    without data-in); ``residual`` the bytes of the requested data-in not transferred.
    """

    status: int
    sense: bytes = b""
    data: bytes = b""
    residual: int = 0

    @property
    def good(self) -> bool:
        return self.status == ScsiStatus.GOOD


class TransportError(MpathError):
    """The path failed (not the medium, not the command): the filter may fail over.

    ``url`` names the path.
    """

    def __init__(self, url: str, message: str) -> None:
        super().__init__(f"{url}: {message}")
        self.url = url


class LoginError(TransportError):
    """The session could not be established (unreachable portal, refused login)."""


class PathDisconnectedError(TransportError):
    """The session broke or was closed while the command was outstanding or queued.

    ``sent`` is False only when the command certainly never left this host (the
    session was already down when it was submitted): such a write may be reissued
    elsewhere at once. Otherwise its outcome is unknown until the path is fenced.
    """

    def __init__(self, url: str, message: str, *, sent: bool = True) -> None:
        super().__init__(url, message)
        self.sent = sent


class FenceError(TransportError):
    """A failed path could not (yet) be made unable to execute what it still holds.

    Raised by :meth:`Fenceable.fence`; the filter layer retries within
    ``fence_timeout`` and never reissues a write of unknown outcome before a fence
    succeeded.
    """


class FenceUnavailableError(FenceError):
    """No fence of this transport's kind can ever be made through that path.

    For iSCSI: the path leads to another target portal group (a login there is a new
    session, not a reinstatement) or to another target. Retrying cannot help; the
    filter layer applies ``unfenceable_writes`` when no other method is left.
    """


class CommandTimeoutError(TransportError):
    """The command got no answer within its deadline."""


@runtime_checkable
class Transport(Protocol):
    """One path to one LUN, carrying many commands at once.

    * ``connect`` logs in (raising :class:`LoginError`); it may be called again after
      ``close`` to log in afresh (reinstatement).
    * ``execute`` sends one command and returns when the target answered. Many may be
      outstanding at once. Cancelling the awaiting task is safe; the command may still
      reach the target unless ``close`` follows.
    * ``close`` tears the session down *at once* (the socket is closed before it
      returns), so no command still queued or outstanding can reach the target after
      it; every outstanding ``execute`` then raises :class:`PathDisconnectedError`.
      Safe to call twice.
    * ``max_commands`` is how many commands the target lets this session have
      outstanding (for iSCSI, the CmdSN window), or None when unknown.
    """

    @property
    def url(self) -> str: ...

    @property
    def connected(self) -> bool: ...

    @property
    def max_commands(self) -> int | None: ...

    async def connect(self) -> None: ...

    async def execute(
        self,
        cdb: bytes,
        *,
        data_out: bytes | memoryview | None = None,
        data_in_length: int = 0,
    ) -> ScsiResult: ...

    async def close(self) -> None: ...


#: What a :class:`DirectSubmit` transport calls with a command's outcome: the
#: target's answer, or the :class:`TransportError` ``execute`` would have raised.
Answer = Callable[["ScsiResult | TransportError"], None]


@runtime_checkable
class DirectSubmit(Protocol):
    """A transport that can send a command from a plain call (the iSCSI one can).

    ``submit`` sends the command (or raises as ``execute`` would, before anything was
    sent) and calls ``on_answer`` once with the outcome, from the transport's own
    completion handling, which must not be re-entered: ``on_answer`` only records
    and resolves, and leaves any further I/O to a later callback or task. For such a
    transport ``execute`` is ``submit`` plus a future. It exists so the filter
    layer's direct read path (:meth:`mpath.filter.device.MultipathDevice.start_read`)
    costs no coroutine and no future hop per command; other transports are run
    there with ``execute`` in a task.
    """

    def submit(
        self,
        cdb: bytes,
        *,
        data_out: bytes | memoryview | None = None,
        data_in_length: int = 0,
        on_answer: Answer,
    ) -> None: ...


@runtime_checkable
class LinkAware(Protocol):
    """A transport over TCP that can say whether the network still carries its bytes.

    ``link`` reads the connection's TCP state (:class:`~mpath.transports.tcp.LinkState`;
    None when there is no connection), and ``nop`` sends a ping the target's kernel
    acknowledges even while the target's SCSI layer answers nothing. The stall
    watchdog uses both on a busy path silent past its own limit, and weighs the answer
    when every path is silent (:mod:`mpath.filter.stall`).
    """

    def link(self) -> LinkState | None: ...

    async def nop(self) -> None: ...


@runtime_checkable
class Fenceable(Protocol):
    """A transport that can stop its own failed session from executing anything more.

    ``fence(through)`` returns only when no command this path sent before it failed
    can still be executed by the target: for iSCSI, a login that reinstates the
    failed session (same initiator name and ISID, TSIH 0), made through ``through``'s
    portal (another, working path to the same target) or through its own portal when
    ``through`` is None; for a block device, once every system call it issued has
    returned. Raises :class:`FenceError` with the reason when that cannot be done now.
    ``relogin_fences`` says whether this path's own successful re-login is itself a
    fence (true for iSCSI: it reinstates the old session). An iSCSI session is named
    by initiator, ISID, target and target portal group: a fence goes only through a
    portal of the failed session's own group (``fence_scope``), learned while the path
    worked (``prepare_fence``).
    """

    @property
    def relogin_fences(self) -> bool: ...

    @property
    def fence_method(self) -> str:
        """How this path is fenced (``session-reinstatement``, ``drain``), for display."""
        ...

    @property
    def fence_identity(self) -> str | None:
        """What names this path's session to the target (the ISID), or None."""
        ...

    @property
    def fence_scope(self) -> str | None:
        """Where a fence of this path must be made from, for messages (iSCSI: ``target
        portal group N``), or None when any working path will do."""
        ...

    async def prepare_fence(self) -> None:
        """Learn, while the path works, what a later fence will need (iSCSI: the
        portal's target portal group). Called after each login; may raise
        :class:`TransportError`, which only leaves the path harder to fence."""
        ...

    async def fence(self, through: Transport | None) -> None: ...


__all__ = [
    "CommandTimeoutError",
    "FenceError",
    "Fenceable",
    "LoginError",
    "PathDisconnectedError",
    "ScsiResult",
    "ScsiStatus",  # defined in mpath.scsi.status; re-exported for transports' users
    "Transport",
    "TransportError",
]
