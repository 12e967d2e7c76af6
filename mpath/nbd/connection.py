"""One NBD client: its handshake, then its requests, each in its own task.

A failed request is answered with an errno from :func:`nbd_errno`, which reads the
error through the one shared mapping (:func:`mpath.scsi.errnos.errno_for_error`, built
on the one sense decoder) and narrows it to the codes the NBD protocol defines.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import struct
from typing import Final, Protocol

from mpath.errors import MpathError
from mpath.nbd.byteio import ZERO_CHUNK, ByteIO
from mpath.nbd.limits import ByteBudget
from mpath.nbd.protocol import (
    CMD_DISC,
    CMD_FLAG_FUA,
    CMD_FLAG_NO_HOLE,
    CMD_FLUSH,
    CMD_READ,
    CMD_WRITE,
    CMD_WRITE_ZEROES,
    COMMAND_NAMES,
    FLAG_C_FIXED_NEWSTYLE,
    FLAG_C_NO_ZEROES,
    FLAG_FIXED_NEWSTYLE,
    FLAG_NO_ZEROES,
    IHAVEOPT,
    INFO_BLOCK_SIZE,
    INFO_DESCRIPTION,
    INFO_EXPORT,
    INFO_NAME,
    MAX_OPTION_BYTES,
    MAX_OPTIONS,
    NBDMAGIC,
    OPT_ABORT,
    OPT_EXPORT_NAME,
    OPT_GO,
    OPT_INFO,
    OPT_LIST,
    OPT_STARTTLS,
    OPTION_HEADER,
    OPTION_REPLY,
    OPTION_REPLY_MAGIC,
    REP_ACK,
    REP_ERR_INVALID,
    REP_ERR_POLICY,
    REP_ERR_SHUTDOWN,
    REP_ERR_UNKNOWN,
    REP_ERR_UNSUP,
    REP_INFO,
    REP_SERVER,
    REQUEST,
    REQUEST_MAGIC,
    SIMPLE_REPLY,
    SIMPLE_REPLY_MAGIC,
    ProtocolError,
)
from mpath.nbd.settings import ServeSettings, ServeStats
from mpath.scsi.errnos import errno_for_error

log = logging.getLogger(__name__)

#: The error codes the NBD protocol defines; other errnos are narrowed to these.
_NBD_ERRNOS: Final = frozenset(
    {
        errno.EPERM,
        errno.EIO,
        errno.ENOMEM,
        errno.EINVAL,
        errno.ENOSPC,
        errno.EOVERFLOW,
        errno.ENOTSUP,
        errno.ESHUTDOWN,
    }
)
#: A write-protected LU is a permission problem to an NBD client.
_NARROWED: Final = {errno.EROFS: errno.EPERM}


def nbd_errno(exc: BaseException) -> int:
    """The NBD error code a failed request reports to the client."""
    code = errno_for_error(exc)
    code = _NARROWED.get(code, code)
    return code if code in _NBD_ERRNOS else errno.EIO


class Export(Protocol):
    """What a connection uses of its server (:class:`~mpath.nbd.server.NbdServer`)."""

    @property
    def export_name(self) -> str: ...
    @property
    def settings(self) -> ServeSettings: ...
    @property
    def stats(self) -> ServeStats: ...
    @property
    def io(self) -> ByteIO: ...
    @property
    def budget(self) -> ByteBudget: ...
    @property
    def block_size(self) -> int: ...
    @property
    def size_bytes(self) -> int: ...
    @property
    def shutting_down(self) -> bool: ...
    @property
    def transmission_flags(self) -> int: ...


class Connection:
    """One client: its handshake, then its requests, each in its own task."""

    def __init__(
        self,
        server: Export,
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
                error, data = nbd_errno(exc), b""
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
