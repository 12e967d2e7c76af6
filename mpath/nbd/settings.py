"""What an NBD export is configured with and counts, and what it needs of a device."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from mpath.errors import UsageError


class BlockDevice(Protocol):
    """What the server needs from a device: :class:`~mpath.filter.MultipathDevice` fits.

    ``read``/``write`` take block-aligned offsets and lengths; the server does the
    read-modify-write for unaligned client requests itself.
    """

    @property
    def block_size(self) -> int: ...

    @property
    def size_bytes(self) -> int: ...

    async def read(self, offset: int, length: int) -> bytes: ...

    async def write(
        self, offset: int, data: bytes | bytearray | memoryview, *, fua: bool = False
    ) -> None: ...

    async def flush(self) -> None: ...


@runtime_checkable
class DirectIO(Protocol):
    """A device that can start a read or a write without a coroutine
    (:class:`MultipathDevice` can: ``start_read``, ``start_write``). The server then
    serves whole-block reads and writes with no task of its own; other devices are
    served in a task per request."""

    def start_read(self, offset: int, length: int) -> asyncio.Future[bytes]: ...

    def start_write(
        self, offset: int, data: bytes | bytearray | memoryview
    ) -> asyncio.Future[None]: ...


class Extent(Protocol):
    """A range of the device and whether it holds data (see :class:`SavingCommands`)."""

    @property
    def offset(self) -> int: ...
    @property
    def length(self) -> int: ...
    @property
    def allocated(self) -> bool: ...


class SavingCommands(Protocol):
    """Zeroing, deallocation and mapping by the device itself (one small command each).

    :class:`~mpath.filter.provisioning.Provisioned` fits. Offsets and lengths are whole
    blocks; ``write_zeroes`` and ``unmap`` return False when the LU refused the command
    (the server then falls back or refuses the request).
    """

    @property
    def can_write_same(self) -> bool: ...
    @property
    def can_unmap(self) -> bool: ...
    @property
    def can_fast_zero(self) -> bool: ...
    @property
    def can_map(self) -> bool: ...
    @property
    def holes_read_zeroes(self) -> bool: ...

    async def write_zeroes(self, offset: int, length: int, *, unmap: bool = False) -> bool: ...

    async def unmap(self, offset: int, length: int) -> bool: ...

    async def extents(self, offset: int, length: int) -> Sequence[Extent] | None: ...


@dataclass(frozen=True, slots=True)
class ServeSettings:
    """How the server behaves; every limit exists so one client cannot exhaust it.

    * ``read_only``: advertise ``NBD_FLAG_READ_ONLY`` and refuse writes with ``EPERM``.
    * ``max_connections``: connections served at once; more are closed at once.
    * ``max_requests``: requests in flight per connection; the server stops reading
      from a client that has this many outstanding (TCP back-pressure does the rest).
    * ``max_inflight_bytes``: read and write payload bytes in flight over all clients.
    * ``max_request_bytes``: the advertised maximum block size; a larger READ or WRITE
      gets ``EINVAL`` (a WRITE's payload is read and discarded to stay in step).
    * ``handshake_timeout``: seconds a client may take to choose an export.
    * ``shutdown_timeout``: seconds :meth:`NbdServer.shutdown` (or the removal of an
      export) waits for requests in flight before abandoning them (unacknowledged).
    * ``description``: shown by clients (``nbdinfo``) as the export's description.

    A server's settings give its connection limits (``max_connections``,
    ``max_requests``, ``max_inflight_bytes``, ``handshake_timeout``); each export's give
    what is per export (``read_only``, ``max_request_bytes``, ``shutdown_timeout``,
    ``description``). A server made for one device uses one object for both.
    """

    read_only: bool = False
    max_connections: int = 64
    max_requests: int = 128
    max_inflight_bytes: int = 256 * 1024 * 1024
    max_request_bytes: int = 32 * 1024 * 1024
    handshake_timeout: float = 30.0
    shutdown_timeout: float = 30.0
    description: str = ""

    def __post_init__(self) -> None:
        for name in ("max_connections", "max_requests"):
            if getattr(self, name) < 1:
                raise UsageError(f"{name} must be at least 1")
        if self.max_request_bytes > self.max_inflight_bytes:
            raise UsageError("max_request_bytes cannot exceed max_inflight_bytes")
        if self.shutdown_timeout < 0 or self.handshake_timeout <= 0:
            raise UsageError("timeouts must be positive")


@dataclass(slots=True)
class ServeStats:
    """Counters since the server started (JSON-able through :meth:`describe`)."""

    connections: int = 0  # accepted by the server
    refused_connections: int = 0
    sessions: int = 0  # clients that chose the export (entered transmission)
    requests: int = 0
    bytes_read: int = 0
    bytes_written: int = 0
    errors: int = 0
    unaligned: int = 0
    flushes: int = 0
    shutdown_replies: int = 0
    abandoned: int = 0
    offloaded: int = 0  # zeroing and trimming done by the LU itself (WRITE SAME, UNMAP)
    by_command: dict[str, int] = field(default_factory=dict)

    def describe(self) -> dict[str, object]:
        return {
            "connections": self.connections,
            "refused_connections": self.refused_connections,
            "sessions": self.sessions,
            "requests": self.requests,
            "bytes_read": self.bytes_read,
            "bytes_written": self.bytes_written,
            "errors": self.errors,
            "unaligned": self.unaligned,
            "flushes": self.flushes,
            "shutdown_replies": self.shutdown_replies,
            "abandoned": self.abandoned,
            "offloaded": self.offloaded,
            "by_command": dict(self.by_command),
        }
