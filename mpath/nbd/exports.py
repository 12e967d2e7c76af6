"""Named exports behind one NBD server: each a device, its limits and its clients.

One server may serve many LUNs (``mpath daemon`` serves one export per map). Clients
pick an export by name during the handshake (``NBD_OPT_GO``, ``NBD_OPT_INFO``,
``NBD_OPT_EXPORT_NAME``) and ``NBD_OPT_LIST`` names them all, so the registry
(:class:`Exports`) is what the handshake reads and :class:`Export` is what a
connection serves once it chose one.

Exports come and go while the server runs. Removing one
(:meth:`~mpath.nbd.server.NbdServer.remove`) takes it out of the registry first, so
new clients are refused at once (it is no longer listed, and asking for it is an
unknown export), and only then drains it (:meth:`Export.close`): requests in flight
finish, the device is flushed, the clients are disconnected.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING

from mpath.errors import MpathError, UsageError
from mpath.nbd.byteio import ByteIO
from mpath.nbd.limits import ByteBudget
from mpath.nbd.protocol import (
    TFLAG_CAN_MULTI_CONN,
    TFLAG_HAS_FLAGS,
    TFLAG_READ_ONLY,
    TFLAG_SEND_FAST_ZERO,
    TFLAG_SEND_FLUSH,
    TFLAG_SEND_FUA,
    TFLAG_SEND_TRIM,
    TFLAG_SEND_WRITE_ZEROES,
)
from mpath.nbd.settings import BlockDevice, SavingCommands, ServeSettings, ServeStats

if TYPE_CHECKING:
    from mpath.nbd.connection import Connection

log = logging.getLogger(__name__)

#: The protocol's limit on an export name (UTF-8 bytes).
MAX_NAME_BYTES = 4096


class Export:
    """One export: a device under a name, with its settings, counters and clients.

    ``settings`` gives what is per export: ``read_only``, ``max_request_bytes``,
    ``shutdown_timeout`` (how long :meth:`close` waits for requests in flight) and
    ``description`` (what ``NBD_OPT_LIST`` and ``nbdinfo`` show). ``budget`` is the
    server-wide byte budget shared by every export.
    """

    def __init__(
        self,
        name: str,
        device: BlockDevice,
        settings: ServeSettings,
        budget: ByteBudget,
        saving: SavingCommands | None = None,
        stats: ServeStats | None = None,
    ) -> None:
        if len(name.encode()) > MAX_NAME_BYTES:
            raise UsageError(f"export name longer than {MAX_NAME_BYTES} bytes")
        self.name = name
        self.device = device
        self.settings = settings
        self.budget = budget
        self.saving = saving
        self.stats = stats if stats is not None else ServeStats()
        self.io = ByteIO(device, self.stats, saving)
        self.block_size = device.block_size
        self.size_bytes = device.size_bytes
        if settings.max_request_bytes % self.block_size:
            raise UsageError("max_request_bytes must be a multiple of the block size")
        #: Set when draining began: no client may choose it, new requests get ESHUTDOWN.
        self.closing = False
        self.clients: set[Connection] = set()
        self._abort = asyncio.Event()

    @property
    def description(self) -> str:
        return self.settings.description

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

    def attach(self, connection: Connection) -> bool:
        """A client chose this export; False (and not attached) once it is closing."""
        if self.closing:
            return False
        self.clients.add(connection)
        self.stats.sessions += 1
        return True

    async def detach(self, connection: Connection) -> None:
        """A client left (its requests finished). The last one out flushes what was
        acknowledged, since nobody is left to ask for it."""
        if connection not in self.clients:
            return
        self.clients.discard(connection)
        if not self.clients and self.io.dirty and not self.closing:
            try:
                await self.io.flush()
            except MpathError as exc:
                log.warning("export %r: flush after the last client left failed: %s",
                            self.name, exc)  # fmt: skip

    async def close(self) -> bool:
        """Drain: new requests get ``ESHUTDOWN``, requests in flight finish (for at most
        ``shutdown_timeout`` seconds, or until :meth:`abort`), the device is flushed
        if anything was written, then the clients are disconnected.

        True when every request in flight completed and the flush succeeded; False if
        some were abandoned unacknowledged or the flush failed. The device stays open.
        """
        clean = True
        self.closing = True
        for connection in list(self.clients):
            if not connection.transmitting:
                connection.writer.close()
        pending = [t for c in self.clients for t in c.tasks]
        if pending:
            log.info("export %r: waiting for %d request(s) in flight", self.name, len(pending))
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
                    "export %r: abandoning %d request(s) still unfinished %s (not acknowledged)",
                    self.name,
                    len(unfinished),
                    "on request"
                    if self._abort.is_set()
                    else f"after {self.settings.shutdown_timeout:g} s",
                )
                for connection in self.clients:
                    connection.disconnected = True  # no reply for what did not finish
                for task in unfinished:
                    task.cancel()
                await asyncio.gather(*unfinished, return_exceptions=True)
        if self.io.dirty and not self.settings.read_only:
            try:
                await asyncio.wait_for(self.io.flush(), max(self.settings.shutdown_timeout, 10.0))
            except (MpathError, TimeoutError) as exc:
                clean = False
                log.warning("export %r: final flush failed: %s", self.name, exc)
        for connection in list(self.clients):
            connection.flush_replies()
            connection.writer.close()
        return clean

    def abort(self) -> None:
        """Stop waiting for requests in flight: :meth:`close` abandons them."""
        self._abort.set()


class Exports:
    """The registry: export name -> :class:`Export`, in the order they were added
    (the order ``NBD_OPT_LIST`` answers in)."""

    def __init__(self) -> None:
        self._by_name: dict[str, Export] = {}

    def add(self, export: Export) -> None:
        if export.name in self._by_name:
            raise UsageError(f"an NBD export named {export.name!r} already exists")
        self._by_name[export.name] = export

    def get(self, name: str) -> Export | None:
        return self._by_name.get(name)

    def remove(self, name: str) -> Export:
        """Take an export out: no longer listed, no longer found by name."""
        try:
            return self._by_name.pop(name)
        except KeyError:
            raise UsageError(f"no NBD export named {name!r}") from None

    def names(self) -> list[str]:
        return list(self._by_name)

    def unknown(self, name: str) -> str:
        """The message for a client asking for a name that is not served."""
        known = ", ".join(repr(n) for n in list(self._by_name)[:16])
        if len(self._by_name) > 16:
            known += ", ..."
        return f"no export named {name!r} (exports: {known or 'none'})"

    def __iter__(self) -> Iterator[Export]:
        return iter(list(self._by_name.values()))

    def __len__(self) -> int:
        return len(self._by_name)

    def __contains__(self, name: object) -> bool:
        return name in self._by_name
