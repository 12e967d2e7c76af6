"""A small asyncio NBD server exporting one block device (a MultipathDevice): its lifecycle.

Why our own server and not nbdkit's Python plugin: nbdkit embeds the *system* Python
(Debian's 3.11.2) while mpath lives in its own virtualenv, so the plugin would have to
graft the venv's packages onto a foreign interpreter; every request would cross from an
nbdkit worker thread to the device's event loop and back; and device-open errors,
exit codes and the ready line of the CLI contract would come out of nbdkit's process,
not ours. The NBD subset a block export needs is small, and serving it on the device's
own event loop keeps one loop, one process and one error path (docs/nbd.md).

What is implemented (https://github.com/NetworkBlockDevice/nbd/blob/master/doc/proto.md):

* Handshake: fixed newstyle only, with ``NBD_FLAG_NO_ZEROES``. Options ``EXPORT_NAME``,
  ``INFO``, ``GO``, ``LIST``, ``ABORT``, ``STRUCTURED_REPLY`` and the meta contexts
  (``base:allocation`` only, where the LUN reports allocation); ``STARTTLS`` and
  anything else are refused. One export, the default one (empty name).
* Transmission: simple or structured replies; ``READ``, ``WRITE`` (``FUA`` → the
  WRITE, then SYNCHRONIZE CACHE: targets without DPOFUA refuse the FUA bit), ``FLUSH``
  (→ SYNCHRONIZE CACHE), ``WRITE_ZEROES`` (→ WRITE SAME (16), UNMAP where holes read
  zeroes; ``FAST_ZERO``), ``TRIM`` (→ UNMAP), ``BLOCK_STATUS`` (→ GET LBA STATUS) and
  ``DISC``; the last three only where the LUN supports them (:class:`SavingCommands`).
  ``CACHE`` is not advertised and refused with ``EINVAL``.
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

The server is split by job: :mod:`~mpath.nbd.protocol` (constants and wire
structures), :mod:`~mpath.nbd.listen` (listen address and the local-only policy),
:mod:`~mpath.nbd.limits` (block-range locks and the byte budget),
:mod:`~mpath.nbd.byteio` (read-modify-write I/O), :mod:`~mpath.nbd.connection` (one
client), and this module: start, accept, shut down.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket

from mpath.errors import DeviceError, MpathError, UsageError
from mpath.nbd.byteio import ByteIO
from mpath.nbd.connection import Connection
from mpath.nbd.limits import ByteBudget
from mpath.nbd.listen import ListenAddress, remove_stale_socket
from mpath.nbd.protocol import (
    TFLAG_CAN_MULTI_CONN,
    TFLAG_HAS_FLAGS,
    TFLAG_READ_ONLY,
    TFLAG_SEND_FAST_ZERO,
    TFLAG_SEND_FLUSH,
    TFLAG_SEND_FUA,
    TFLAG_SEND_TRIM,
    TFLAG_SEND_WRITE_ZEROES,
    ProtocolError,
)
from mpath.nbd.settings import BlockDevice, SavingCommands, ServeSettings, ServeStats

log = logging.getLogger(__name__)


class NbdServer:
    """Serve one device as the default NBD export on one listen address.

    Use :meth:`start`, then :meth:`shutdown` (also on errors); :attr:`uri` is what
    clients connect to. The device is not closed here: whoever opened it closes it.
    """

    export_name = ""

    def __init__(
        self,
        device: BlockDevice,
        settings: ServeSettings | None = None,
        saving: SavingCommands | None = None,
    ) -> None:
        self.device = device
        self.settings = settings or ServeSettings()
        self.stats = ServeStats()
        self.saving = saving
        self.io = ByteIO(device, self.stats, saving)
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
        self._connections: set[Connection] = set()
        self._handlers: set[asyncio.Task[None]] = set()
        self._counter = 0
        self._closed = asyncio.Event()
        self._socket_identity: tuple[int, int] | None = None

    @property
    def transmission_flags(self) -> int:
        flags = TFLAG_HAS_FLAGS | TFLAG_CAN_MULTI_CONN
        if self.settings.read_only:
            return flags | TFLAG_READ_ONLY
        flags |= TFLAG_SEND_FLUSH | TFLAG_SEND_FUA | TFLAG_SEND_WRITE_ZEROES
        saving = self.saving
        if saving is not None:
            # Advertised only where the LU does it: trimming is UNMAP, a fast zero is
            # WRITE SAME (a LU that refuses it later makes FAST_ZERO requests ENOTSUP).
            if saving.can_unmap:
                flags |= TFLAG_SEND_TRIM
            if saving.can_write_same:
                flags |= TFLAG_SEND_FAST_ZERO
        return flags

    @property
    def can_map(self) -> bool:
        """Block status (``base:allocation``) can be answered: GET LBA STATUS works."""
        return self.saving is not None and self.saving.can_map

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
                remove_stale_socket(address.path)
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
        connection = Connection(self, reader, writer, self._counter)
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
            # The message, not the exception: a log record keeps its arguments, and a
            # handler that holds records (a buffer, a test's capture) would keep the
            # traceback and with it every frame and stream of this connection.
            log.warning("%s: protocol error, disconnecting: %s", connection.name, str(exc))
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
            connection.flush_replies()
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
