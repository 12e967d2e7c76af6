"""Keeping an asyncio loop's watch on a libiscsi socket in step with libiscsi.

libiscsi says which poll events its socket needs (``iscsi_which_events``) and does
its work when told they happened (``iscsi_service``). Both users of a libiscsi
context — the iSCSI transport and the SendTargets discovery session — register the
socket with the loop for exactly those events, and poll again after 100 ms when
libiscsi asks for none (it does so while waiting to reconnect or retry).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from mpath.transports import libiscsi as li

#: How soon libiscsi is serviced again when it asks for no events at all.
IDLE_POLL_S = 0.1


class SocketWatch:
    """The loop's reader/writer registrations for one libiscsi socket."""

    def __init__(self, service: Callable[[int], None]) -> None:
        self._service = service
        self._loop: asyncio.AbstractEventLoop | None = None
        self._retry: asyncio.TimerHandle | None = None
        self.fd = -1
        self.events = 0

    def update(self, loop: asyncio.AbstractEventLoop, fd: int, events: int) -> None:
        """Watch ``fd`` (a socket, >= 0) for exactly ``events`` (POLLIN/POLLOUT)."""
        if fd != self.fd:
            # Only during login (a redirect reconnects): forget the old socket.
            self.clear()
            self.fd = fd
        self._loop = loop
        old = self.events
        if events & li.POLLIN and not old & li.POLLIN:
            loop.add_reader(fd, self._service, li.POLLIN)
        elif old & li.POLLIN and not events & li.POLLIN:
            loop.remove_reader(fd)
        if events & li.POLLOUT and not old & li.POLLOUT:
            loop.add_writer(fd, self._service, li.POLLOUT)
        elif old & li.POLLOUT and not events & li.POLLOUT:
            loop.remove_writer(fd)
        self.events = events
        if events == 0 and self._retry is None:
            self._retry = loop.call_later(IDLE_POLL_S, self._poll_again)

    def _poll_again(self) -> None:
        self._retry = None
        self._service(0)

    def clear(self) -> None:
        """Stop watching (before the socket is closed); safe to call at any time."""
        if self._retry is not None:
            self._retry.cancel()
            self._retry = None
        loop = self._loop
        if self.fd >= 0 and loop is not None and not loop.is_closed():
            if self.events & li.POLLIN:
                loop.remove_reader(self.fd)
            if self.events & li.POLLOUT:
                loop.remove_writer(self.fd)
        self.events = 0
        self.fd = -1
