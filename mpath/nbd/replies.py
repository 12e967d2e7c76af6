"""Replies of one connection gathered over an event-loop iteration and sent with one writev.

Why: the profile of the 4 KiB random-read export (docs/nbd.md) had one ``send`` system
call per reply as its largest single cost, and a lock plus a ``drain`` per reply
around it. With 32 requests in flight, several complete in one loop iteration; their
headers and payloads are queued here and written together, scatter-gather, straight
from the payload buffers (no join, no copy), by a callback scheduled once per
iteration. What the socket does not take at once goes to the asyncio transport's own
buffer, which keeps the order and sends it when the socket is writable again; no
reply is ever sent behind it directly.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Callable

log = logging.getLogger(__name__)

Buffer = bytes | bytearray | memoryview

#: Most buffers one writev takes (Linux's IOV_MAX).
IOV_MAX = 1024
#: Bytes the transport may hold unsent before a replying request waits for it to drain.
HIGH_WATER = 4 * 1024 * 1024
#: Socket send buffer asked for: room for a queue depth of large read replies, so one
#: writev takes them all and nothing is left for the transport (which would join the
#: rest into one new bytes object, a copy of every byte, on Python 3.11).
SEND_BUFFER = 8 * 1024 * 1024


class ReplyQueue:
    """Ordered output of one connection: :meth:`put` queues, the loop flushes."""

    def __init__(
        self, writer: asyncio.StreamWriter, on_broken: Callable[[BaseException], None]
    ) -> None:
        self.writer = writer
        self.transport = writer.transport
        sock = writer.get_extra_info("socket")
        self._fd: int | None = sock.fileno() if sock is not None else None
        if sock is not None:
            _grow_send_buffer(sock)
        self._on_broken = on_broken
        self._pending: list[Buffer] = []
        self._scheduled = False
        self._loop = asyncio.get_running_loop()

    def put(self, *buffers: Buffer) -> None:
        """Queue one reply (its buffers in order); it is sent at the end of this iteration."""
        self._pending.extend(buffers)
        if not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self.flush)

    @property
    def backlog(self) -> int:
        """Bytes the transport holds unsent (the socket was full)."""
        return self.transport.get_write_buffer_size()

    async def wait_drained(self) -> None:
        """Wait while the client reads too slowly (back-pressure for the request loop)."""
        if self.backlog > HIGH_WATER:
            await self.writer.drain()

    def flush(self) -> None:
        """Send everything queued: writev while the transport holds nothing, the rest to it."""
        self._scheduled = False
        buffers, self._pending = self._pending, []
        if not buffers:
            return
        transport = self.transport
        if transport.is_closing():
            return
        index = 0
        if self._fd is not None and not transport.get_write_buffer_size():
            try:
                while index < len(buffers):
                    batch = buffers[index : index + IOV_MAX]
                    sent = os.writev(self._fd, batch)
                    for buffer in batch:
                        size = len(buffer)
                        if sent < size:
                            if sent:  # partly sent: the rest goes to the transport
                                buffers[index] = memoryview(buffer).cast("B")[sent:]
                            break
                        sent -= size
                        index += 1
                    else:
                        continue
                    break
            except (BlockingIOError, InterruptedError):
                pass
            except OSError as exc:
                self._on_broken(exc)
                transport.abort()
                return
        if index < len(buffers):
            transport.writelines(buffers[index:])


def _grow_send_buffer(sock: socket.socket) -> None:
    """Ask for :data:`SEND_BUFFER` bytes (beyond net.core.wmem_max where permitted)."""
    for option in (getattr(socket, "SO_SNDBUFFORCE", None), socket.SO_SNDBUF):
        if option is None:
            continue
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, option, SEND_BUFFER)
            return
