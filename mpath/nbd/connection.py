"""One NBD client: its handshake, then its requests, each in its own task.

A failed request is answered with an errno from :func:`nbd_errno`, which reads the
error through the one shared mapping (:func:`mpath.scsi.errnos.errno_for_error`, built
on the one sense decoder) and narrows it to the codes the NBD protocol defines.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import logging
import os
import struct
from typing import Any, Final, Protocol

from mpath.errors import MpathError
from mpath.nbd.byteio import ZERO_CHUNK
from mpath.nbd.exports import Export, Exports
from mpath.nbd.protocol import (
    CMD_BLOCK_STATUS,
    CMD_DISC,
    CMD_FLAG_FAST_ZERO,
    CMD_FLAG_FUA,
    CMD_FLAG_NO_HOLE,
    CMD_FLAG_REQ_ONE,
    CMD_FLUSH,
    CMD_READ,
    CMD_TRIM,
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
    META_BASE_ALLOCATION,
    META_BASE_ALLOCATION_ID,
    NBDMAGIC,
    OPT_ABORT,
    OPT_EXPORT_NAME,
    OPT_GO,
    OPT_INFO,
    OPT_LIST,
    OPT_LIST_META_CONTEXT,
    OPT_SET_META_CONTEXT,
    OPT_STARTTLS,
    OPT_STRUCTURED_REPLY,
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
    REP_META_CONTEXT,
    REP_SERVER,
    REPLY_FLAG_DONE,
    REPLY_TYPE_BLOCK_STATUS,
    REPLY_TYPE_ERROR,
    REPLY_TYPE_NONE,
    REPLY_TYPE_OFFSET_DATA,
    REQUEST,
    REQUEST_MAGIC,
    SIMPLE_REPLY,
    SIMPLE_REPLY_MAGIC,
    STATE_HOLE,
    STATE_ZERO,
    STRUCTURED_REPLY,
    STRUCTURED_REPLY_MAGIC,
    ProtocolError,
)
from mpath.nbd.replies import ReplyQueue
from mpath.nbd.settings import ServeSettings
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
#: The command flags served; a request with any other gets EINVAL.
_ALLOWED_FLAGS: Final = CMD_FLAG_FUA | CMD_FLAG_NO_HOLE | CMD_FLAG_FAST_ZERO | CMD_FLAG_REQ_ONE


def nbd_errno(exc: BaseException) -> int:
    """The NBD error code a failed request reports to the client."""
    code = errno_for_error(exc)
    code = _NARROWED.get(code, code)
    return code if code in _NBD_ERRNOS else errno.EIO


class Host(Protocol):
    """What a connection uses of its server (:class:`~mpath.nbd.server.NbdServer`)."""

    @property
    def settings(self) -> ServeSettings: ...
    @property
    def exports(self) -> Exports: ...
    @property
    def shutting_down(self) -> bool: ...


class Connection:
    """One client: its handshake (choosing an export), then its requests, each in its
    own task, served by the export it chose (:attr:`export`)."""

    def __init__(
        self,
        server: Host,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        number: int,
    ) -> None:
        self.server = server
        self.reader = reader
        self.writer = writer
        self.name = f"client {number}"
        self.export: Export | None = None  # chosen by GO or EXPORT_NAME
        #: Requests in flight: a task each, or the device's future for a direct read
        #: or write.
        self.tasks: set[asyncio.Future[Any]] = set()
        self.slots = asyncio.Semaphore(server.settings.max_requests)
        self.replies: ReplyQueue | None = None  # made when transmission begins
        self.structured = False  # NBD_OPT_STRUCTURED_REPLY was negotiated
        self.allocation_context = False  # base:allocation was selected
        self.context_export: str | None = None  # the export the meta context was set for
        self.transmitting = False
        self.disconnected = False

    @property
    def export_name(self) -> str | None:
        return self.export.name if self.export is not None else None

    @property
    def serving(self) -> Export:
        """The export chosen (transmission only happens after one was)."""
        export = self.export
        if export is None:
            raise ProtocolError("no export chosen")
        return export

    @property
    def closing(self) -> bool:
        """New requests get ESHUTDOWN: the export is draining or the server stopping."""
        return self.serving.closing or self.server.shutting_down

    def _choose(self, name: str) -> Export | None:
        """The export ``name`` if it can be used now, attached to this client."""
        export = self.server.exports.get(name)
        if export is None or self.server.shutting_down or not export.attach(self):
            return None
        self.export = export
        return export

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
                export = self._choose(name)
                if export is None:
                    # The option has no error reply: the protocol says to end the session.
                    log.warning(
                        "%s: %s (NBD_OPT_EXPORT_NAME), closing",
                        self.name,
                        "server is shutting down"
                        if server.shutting_down
                        else server.exports.unknown(name),
                    )
                    return False
                reply = struct.pack(">QH", export.size_bytes, export.transmission_flags)
                self.writer.write(reply if no_zeroes else reply + bytes(124))
                await self.writer.drain()
                return True
            if not fixed:
                raise ProtocolError("option other than EXPORT_NAME without fixed newstyle")
            if option == OPT_ABORT:
                with contextlib.suppress(ConnectionError):
                    await self.send_option_reply(option, REP_ACK)
                return False
            if await self._listing_option(option, data):
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

    async def _listing_option(self, option: int, data: bytes) -> bool:
        """LIST, STRUCTURED_REPLY and the meta contexts; False for any other option."""
        server = self.server
        if option == OPT_LIST:
            if data:
                await self.send_error(option, REP_ERR_INVALID, "NBD_OPT_LIST takes no data")
                return True
            if server.shutting_down:
                await self.send_error(option, REP_ERR_SHUTDOWN, "server is shutting down")
                return True
            # One NBD_REP_SERVER per export (name length, name, description), then ACK.
            for export in server.exports:
                encoded = export.name.encode()
                entry = struct.pack(">I", len(encoded)) + encoded + export.description.encode()
                await self.send_option_reply(option, REP_SERVER, entry)
            await self.send_option_reply(option, REP_ACK)
            return True
        if option == OPT_STRUCTURED_REPLY:
            if data:
                await self.send_error(option, REP_ERR_INVALID, "takes no data")
                return True
            self.structured = True
            await self.send_option_reply(option, REP_ACK)
            return True
        if option in (OPT_LIST_META_CONTEXT, OPT_SET_META_CONTEXT):
            await self._meta_context(option, data)
            return True
        return False

    async def _meta_context(self, option: int, data: bytes) -> None:
        """NBD_OPT_LIST/SET_META_CONTEXT: the one context served is base:allocation,
        and only where the LU reports its allocation (GET LBA STATUS)."""
        server = self.server
        setting = option == OPT_SET_META_CONTEXT
        if setting and not self.structured:
            await self.send_error(option, REP_ERR_INVALID, "structured replies first")
            return
        try:
            (name_length,) = struct.unpack_from(">I", data)
            name = data[4 : 4 + name_length].decode("utf-8", "replace")
            (count,) = struct.unpack_from(">I", data, 4 + name_length)
            at = 8 + name_length
            queries = []
            for _ in range(count):
                (size,) = struct.unpack_from(">I", data, at)
                queries.append(data[at + 4 : at + 4 + size].decode("utf-8", "replace"))
                at += 4 + size
            if at != len(data) or len(queries) != count:
                raise struct.error("trailing or missing bytes")
        except (struct.error, IndexError):
            await self.send_error(option, REP_ERR_INVALID, "malformed meta context request")
            return
        export = server.exports.get(name)
        if export is None:
            await self.send_error(option, REP_ERR_UNKNOWN, server.exports.unknown(name))
            return
        if setting:
            self.allocation_context = False
            self.context_export = name
        wanted = (not queries and not setting) or any(
            q in (META_BASE_ALLOCATION, "base:") for q in queries
        )
        if wanted and export.can_map:
            if setting:
                self.allocation_context = True
            payload = struct.pack(">I", META_BASE_ALLOCATION_ID) + META_BASE_ALLOCATION.encode()
            await self.send_option_reply(option, REP_META_CONTEXT, payload)
        await self.send_option_reply(option, REP_ACK)

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
        if server.shutting_down:
            await self.send_error(option, REP_ERR_SHUTDOWN, "server is shutting down")
            return False
        export = server.exports.get(name)
        if export is None:
            await self.send_error(option, REP_ERR_UNKNOWN, server.exports.unknown(name))
            return False
        if option == OPT_GO:
            # Attached before the replies go out: an export removed meanwhile drains
            # this client with the others instead of missing it.
            if self._choose(name) is None:
                await self.send_error(option, REP_ERR_SHUTDOWN, f"export {name!r} is closing")
                return False
            if self.context_export != name:
                self.allocation_context = False  # contexts were set for another export
        infos = [struct.pack(">HQH", INFO_EXPORT, export.size_bytes, export.transmission_flags)]
        # Sent even when not requested (the protocol allows it): clients that honour it
        # avoid the read-modify-write path; those that do not are still served.
        block = export.block_size
        infos.append(
            struct.pack(
                ">HIII", INFO_BLOCK_SIZE, block, max(block, 4096), export.settings.max_request_bytes
            )
        )
        if INFO_NAME in requested:
            infos.append(struct.pack(">H", INFO_NAME) + export.name.encode())
        if INFO_DESCRIPTION in requested and export.description:
            infos.append(struct.pack(">H", INFO_DESCRIPTION) + export.description.encode())
        for info in infos:
            await self.send_option_reply(option, REP_INFO, info)
        await self.send_option_reply(option, REP_ACK)
        return option == OPT_GO

    # transmission -------------------------------------------------------------------

    async def transmit(self) -> None:
        """Read requests until DISC or EOF, replying to each as it ends.

        A read or write of whole blocks goes straight to the device
        (:meth:`ByteIO.start_read`, :meth:`ByteIO.start_write`) and is answered from
        its completion; any other request runs in its own task.
        """
        self.transmitting = True
        replies = self.replies = ReplyQueue(self.writer, self._broken)
        export = self.serving
        reader = self.reader
        try:
            while True:
                if replies.backlog:  # the client reads its replies too slowly: wait
                    await self._wait_drained()
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
                if payload_bytes > export.settings.max_request_bytes:
                    if kind == CMD_WRITE:
                        await self._discard(length)
                    self.slots.release()
                    await self.reply(handle, errno.EINVAL)
                    continue
                await export.budget.acquire(payload_bytes)
                try:
                    payload = await reader.readexactly(length) if kind == CMD_WRITE else b""
                except BaseException:
                    export.budget.release(payload_bytes)
                    self.slots.release()
                    raise
                if kind in (CMD_READ, CMD_WRITE) and self._directly(
                    export, kind, flags, handle, offset, length, payload
                ):
                    continue
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
        export = self.serving
        stats = export.stats
        try:
            command = self._count(kind)
            if self.closing:
                stats.shutdown_replies += 1
                await self.reply(handle, errno.ESHUTDOWN, kind=kind)
                return
            try:
                error, data = await self._execute(kind, flags, offset, length, payload)
            except Exception as exc:  # every request gets a reply, whatever went wrong
                error, data = self._failed(exc, command, length, offset), b""
            if error:
                stats.errors += 1
            await self.reply(handle, error, data, kind=kind, offset=offset)
        finally:
            export.budget.release(payload_bytes)
            self.slots.release()

    def _count(self, kind: int) -> str:
        """Count a request by its command; the command's name."""
        stats = self.serving.stats
        stats.requests += 1
        command = COMMAND_NAMES.get(kind, str(kind))
        stats.by_command[command] = stats.by_command.get(command, 0) + 1
        return command

    def _failed(self, exc: BaseException, command: str, length: int, offset: int) -> int:
        """Log a request that failed; the errno its reply carries."""
        if isinstance(exc, MpathError):
            log.warning(
                "%s: %s of %d bytes at %d failed: %s", self.name, command, length, offset, str(exc)
            )
        else:
            log.error("%s: %s at %d: unexpected error", self.name, command, offset, exc_info=exc)
        return nbd_errno(exc)

    def _directly(
        self,
        export: Export,
        kind: int,
        flags: int,
        handle: int,
        offset: int,
        length: int,
        payload: bytes,
    ) -> bool:
        """Start a whole-block read or write on the device with no task
        (:meth:`ByteIO.start_read`, :meth:`ByteIO.start_write`); False when this one
        needs the task (an error reply, a partial block, FUA, a lock to wait for,
        shutdown)."""
        io = export.io
        if flags & ~_ALLOWED_FLAGS or offset + length > io.size or self.closing:
            return False
        started: asyncio.Future[Any] | None
        try:
            if kind == CMD_READ:
                started = io.start_read(offset, length)
            elif flags & CMD_FLAG_FUA or export.settings.read_only:
                return False
            else:
                started = io.start_write(offset, payload)
        except Exception:  # the task meets the same error, logs it and replies
            return False
        if started is None:
            return False
        self._count(kind)
        started.add_done_callback(
            functools.partial(self._direct_done, export, kind, handle, offset, length)
        )
        self.tasks.add(started)
        return True

    def _direct_done(
        self,
        export: Export,
        kind: int,
        handle: int,
        offset: int,
        length: int,
        request: asyncio.Future[Any],
    ) -> None:
        """Reply to a direct read or write as it completes.

        What ``_run`` and ``_execute`` do for one, without a task: the reply is queued
        at once; waiting for a slow client happens in the request loop, before the
        next request is read. The request leaves :attr:`tasks` only once its reply is
        queued, so a shutdown waiting for it sends that reply before disconnecting.
        """
        command = COMMAND_NAMES[kind]
        try:
            data: bytes = b""
            if request.cancelled():
                error = self._failed(asyncio.CancelledError(), command, length, offset)
            elif (exc := request.exception()) is not None:
                error = self._failed(exc, command, length, offset)
            else:
                error = 0
                if kind == CMD_READ:
                    data = request.result()
                    export.stats.bytes_read += length
                else:
                    export.stats.bytes_written += length
            if error:
                export.stats.errors += 1
            self._queue_reply(handle, error, data, kind=kind, offset=offset)
        finally:
            self.tasks.discard(request)
            export.budget.release(length)
            self.slots.release()

    async def _execute(
        self, kind: int, flags: int, offset: int, length: int, payload: bytes
    ) -> tuple[int, bytes | memoryview]:
        export = self.serving
        io = export.io
        read_only = export.settings.read_only
        if flags & ~_ALLOWED_FLAGS:
            return errno.EINVAL, b""
        fua = bool(flags & CMD_FLAG_FUA)
        if kind == CMD_READ:
            if offset + length > io.size:
                return errno.EINVAL, b""
            data = await io.read(offset, length)
            export.stats.bytes_read += length
            return 0, data
        if kind in (CMD_WRITE, CMD_WRITE_ZEROES, CMD_TRIM):
            if read_only:
                return errno.EPERM, b""
            if offset + length > io.size:
                return errno.ENOSPC, b""
            if kind == CMD_WRITE:
                await io.write(offset, payload, fua=fua)
            elif kind == CMD_TRIM:
                if not await io.trim(offset, length, fua=fua):
                    return errno.EINVAL, b""
                return 0, b""
            elif not await io.write_zeroes(
                offset,
                length,
                fua=fua,
                may_unmap=not flags & CMD_FLAG_NO_HOLE,
                fast=bool(flags & CMD_FLAG_FAST_ZERO),
            ):
                return errno.ENOTSUP, b""  # FAST_ZERO, and the LU cannot zero by itself
            export.stats.bytes_written += length
            return 0, b""
        if kind == CMD_FLUSH:
            if read_only:
                return 0, b""
            await io.flush()
            return 0, b""
        if kind == CMD_BLOCK_STATUS and self.allocation_context:
            return await self._block_status(offset, length, one=bool(flags & CMD_FLAG_REQ_ONE))
        return errno.EINVAL, b""  # CACHE; block status without base:allocation

    async def _block_status(self, offset: int, length: int, *, one: bool) -> tuple[int, bytes]:
        """base:allocation from GET LBA STATUS: the chunk's payload (context, extents)."""
        io = self.serving.io
        saving = io.saving
        if length == 0 or offset + length > io.size:
            return errno.EINVAL, b""
        extents = await saving.extents(offset, length) if saving is not None else None
        hole = STATE_HOLE | (STATE_ZERO if saving is not None and saving.holes_read_zeroes else 0)
        if not extents:  # the LU cannot tell (any more): everything holds data
            pairs = [(length, 0)]
        else:
            pairs = [(e.length, 0 if e.allocated else hole) for e in extents if e.length > 0]
        if one:
            pairs = pairs[:1]
        body = b"".join(struct.pack(">II", size, state) for size, state in pairs)
        return 0, struct.pack(">I", META_BASE_ALLOCATION_ID) + body

    async def reply(
        self,
        handle: int,
        error: int,
        data: bytes | memoryview = b"",
        *,
        kind: int = CMD_READ,
        offset: int = 0,
    ) -> None:
        """Queue one reply (sent with the others of this loop iteration).

        Waits only when the client reads its replies too slowly; a client that went
        away is not an error of ours.
        """
        self._queue_reply(handle, error, data, kind=kind, offset=offset)
        if self.replies is not None and self.replies.backlog:
            await self._wait_drained()

    async def _wait_drained(self) -> None:
        replies = self.replies
        if replies is None:
            return
        try:
            await replies.wait_drained()
        except (ConnectionError, RuntimeError) as exc:
            self._broken(exc)

    def _queue_reply(
        self,
        handle: int,
        error: int,
        data: bytes | memoryview = b"",
        *,
        kind: int = CMD_READ,
        offset: int = 0,
    ) -> None:
        """Queue one reply (sent with the others of this loop iteration).

        Simple replies unless structured replies were negotiated; then reads carry
        their data in one OFFSET_DATA chunk, block status in one BLOCK_STATUS chunk,
        errors in an ERROR chunk.
        """
        replies = self.replies
        if self.disconnected or replies is None:
            return
        if not self.structured:
            header = SIMPLE_REPLY.pack(SIMPLE_REPLY_MAGIC, error, handle)
            if error or not data:
                replies.put(header)
            else:
                replies.put(header, data)
        elif error:
            message = os.strerror(error).encode()
            replies.put(
                STRUCTURED_REPLY.pack(
                    STRUCTURED_REPLY_MAGIC, REPLY_FLAG_DONE, REPLY_TYPE_ERROR, handle,
                    6 + len(message),
                ),
                struct.pack(">IH", error, len(message)) + message,
            )  # fmt: skip
        elif kind == CMD_READ and data:
            replies.put(
                STRUCTURED_REPLY.pack(
                    STRUCTURED_REPLY_MAGIC, REPLY_FLAG_DONE, REPLY_TYPE_OFFSET_DATA, handle,
                    8 + len(data),
                ),
                struct.pack(">Q", offset),
                data,
            )  # fmt: skip
        elif kind == CMD_BLOCK_STATUS:
            replies.put(
                STRUCTURED_REPLY.pack(
                    STRUCTURED_REPLY_MAGIC, REPLY_FLAG_DONE, REPLY_TYPE_BLOCK_STATUS, handle,
                    len(data),
                ),
                data,
            )  # fmt: skip
        else:
            replies.put(
                STRUCTURED_REPLY.pack(
                    STRUCTURED_REPLY_MAGIC, REPLY_FLAG_DONE, REPLY_TYPE_NONE, handle, 0
                )
            )

    def _broken(self, exc: BaseException) -> None:
        if not self.disconnected:
            self.disconnected = True
            log.info("%s: reply not delivered: %s", self.name, str(exc))  # not the traceback

    def flush_replies(self) -> None:
        """Send the replies queued in this loop iteration now (before closing)."""
        if self.replies is not None:
            self.replies.flush()

    async def wait_for_requests(self) -> None:
        while self.tasks:
            await asyncio.gather(*list(self.tasks), return_exceptions=True)
        self.flush_replies()
