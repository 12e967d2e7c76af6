"""A small asyncio NBD server exporting one block device (a MultipathDevice).

Why our own server and not nbdkit's Python plugin: nbdkit embeds the *system* Python
(Debian's 3.11.2) while mpath lives in its own virtualenv, so the plugin would have to
graft the venv's packages onto a foreign interpreter; every request would cross from an
nbdkit worker thread to the device's event loop and back; and device-open errors,
exit codes and the ready line of the CLI contract would come out of nbdkit's process,
not ours. The NBD subset a block export needs is small, and serving it on the device's
own event loop keeps one loop, one process and one error path (docs/nbd.md).

What is implemented (https://github.com/NetworkBlockDevice/nbd/blob/master/doc/proto.md):

* Handshake: fixed newstyle only, with ``NBD_FLAG_NO_ZEROES``. Options ``EXPORT_NAME``,
  ``INFO``, ``GO``, ``LIST``, ``ABORT``; everything else (``STARTTLS``,
  ``STRUCTURED_REPLY``, meta contexts) is answered ``NBD_REP_ERR_UNSUP``, which every
  client handles. One export, the default one (empty name).
* Transmission: simple replies; ``READ``, ``WRITE`` (``FUA`` → the WRITE, then
  SYNCHRONIZE CACHE: targets whose DPOFUA bit is 0, such as LIO FileIO without a
  write cache, refuse a WRITE with the FUA bit), ``FLUSH`` (→ SYNCHRONIZE CACHE), ``WRITE_ZEROES``
  (written as zeroes) and ``DISC``. ``TRIM``, ``CACHE`` and block status are not
  advertised and are refused with ``EINVAL`` if sent anyway.
* Many requests in flight per connection, answered as they finish (matched by handle),
  bounded per connection (``max_requests``) and server-wide in bytes
  (``max_inflight_bytes``), so a fast client cannot make the server buffer without limit.
* Block size: ``NBD_INFO_BLOCK_SIZE`` advertises the LUN's block size as the minimum,
  but unaligned requests are still served correctly (read-modify-write of the partial
  edge blocks, with block-range locks so concurrent writes to one block never tear).
* A write is acknowledged only after the device's ``write`` returned, i.e. after the
  target acknowledged every byte. ``NBD_FLAG_CAN_MULTI_CONN`` is advertised because
  every connection shares the one device: a flush on any connection is a SYNCHRONIZE
  CACHE of the LUN itself.
* Shutdown (:meth:`NbdServer.shutdown`): stop accepting, answer new requests
  ``ESHUTDOWN`` (the client must then disconnect), let requests in flight finish for at
  most ``shutdown_timeout`` seconds, flush the device if anything was written, then
  close the connections. Requests still unfinished at the deadline are abandoned
  without a reply, so nothing unacknowledged is ever reported written.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import ipaddress
import logging
import os
import socket
import stat
import struct
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol
from urllib.parse import quote

from mpath.errors import DeviceError, MpathError, TargetIOError, UsageError
from mpath.scsi.sense import SenseKey, decode_sense

log = logging.getLogger(__name__)

# -- protocol constants ------------------------------------------------------------------

NBDMAGIC = 0x4E42444D41474943  # "NBDMAGIC"
IHAVEOPT = 0x49484156454F5054  # "IHAVEOPT"
OPTION_REPLY_MAGIC = 0x0003E889045565A9
REQUEST_MAGIC = 0x25609513
SIMPLE_REPLY_MAGIC = 0x67446698

FLAG_FIXED_NEWSTYLE = 1 << 0
FLAG_NO_ZEROES = 1 << 1
FLAG_C_FIXED_NEWSTYLE = 1 << 0
FLAG_C_NO_ZEROES = 1 << 1

OPT_EXPORT_NAME = 1
OPT_ABORT = 2
OPT_LIST = 3
OPT_STARTTLS = 5
OPT_INFO = 6
OPT_GO = 7
OPT_STRUCTURED_REPLY = 8

REP_ACK = 1
REP_SERVER = 2
REP_INFO = 3
REP_ERR_UNSUP = (1 << 31) + 1
REP_ERR_POLICY = (1 << 31) + 2
REP_ERR_INVALID = (1 << 31) + 3
REP_ERR_UNKNOWN = (1 << 31) + 6
REP_ERR_SHUTDOWN = (1 << 31) + 7

INFO_EXPORT = 0
INFO_NAME = 1
INFO_DESCRIPTION = 2
INFO_BLOCK_SIZE = 3

TFLAG_HAS_FLAGS = 1 << 0
TFLAG_READ_ONLY = 1 << 1
TFLAG_SEND_FLUSH = 1 << 2
TFLAG_SEND_FUA = 1 << 3
TFLAG_SEND_TRIM = 1 << 5
TFLAG_SEND_WRITE_ZEROES = 1 << 6
TFLAG_CAN_MULTI_CONN = 1 << 8

CMD_READ = 0
CMD_WRITE = 1
CMD_DISC = 2
CMD_FLUSH = 3
CMD_TRIM = 4
CMD_CACHE = 5
CMD_WRITE_ZEROES = 6
CMD_BLOCK_STATUS = 7

CMD_FLAG_FUA = 1 << 0
CMD_FLAG_NO_HOLE = 1 << 1
CMD_FLAG_FAST_ZERO = 1 << 4

COMMAND_NAMES = {
    CMD_READ: "read",
    CMD_WRITE: "write",
    CMD_DISC: "disc",
    CMD_FLUSH: "flush",
    CMD_TRIM: "trim",
    CMD_CACHE: "cache",
    CMD_WRITE_ZEROES: "write_zeroes",
    CMD_BLOCK_STATUS: "block_status",
}

REQUEST = struct.Struct(">IHHQQI")  # magic, flags, type, handle, offset, length
SIMPLE_REPLY = struct.Struct(">IIQ")  # magic, error, handle
OPTION_HEADER = struct.Struct(">QII")  # IHAVEOPT, option, length
OPTION_REPLY = struct.Struct(">QIII")  # magic, option, reply type, length

#: Largest option payload accepted during the handshake (names are at most 4 KiB).
MAX_OPTION_BYTES = 64 * 1024
#: Options one client may send before it must pick an export.
MAX_OPTIONS = 64
#: Piece size for WRITE_ZEROES and for discarding oversized payloads.
ZERO_CHUNK = 1024 * 1024
ZEROES = bytes(ZERO_CHUNK)
#: WRITE_ZEROES pieces written concurrently.
ZERO_PARALLEL = 8


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
    * ``shutdown_timeout``: seconds :meth:`NbdServer.shutdown` waits for requests in
      flight before abandoning them (unacknowledged).
    * ``description``: shown by clients (``nbdinfo``) as the export's description.
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

    connections: int = 0
    refused_connections: int = 0
    requests: int = 0
    bytes_read: int = 0
    bytes_written: int = 0
    errors: int = 0
    unaligned: int = 0
    flushes: int = 0
    shutdown_replies: int = 0
    abandoned: int = 0
    by_command: dict[str, int] = field(default_factory=dict)

    def describe(self) -> dict[str, object]:
        return {
            "connections": self.connections,
            "refused_connections": self.refused_connections,
            "requests": self.requests,
            "bytes_read": self.bytes_read,
            "bytes_written": self.bytes_written,
            "errors": self.errors,
            "unaligned": self.unaligned,
            "flushes": self.flushes,
            "shutdown_replies": self.shutdown_replies,
            "abandoned": self.abandoned,
            "by_command": dict(self.by_command),
        }


# -- listen addresses --------------------------------------------------------------------

DEFAULT_PORT = 10809


@dataclass(frozen=True, slots=True)
class ListenAddress:
    """Where the server listens: a Unix socket path, or a TCP host and port."""

    kind: str  # "unix" or "tcp"
    path: str = ""
    host: str = ""
    port: int = 0

    @classmethod
    def parse(cls, text: str) -> ListenAddress:
        """``unix:PATH`` or ``tcp:HOST:PORT`` (``tcp:[::1]:PORT`` for IPv6; port 0 picks one)."""
        kind, sep, rest = text.partition(":")
        if not sep or not rest:
            raise UsageError(f"bad --listen {text!r}: expected unix:SOCKET or tcp:HOST:PORT")
        if kind == "unix":
            return cls("unix", path=os.path.abspath(rest))
        if kind != "tcp":
            raise UsageError(f"bad --listen {text!r}: expected unix:SOCKET or tcp:HOST:PORT")
        if rest.startswith("["):
            host, bracket, port_text = rest[1:].partition("]:")
            if not bracket:
                raise UsageError(f"bad --listen {text!r}: expected tcp:[IPV6]:PORT")
        else:
            host, colon, port_text = rest.rpartition(":")
            if not colon:
                raise UsageError(f"bad --listen {text!r}: expected tcp:HOST:PORT")
        try:
            port = int(port_text)
        except ValueError:
            raise UsageError(f"bad port in --listen {text!r}") from None
        if not 0 <= port <= 65535:
            raise UsageError(f"bad port in --listen {text!r}: {port}")
        if host == "localhost":
            host = "127.0.0.1"
        try:
            ipaddress.ip_address(host)
        except ValueError:
            raise UsageError(
                f"bad host in --listen {text!r}: give an IP address (127.0.0.1, ::1)"
            ) from None
        return cls("tcp", host=host, port=port)

    @property
    def is_local(self) -> bool:
        """True for Unix sockets and loopback addresses: not reachable from the network."""
        return self.kind == "unix" or ipaddress.ip_address(self.host).is_loopback

    def uri(self, port: int | None = None) -> str:
        """The NBD URI clients connect to (``nbd://...`` or ``nbd+unix:///?socket=...``)."""
        if self.kind == "unix":
            return f"nbd+unix:///?socket={quote(self.path, safe='/')}"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"nbd://{host}:{self.port if port is None else port}"

    def __str__(self) -> str:
        if self.kind == "unix":
            return f"unix:{self.path}"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"tcp:{host}:{self.port}"


def check_listen_policy(address: ListenAddress, *, allow_remote: bool) -> None:
    """Refuse to expose the LUN to the network: only loopback and Unix sockets are served.

    A non-loopback bind needs ``--allow-remote`` *and* TLS; this version does not
    implement TLS, so it refuses such binds either way, saying why.
    """
    if address.is_local:
        return
    if not allow_remote:
        raise UsageError(
            f"refusing to listen on {address}: that is reachable from the network; "
            "exporting the LUN there needs --allow-remote and TLS (use a Unix socket or "
            "127.0.0.1, and ssh -L to reach it from elsewhere)"
        )
    raise UsageError(
        f"refusing to listen on {address}: a non-loopback export needs TLS, and this "
        "version of 'mpath serve' does not implement TLS; listen on a Unix socket or "
        "127.0.0.1 and tunnel it (ssh -L)"
    )


# -- block-range locks for read-modify-write ---------------------------------------------


class _Claim:
    """One write's hold on blocks [start, end); ``edges`` are read-modify-written."""

    __slots__ = ("edges", "end", "granted", "start")

    def __init__(self, start: int, end: int, edges: tuple[int, ...]) -> None:
        self.start = start
        self.end = end
        self.edges = edges
        self.granted: asyncio.Future[None] | None = None

    def conflicts(self, other: _Claim) -> bool:
        if self.end <= other.start or other.end <= self.start:
            return False
        # Whole-block writes of one block may run together (each block lands whole,
        # one or the other); an edge block being read-modify-written may not be
        # written by anyone else between its read and its write.
        return any(other.start <= e < other.end for e in self.edges) or any(
            self.start <= e < self.end for e in other.edges
        )


class BlockLocks:
    """Range locks over blocks, taken by every write, exclusive only on RMW edge blocks.

    Without them, two unaligned writes into one block could both read it, merge their
    own bytes and write it back, and the second write would silently undo the first;
    an aligned write landing between an RMW's read and write would be undone the same
    way. Aligned writes that do not touch a block being read-modify-written never
    wait. Waiters are served first-come first-served, so no write starves.
    """

    def __init__(self) -> None:
        self._active: list[_Claim] = []
        self._waiting: list[_Claim] = []

    def __len__(self) -> int:
        return len(self._active) + len(self._waiting)

    async def acquire(self, start: int, end: int, edges: tuple[int, ...] = ()) -> _Claim:
        claim = _Claim(start, end, edges)
        if not self._blocked(claim, self._waiting):
            self._active.append(claim)
            return claim
        claim.granted = asyncio.get_running_loop().create_future()
        self._waiting.append(claim)
        try:
            await claim.granted
        except BaseException:
            if claim in self._waiting:
                self._waiting.remove(claim)
            else:
                self.release(claim)
            raise
        return claim

    def release(self, claim: _Claim) -> None:
        self._active.remove(claim)
        if not self._waiting:
            return
        still: list[_Claim] = []
        for waiter in self._waiting:
            if self._blocked(waiter, still):
                still.append(waiter)
                continue
            self._active.append(waiter)
            assert waiter.granted is not None
            if not waiter.granted.done():
                waiter.granted.set_result(None)
        self._waiting = still

    def _blocked(self, claim: _Claim, ahead: list[_Claim]) -> bool:
        if not claim.edges and not any(c.edges for c in self._active) and not ahead:
            return False
        return any(claim.conflicts(c) for c in self._active) or any(
            claim.conflicts(c) for c in ahead
        )


class ByteBudget:
    """A server-wide cap on payload bytes in flight (reads being fetched, writes held).

    First come, first served, so a large request is not starved by small ones.
    ``release`` is synchronous so it can run in ``finally`` blocks of cancelled tasks.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self._waiters: deque[tuple[int, asyncio.Future[None]]] = deque()

    async def acquire(self, nbytes: int) -> None:
        if not self._waiters and self.used + nbytes <= self.limit:
            self.used += nbytes
            return
        granted: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (nbytes, granted)
        self._waiters.append(entry)
        try:
            await granted
        except BaseException:
            if granted.done() and not granted.cancelled():
                self.release(nbytes)
            else:
                with contextlib.suppress(ValueError):
                    self._waiters.remove(entry)
            raise

    def release(self, nbytes: int) -> None:
        self.used -= nbytes
        while self._waiters and self.used + self._waiters[0][0] <= self.limit:
            wanted, granted = self._waiters.popleft()
            if granted.done():
                continue
            self.used += wanted
            granted.set_result(None)


# -- the byte-addressed view of a block device -------------------------------------------


class ByteIO:
    """Byte-granular reads and writes over a block device (read-modify-write at edges)."""

    def __init__(self, device: BlockDevice, stats: ServeStats) -> None:
        self.device = device
        self.block = device.block_size
        self.size = device.size_bytes
        self.locks = BlockLocks()
        self.stats = stats
        self.dirty = False  # a write completed since the last flush began

    def _span(self, offset: int, length: int) -> tuple[int, int]:
        block = self.block
        return offset // block * block, -(-(offset + length) // block) * block

    async def read(self, offset: int, length: int) -> bytes | memoryview:
        if length == 0:
            return b""
        start, end = self._span(offset, length)
        data = await self.device.read(start, end - start)
        if start == offset and end == offset + length:
            return data
        self.stats.unaligned += 1
        return memoryview(data)[offset - start : offset - start + length]

    async def write(self, offset: int, data: bytes | memoryview, *, fua: bool) -> None:
        length = len(data)
        if length == 0:
            return
        block = self.block
        start, end = self._span(offset, length)
        head = start // block if offset != start else None
        tail = end // block - 1 if offset + length != end else None
        edges = tuple(sorted({e for e in (head, tail) if e is not None}))
        claim = await self.locks.acquire(start // block, end // block, edges)
        try:
            if not edges:
                await self.device.write(offset, data)
            else:
                self.stats.unaligned += 1
                merged = bytearray(end - start)
                reads = [self.device.read(e * block, block) for e in edges]
                for edge, content in zip(edges, await asyncio.gather(*reads), strict=True):
                    at = edge * block - start
                    merged[at : at + block] = content
                merged[offset - start : offset - start + length] = data
                await self.device.write(start, merged)
            if fua:
                # Not the FUA bit: a target without DPOFUA answers it with ILLEGAL
                # REQUEST (LIO does; the kernel's ext4 sends FUA for its superblock).
                await self.device.flush()
            # Set once the write is done, not before: a flush that started while it was
            # in flight may not cover it, so it must leave the export dirty.
            self.dirty = True
        finally:
            self.locks.release(claim)

    async def write_zeroes(self, offset: int, length: int, *, fua: bool) -> None:
        """Zero a range of any size in bounded pieces (at most ``ZERO_PARALLEL`` at once)."""
        pieces: list[tuple[int, int]] = []
        position, end = offset, offset + length
        while position < end:
            piece_end = min(end, (position // ZERO_CHUNK + 1) * ZERO_CHUNK)
            pieces.append((position, piece_end - position))
            position = piece_end
        view = memoryview(ZEROES)
        for first in range(0, len(pieces), ZERO_PARALLEL):
            batch = pieces[first : first + ZERO_PARALLEL]
            await asyncio.gather(*(self.write(p, view[:n], fua=False) for p, n in batch))
        if fua:
            await self.device.flush()  # one SYNCHRONIZE CACHE for the whole range

    async def flush(self) -> None:
        self.dirty = False
        try:
            await self.device.flush()
        except BaseException:
            self.dirty = True
            raise
        self.stats.flushes += 1


# -- errors ----------------------------------------------------------------------------


class ProtocolError(Exception):
    """The client broke the protocol; the connection is dropped (a hard disconnect)."""


def errno_for(exc: BaseException) -> int:
    """The NBD error code a failed request reports to the client."""
    if isinstance(exc, UsageError):
        return errno.EINVAL
    if isinstance(exc, TargetIOError):
        # DATA PROTECT (write protected) is a permission problem; the rest is I/O.
        sense = decode_sense(exc.sense)
        if sense is not None and sense.key == SenseKey.DATA_PROTECT:
            return errno.EPERM
        return errno.EIO
    if isinstance(exc, MemoryError):
        return errno.ENOMEM
    return errno.EIO


# -- one connection ----------------------------------------------------------------------


class _Connection:
    """One client: its handshake, then its requests, each in its own task."""

    def __init__(
        self,
        server: NbdServer,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        number: int,
    ) -> None:
        self.server = server
        self.reader = reader
        self.writer = writer
        self.name = f"client {number}"
        self.tasks: set[asyncio.Task[None]] = set()
        self.slots = asyncio.Semaphore(server.settings.max_requests)
        self.send_lock = asyncio.Lock()
        self.transmitting = False
        self.disconnected = False

    # handshake ----------------------------------------------------------------------

    async def send_option_reply(self, option: int, reply: int, data: bytes = b"") -> None:
        self.writer.write(OPTION_REPLY.pack(OPTION_REPLY_MAGIC, option, reply, len(data)) + data)
        await self.writer.drain()

    async def send_error(self, option: int, reply: int, message: str) -> None:
        await self.send_option_reply(option, reply, message.encode())

    async def negotiate(self) -> bool:
        """Run the fixed-newstyle handshake; True once the client entered transmission."""
        server = self.server
        self.writer.write(
            struct.pack(">QQH", NBDMAGIC, IHAVEOPT, FLAG_FIXED_NEWSTYLE | FLAG_NO_ZEROES)
        )
        await self.writer.drain()
        (client_flags,) = struct.unpack(">I", await self.reader.readexactly(4))
        if client_flags & ~(FLAG_C_FIXED_NEWSTYLE | FLAG_C_NO_ZEROES):
            raise ProtocolError(f"unknown client flags {client_flags:#x}")
        fixed = bool(client_flags & FLAG_C_FIXED_NEWSTYLE)
        no_zeroes = bool(client_flags & FLAG_C_NO_ZEROES)
        for _ in range(MAX_OPTIONS):
            magic, option, length = OPTION_HEADER.unpack(
                await self.reader.readexactly(OPTION_HEADER.size)
            )
            if magic != IHAVEOPT:
                raise ProtocolError(f"bad option magic {magic:#x}")
            if length > MAX_OPTION_BYTES:
                raise ProtocolError(f"option {option} carries {length} bytes")
            data = await self.reader.readexactly(length)
            if option == OPT_EXPORT_NAME:
                name = data.decode("utf-8", "replace")
                if name != server.export_name:
                    raise ProtocolError(f"unknown export {name!r} (NBD_OPT_EXPORT_NAME)")
                reply = struct.pack(">QH", server.size_bytes, server.transmission_flags)
                self.writer.write(reply if no_zeroes else reply + bytes(124))
                await self.writer.drain()
                return True
            if not fixed:
                raise ProtocolError("option other than EXPORT_NAME without fixed newstyle")
            if option == OPT_ABORT:
                with contextlib.suppress(ConnectionError):
                    await self.send_option_reply(option, REP_ACK)
                return False
            if option == OPT_LIST:
                if data:
                    await self.send_error(option, REP_ERR_INVALID, "NBD_OPT_LIST takes no data")
                    continue
                encoded = server.export_name.encode()
                description = server.settings.description.encode()
                entry = struct.pack(">I", len(encoded)) + encoded + description
                await self.send_option_reply(option, REP_SERVER, entry)
                await self.send_option_reply(option, REP_ACK)
                continue
            if option in (OPT_INFO, OPT_GO):
                if await self._info(option, data):
                    return True
                continue
            if server.shutting_down:
                await self.send_error(option, REP_ERR_SHUTDOWN, "server is shutting down")
                continue
            if option == OPT_STARTTLS:
                await self.send_error(option, REP_ERR_POLICY, "this server does not offer TLS")
                continue
            await self.send_error(option, REP_ERR_UNSUP, f"option {option} is not supported")
        raise ProtocolError(f"more than {MAX_OPTIONS} options")

    async def _info(self, option: int, data: bytes) -> bool:
        """NBD_OPT_INFO / NBD_OPT_GO; True when GO succeeded."""
        server = self.server
        if len(data) < 6:
            await self.send_error(option, REP_ERR_INVALID, "truncated NBD_OPT_INFO/GO")
            return False
        (name_length,) = struct.unpack_from(">I", data)
        if 4 + name_length + 2 > len(data):
            await self.send_error(option, REP_ERR_INVALID, "bad export name length")
            return False
        name = data[4 : 4 + name_length].decode("utf-8", "replace")
        (count,) = struct.unpack_from(">H", data, 4 + name_length)
        if len(data) != 4 + name_length + 2 + 2 * count:
            await self.send_error(option, REP_ERR_INVALID, "bad information request count")
            return False
        requested = set(struct.unpack_from(f">{count}H", data, 4 + name_length + 2))
        if name != server.export_name:
            await self.send_error(option, REP_ERR_UNKNOWN, f"no export named {name!r}")
            return False
        if server.shutting_down:
            await self.send_error(option, REP_ERR_SHUTDOWN, "server is shutting down")
            return False
        infos = [struct.pack(">HQH", INFO_EXPORT, server.size_bytes, server.transmission_flags)]
        # Sent even when not requested (the protocol allows it): clients that honour it
        # avoid the read-modify-write path; those that do not are still served.
        block = server.block_size
        infos.append(
            struct.pack(
                ">HIII", INFO_BLOCK_SIZE, block, max(block, 4096), server.settings.max_request_bytes
            )
        )
        if INFO_NAME in requested:
            infos.append(struct.pack(">H", INFO_NAME) + server.export_name.encode())
        if INFO_DESCRIPTION in requested and server.settings.description:
            infos.append(struct.pack(">H", INFO_DESCRIPTION) + server.settings.description.encode())
        for info in infos:
            await self.send_option_reply(option, REP_INFO, info)
        await self.send_option_reply(option, REP_ACK)
        return option == OPT_GO

    # transmission -------------------------------------------------------------------

    async def transmit(self) -> None:
        """Read requests until DISC or EOF; each runs in its own task, replies as it ends."""
        self.transmitting = True
        server = self.server
        reader = self.reader
        try:
            while True:
                await self.slots.acquire()
                try:
                    header = await reader.readexactly(REQUEST.size)
                except BaseException:
                    self.slots.release()
                    raise
                magic, flags, kind, handle, offset, length = REQUEST.unpack(header)
                if magic != REQUEST_MAGIC:
                    self.slots.release()
                    raise ProtocolError(f"bad request magic {magic:#x}")
                if kind == CMD_DISC:
                    self.slots.release()
                    return
                payload_bytes = length if kind in (CMD_READ, CMD_WRITE) else 0
                if payload_bytes > server.settings.max_request_bytes:
                    if kind == CMD_WRITE:
                        await self._discard(length)
                    self.slots.release()
                    await self.reply(handle, errno.EINVAL)
                    continue
                await server.budget.acquire(payload_bytes)
                try:
                    payload = await reader.readexactly(length) if kind == CMD_WRITE else b""
                except BaseException:
                    server.budget.release(payload_bytes)
                    self.slots.release()
                    raise
                task = asyncio.create_task(
                    self._run(kind, flags, handle, offset, length, payload, payload_bytes)
                )
                self.tasks.add(task)
                task.add_done_callback(self.tasks.discard)
        except (asyncio.IncompleteReadError, ConnectionError):
            self.disconnected = True

    async def _discard(self, length: int) -> None:
        while length:
            chunk = await self.reader.readexactly(min(length, ZERO_CHUNK))
            length -= len(chunk)

    async def _run(
        self,
        kind: int,
        flags: int,
        handle: int,
        offset: int,
        length: int,
        payload: bytes,
        payload_bytes: int,
    ) -> None:
        server = self.server
        stats = server.stats
        try:
            stats.requests += 1
            command = COMMAND_NAMES.get(kind, str(kind))
            stats.by_command[command] = stats.by_command.get(command, 0) + 1
            if server.shutting_down:
                stats.shutdown_replies += 1
                await self.reply(handle, errno.ESHUTDOWN)
                return
            try:
                error, data = await self._execute(kind, flags, offset, length, payload)
            except Exception as exc:  # every request gets a reply, whatever went wrong
                if isinstance(exc, MpathError):
                    log.warning(
                        "%s: %s of %d bytes at %d failed: %s",
                        self.name, command, length, offset, exc,
                    )  # fmt: skip
                else:
                    log.exception("%s: %s at %d: unexpected error", self.name, command, offset)
                error, data = errno_for(exc), b""
            if error:
                stats.errors += 1
            await self.reply(handle, error, data)
        finally:
            server.budget.release(payload_bytes)
            self.slots.release()

    async def _execute(
        self, kind: int, flags: int, offset: int, length: int, payload: bytes
    ) -> tuple[int, bytes | memoryview]:
        server = self.server
        io = server.io
        read_only = server.settings.read_only
        allowed = CMD_FLAG_FUA | CMD_FLAG_NO_HOLE
        if flags & ~allowed:
            return errno.EINVAL, b""
        fua = bool(flags & CMD_FLAG_FUA)
        if kind == CMD_READ:
            if offset + length > io.size:
                return errno.EINVAL, b""
            data = await io.read(offset, length)
            server.stats.bytes_read += length
            return 0, data
        if kind in (CMD_WRITE, CMD_WRITE_ZEROES):
            if read_only:
                return errno.EPERM, b""
            if offset + length > io.size:
                return errno.ENOSPC, b""
            if kind == CMD_WRITE:
                await io.write(offset, payload, fua=fua)
            else:
                await io.write_zeroes(offset, length, fua=fua)
            server.stats.bytes_written += length
            return 0, b""
        if kind == CMD_FLUSH:
            if read_only:
                return 0, b""
            await io.flush()
            return 0, b""
        return errno.EINVAL, b""  # TRIM, CACHE, BLOCK_STATUS: not advertised

    async def reply(self, handle: int, error: int, data: bytes | memoryview = b"") -> None:
        """Send one simple reply; a client that went away is not an error of ours."""
        if self.disconnected:
            return
        header = SIMPLE_REPLY.pack(SIMPLE_REPLY_MAGIC, error, handle)
        try:
            async with self.send_lock:
                if error or not data:
                    self.writer.write(header)
                else:
                    self.writer.writelines((header, data))
                await self.writer.drain()
        except (ConnectionError, RuntimeError) as exc:
            self.disconnected = True
            log.info("%s: reply not delivered: %s", self.name, exc)

    async def wait_for_requests(self) -> None:
        while self.tasks:
            await asyncio.gather(*list(self.tasks), return_exceptions=True)


# -- the server --------------------------------------------------------------------------


class NbdServer:
    """Serve one device as the default NBD export on one listen address.

    Use :meth:`start`, then :meth:`shutdown` (also on errors); :attr:`uri` is what
    clients connect to. The device is not closed here: whoever opened it closes it.
    """

    export_name = ""

    def __init__(self, device: BlockDevice, settings: ServeSettings | None = None) -> None:
        self.device = device
        self.settings = settings or ServeSettings()
        self.stats = ServeStats()
        self.io = ByteIO(device, self.stats)
        self.block_size = device.block_size
        self.size_bytes = device.size_bytes
        if self.settings.max_request_bytes % self.block_size:
            raise UsageError("max_request_bytes must be a multiple of the block size")
        self.budget = ByteBudget(self.settings.max_inflight_bytes)
        self.shutting_down = False
        self._abort = asyncio.Event()
        self.address: ListenAddress | None = None
        self.port: int | None = None
        self._server: asyncio.Server | None = None
        self._connections: set[_Connection] = set()
        self._handlers: set[asyncio.Task[None]] = set()
        self._counter = 0
        self._closed = asyncio.Event()
        self._socket_identity: tuple[int, int] | None = None

    @property
    def transmission_flags(self) -> int:
        flags = TFLAG_HAS_FLAGS | TFLAG_CAN_MULTI_CONN
        if self.settings.read_only:
            return flags | TFLAG_READ_ONLY
        return flags | TFLAG_SEND_FLUSH | TFLAG_SEND_FUA | TFLAG_SEND_WRITE_ZEROES

    @property
    def uri(self) -> str:
        if self.address is None:
            raise DeviceError("the NBD server is not listening")
        return self.address.uri(self.port)

    @property
    def connections(self) -> int:
        return len(self._connections)

    async def start(self, address: ListenAddress) -> None:
        """Bind and listen. Raises :class:`DeviceError` if the address cannot be used."""
        self.address = address
        try:
            if address.kind == "unix":
                _remove_stale_socket(address.path)
                old_umask = os.umask(0o177)  # the socket is for its owner only
                try:
                    self._server = await asyncio.start_unix_server(
                        self._accept, path=address.path, limit=1 << 20
                    )
                finally:
                    os.umask(old_umask)
                info = os.stat(address.path)
                self._socket_identity = (info.st_dev, info.st_ino)
            else:
                self._server = await asyncio.start_server(
                    self._accept, host=address.host, port=address.port, limit=1 << 20
                )
                sockname = self._server.sockets[0].getsockname()
                self.port = int(sockname[1])
        except OSError as exc:
            raise DeviceError(f"cannot listen on {address}: {exc.strerror or exc}") from exc
        log.info("NBD server listening on %s", self.uri)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        task.add_done_callback(self._handlers.discard)
        self._counter += 1
        connection = _Connection(self, reader, writer, self._counter)
        sock = writer.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.shutting_down or len(self._connections) >= self.settings.max_connections:
            self.stats.refused_connections += 1
            log.warning(
                "%s refused: %s",
                connection.name,
                "shutting down" if self.shutting_down else "too many connections",
            )
            writer.close()
            return
        self._connections.add(connection)
        self.stats.connections += 1
        try:
            try:
                entered = await asyncio.wait_for(
                    connection.negotiate(), self.settings.handshake_timeout
                )
            except TimeoutError:
                log.warning("%s: handshake timed out", connection.name)
                return
            if entered:
                log.info("%s: connected", connection.name)
                await connection.transmit()
                await connection.wait_for_requests()
        except ProtocolError as exc:
            log.warning("%s: protocol error, disconnecting: %s", connection.name, exc)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            # Requests still running finish (or are abandoned by shutdown) before the
            # socket goes: their writes must never outlive the accounting.
            with contextlib.suppress(BaseException):
                await connection.wait_for_requests()
            self._connections.discard(connection)
            await self._close_writer(writer)
            log.info("%s: disconnected", connection.name)
            if not self._connections and self.io.dirty and not self.shutting_down:
                # Nobody is left to ask for it: persist what was acknowledged.
                try:
                    await self.io.flush()
                except MpathError as exc:
                    log.warning("flush after the last client left failed: %s", exc)

    @staticmethod
    async def _close_writer(writer: asyncio.StreamWriter) -> None:
        writer.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(writer.wait_closed(), 5)

    async def shutdown(self) -> bool:
        """Stop serving: no new clients, in-flight requests finish (bounded), flush, close.

        Returns True when every request in flight completed and the final flush (if
        anything was written) succeeded; False if some were abandoned unacknowledged
        at the ``shutdown_timeout`` or the flush failed.
        """
        clean = True
        self.shutting_down = True
        if self._server is not None:
            self._server.close()
            self._remove_socket()
        for connection in list(self._connections):
            if not connection.transmitting:
                connection.writer.close()
        pending = [t for c in self._connections for t in c.tasks]
        if pending:
            log.info("waiting for %d request(s) in flight", len(pending))
            finished = asyncio.ensure_future(asyncio.wait(pending))
            aborted = asyncio.ensure_future(self._abort.wait())
            await asyncio.wait(
                (finished, aborted),
                timeout=self.settings.shutdown_timeout,
                return_when=asyncio.FIRST_COMPLETED,
            )
            for helper in (finished, aborted):
                helper.cancel()
            await asyncio.gather(finished, aborted, return_exceptions=True)
            unfinished = [task for task in pending if not task.done()]
            if unfinished:
                clean = False
                self.stats.abandoned += len(unfinished)
                log.warning(
                    "abandoning %d request(s) still unfinished %s (not acknowledged)",
                    len(unfinished),
                    "on request"
                    if self._abort.is_set()
                    else f"after {self.settings.shutdown_timeout:g} s",
                )
                for connection in self._connections:
                    connection.disconnected = True  # no reply for what did not finish
                for task in unfinished:
                    task.cancel()
                await asyncio.gather(*unfinished, return_exceptions=True)
        if self.io.dirty and not self.settings.read_only:
            try:
                await asyncio.wait_for(self.io.flush(), max(self.settings.shutdown_timeout, 10.0))
            except (MpathError, TimeoutError) as exc:
                clean = False
                log.warning("final flush failed: %s", exc)
        for connection in list(self._connections):
            connection.writer.close()
        handlers = list(self._handlers)
        if handlers:
            await asyncio.wait(handlers, timeout=10)
            for task in handlers:
                task.cancel()
            await asyncio.gather(*handlers, return_exceptions=True)
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 5)
        self._closed.set()
        return clean

    def abort(self) -> None:
        """Stop waiting for requests in flight (a second Ctrl-C): :meth:`shutdown`
        abandons them unacknowledged and goes on to flush and close."""
        self._abort.set()

    def _remove_socket(self) -> None:
        """Remove our Unix socket file (only if it is still the one we created)."""
        if self.address is None or self.address.kind != "unix" or self._socket_identity is None:
            return
        with contextlib.suppress(OSError):
            info = os.stat(self.address.path)
            if (info.st_dev, info.st_ino) == self._socket_identity:
                os.unlink(self.address.path)


def _remove_stale_socket(path: str) -> None:
    """Clear a socket file left by a dead server; refuse a live one or a non-socket."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        parent = Path(path).parent
        if not parent.is_dir():
            raise UsageError(f"cannot listen on unix:{path}: {parent} does not exist") from None
        return
    if not stat.S_ISSOCK(info.st_mode):
        raise UsageError(f"cannot listen on unix:{path}: it exists and is not a socket")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.settimeout(1.0)
        probe.connect(path)
    except OSError:
        os.unlink(path)  # nobody answers: a leftover of a server that died
        return
    finally:
        probe.close()
    raise DeviceError(f"cannot listen on unix:{path}: another server is using it")
