"""A small asyncio NBD server exporting block devices (MultipathDevices): its lifecycle.

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
  anything else are refused.
* Exports: any number, each a device under a name (:mod:`~mpath.nbd.exports`), added
  and removed while the server runs. ``NBD_OPT_LIST`` names them all; ``GO``, ``INFO``
  and the meta contexts look the name up and answer ``NBD_REP_ERR_UNKNOWN`` (with the
  names served) for another; ``EXPORT_NAME``, which has no error reply, closes the
  connection. ``mpath serve`` has one, the default export (empty name); ``mpath
  daemon`` one per map, named after it.
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
  every connection to an export shares its one device: a flush on any connection is a
  SYNCHRONIZE CACHE of the LUN itself.
* Shutdown (:meth:`NbdServer.shutdown`): stop accepting, answer new requests
  ``ESHUTDOWN`` (the client must then disconnect), let requests in flight finish for at
  most ``shutdown_timeout`` seconds, flush the device if anything was written, then
  close the connections. Requests still unfinished at the deadline are abandoned
  without a reply, so nothing unacknowledged is ever reported written. Removing one
  export (:meth:`NbdServer.remove`) does the same for that export alone, after taking
  it out of the list so no new client can choose it.

The server is split by job: :mod:`~mpath.nbd.protocol` (constants and wire
structures), :mod:`~mpath.nbd.listen` (listen address and the local-only policy),
:mod:`~mpath.nbd.limits` (block-range locks and the byte budget),
:mod:`~mpath.nbd.byteio` (read-modify-write I/O), :mod:`~mpath.nbd.exports` (the named
exports), :mod:`~mpath.nbd.connection` (one client), and this module: start, accept,
add and remove exports, shut down.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from dataclasses import dataclass

from mpath.errors import DeviceError
from mpath.nbd.connection import Connection
from mpath.nbd.exports import Export, Exports
from mpath.nbd.limits import ByteBudget
from mpath.nbd.listen import ListenAddress, remove_stale_socket
from mpath.nbd.protocol import ProtocolError
from mpath.nbd.settings import BlockDevice, SavingCommands, ServeSettings, ServeStats

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Listener:
    """One address the server listens on (a Unix socket, or a TCP port)."""

    address: ListenAddress
    server: asyncio.Server
    port: int | None = None
    socket_identity: tuple[int, int] | None = None  # (st_dev, st_ino) of our socket file

    def uri(self, export: str = "") -> str:
        return self.address.uri(self.port, export)

    def remove_socket(self) -> None:
        """Remove our Unix socket file (only if it is still the one we created)."""
        if self.address.kind != "unix" or self.socket_identity is None:
            return
        with contextlib.suppress(OSError):
            info = os.stat(self.address.path)
            if (info.st_dev, info.st_ino) == self.socket_identity:
                os.unlink(self.address.path)


class NbdServer:
    """Serve named exports on one or more listen addresses.

    ``NbdServer(device)`` serves that device as the default export (empty name), as
    ``mpath serve`` does; it then has one :class:`ServeStats` for the server and its
    export. ``NbdServer()`` starts with none: :meth:`add` and :meth:`remove` them while
    it runs (``mpath daemon``). Use :meth:`start`, then :meth:`shutdown` (also on
    errors); :attr:`uri` is what clients connect to. Devices are not closed here:
    whoever opened them closes them, after their export was removed or the server
    shut down.
    """

    def __init__(
        self,
        device: BlockDevice | None = None,
        settings: ServeSettings | None = None,
        saving: SavingCommands | None = None,
        *,
        name: str = "",
    ) -> None:
        self.settings = settings or ServeSettings()
        self.stats = ServeStats()  # connections accepted and refused
        self.budget = ByteBudget(self.settings.max_inflight_bytes)
        self.exports = Exports()
        self.shutting_down = False
        self.listeners: list[Listener] = []
        self._connections: set[Connection] = set()
        self._handlers: set[asyncio.Task[None]] = set()
        self._draining: set[Export] = set()
        self._counter = 0
        self._default: Export | None = None
        if device is not None:
            self._default = Export(
                name, device, self.settings, self.budget, saving, stats=self.stats
            )
            self.exports.add(self._default)

    # -- exports ------------------------------------------------------------------------------

    def add(
        self,
        name: str,
        device: BlockDevice,
        settings: ServeSettings | None = None,
        saving: SavingCommands | None = None,
    ) -> Export:
        """Serve ``device`` as export ``name`` from now on (listed, and found by name).

        ``settings`` are the export's own (description, read-only, request size,
        drain timeout); the server's connection limits apply to it as to all.
        Raises :class:`UsageError` if the name is taken (or too long), and
        :class:`DeviceError` once the server is shutting down.
        """
        if self.shutting_down:
            raise DeviceError(f"cannot add NBD export {name!r}: the server is shutting down")
        export = Export(name, device, settings or ServeSettings(), self.budget, saving)
        self.exports.add(export)
        log.info("NBD export %r added (%d bytes)", name, export.size_bytes)
        return export

    async def remove(self, name: str) -> bool:
        """Stop serving export ``name``: it is unlisted and refused to new clients at
        once; its clients' requests in flight finish (bounded by its
        ``shutdown_timeout``), the device is flushed, then they are disconnected.

        True when nothing was abandoned and the flush succeeded (see
        :meth:`Export.close`). Raises :class:`UsageError` for an unknown name.
        """
        export = self.exports.remove(name)
        self._draining.add(export)
        try:
            clean = await export.close()
        finally:
            self._draining.discard(export)
        log.info("NBD export %r removed%s", name, "" if clean else " (requests abandoned)")
        return clean

    @property
    def export(self) -> Export:
        """The export of a server made for one device (``NbdServer(device)``)."""
        if self._default is None:
            raise DeviceError("this NBD server was not made for one device")
        return self._default

    # -- where it listens -----------------------------------------------------------------------

    @property
    def address(self) -> ListenAddress | None:
        return self.listeners[0].address if self.listeners else None

    @property
    def port(self) -> int | None:
        """The TCP port of the first address (the one picked, when 0 was asked)."""
        return self.listeners[0].port if self.listeners else None

    @property
    def uri(self) -> str:
        """The URI of the default export of a one-device server, on the first address."""
        return self.uri_for(self._default.name if self._default is not None else "")

    def uri_for(self, name: str) -> str:
        """The URI of export ``name`` on the first address."""
        if not self.listeners:
            raise DeviceError("the NBD server is not listening")
        return self.listeners[0].uri(name)

    def uris_for(self, name: str) -> list[str]:
        """The URIs of export ``name``, one per address."""
        return [listener.uri(name) for listener in self.listeners]

    @property
    def connections(self) -> int:
        """Clients connected now (choosing an export, or using one)."""
        return len(self._connections)

    async def start(self, address: ListenAddress, *more: ListenAddress) -> None:
        """Bind and listen on every address. Raises :class:`DeviceError` if one cannot be
        used (and then listens on none)."""
        try:
            for each in (address, *more):
                self.listeners.append(await self._listen(each))
        except BaseException:
            for listener in self.listeners:
                listener.server.close()
                listener.remove_socket()
            self.listeners.clear()
            raise
        for listener in self.listeners:
            log.info("NBD server listening on %s", listener.uri())

    async def _listen(self, address: ListenAddress) -> Listener:
        try:
            if address.kind == "unix":
                remove_stale_socket(address.path)
                old_umask = os.umask(0o177)  # the socket is for its owner only
                try:
                    server = await asyncio.start_unix_server(
                        self._accept, path=address.path, limit=1 << 20
                    )
                finally:
                    os.umask(old_umask)
                info = os.stat(address.path)
                return Listener(address, server, socket_identity=(info.st_dev, info.st_ino))
            server = await asyncio.start_server(
                self._accept, host=address.host, port=address.port, limit=1 << 20
            )
            return Listener(address, server, port=int(server.sockets[0].getsockname()[1]))
        except OSError as exc:
            raise DeviceError(f"cannot listen on {address}: {exc.strerror or exc}") from exc

    # -- clients ------------------------------------------------------------------------------

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
                log.info("%s: connected to export %r", connection.name, connection.export_name)
                await connection.transmit()
                await connection.wait_for_requests()
        except ProtocolError as exc:
            log.warning("%s: protocol error, disconnecting: %s", connection.name, exc)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            # Requests still running finish (or are abandoned by a drain) before the
            # socket goes: their writes must never outlive the accounting.
            with contextlib.suppress(BaseException):
                await connection.wait_for_requests()
            self._connections.discard(connection)
            await self._close_writer(writer)
            log.info("%s: disconnected", connection.name)
            if connection.export is not None:
                await connection.export.detach(connection)

    @staticmethod
    async def _close_writer(writer: asyncio.StreamWriter) -> None:
        writer.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(writer.wait_closed(), 5)

    # -- stopping -----------------------------------------------------------------------------

    async def shutdown(self) -> bool:
        """Stop serving: no new clients, then every export drains as :meth:`remove`
        drains one (in-flight requests finish, bounded; flush; close).

        Returns True when every request in flight completed and every final flush (of
        an export written to) succeeded; False if some were abandoned unacknowledged
        at the ``shutdown_timeout`` or a flush failed.
        """
        self.shutting_down = True
        for listener in self.listeners:
            listener.server.close()
            listener.remove_socket()
        for connection in list(self._connections):
            if connection.export is None:  # still choosing: nothing in flight
                connection.writer.close()
        results = await asyncio.gather(*(export.close() for export in self.exports))
        clean = all(results)
        handlers = list(self._handlers)
        if handlers:
            await asyncio.wait(handlers, timeout=10)
            for task in handlers:
                task.cancel()
            await asyncio.gather(*handlers, return_exceptions=True)
        for listener in self.listeners:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(listener.server.wait_closed(), 5)
        return clean

    def abort(self) -> None:
        """Stop waiting for requests in flight (a second Ctrl-C): :meth:`shutdown` and
        any :meth:`remove` under way abandon them unacknowledged, then flush and close."""
        for export in (*self.exports, *self._draining):
            export.abort()
