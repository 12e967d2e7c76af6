"""What the TCP connection under a path says about the network (Linux ``TCP_INFO``).

When every path of a LUN is silent, the LUN may be slow or every path may be cut, and
the commands' answers cannot tell which. The kernel's TCP state can: a target whose
iSCSI layer is stalled still has a kernel that acknowledges the bytes sent to it,
while a cut link acknowledges nothing, and TCP times the unacknowledged bytes out
(retransmission timeouts). :func:`read_link` reads that state from a connected
socket; the stall watchdog (:mod:`mpath.filter.stall`) weighs it.
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass

#: ``struct tcp_info`` up to ``tcpi_last_ack_recv``: 8 one-byte fields, then 13 u32.
_LAYOUT = struct.Struct("=8B13I")
_RETRANSMITS, _UNACKED, _LAST_DATA_SENT = 2, 8 + 4, 8 + 9


@dataclass(frozen=True, slots=True)
class LinkState:
    """A TCP connection's view of its peer, at the moment it was read.

    ``unacked``: segments sent and not acknowledged yet. ``timeouts``: retransmission
    timeouts in a row without an acknowledgement (0 once the peer acknowledges).
    ``since_sent``: seconds since data last left (retransmissions count), to the
    kernel's millisecond.
    """

    unacked: int
    timeouts: int
    since_sent: float


def parse_tcp_info(raw: bytes) -> LinkState:
    """The fields of a ``TCP_INFO`` answer that :class:`LinkState` keeps."""
    fields = _LAYOUT.unpack_from(raw)
    return LinkState(
        unacked=fields[_UNACKED],
        timeouts=fields[_RETRANSMITS],
        since_sent=fields[_LAST_DATA_SENT] / 1000,
    )


def read_link(fd: int) -> LinkState | None:
    """The TCP state of the connected socket ``fd`` (not closed, not taken over), or
    None when it is not a TCP socket or the kernel does not say."""
    try:
        with socket.socket(fileno=socket.dup(fd)) as sock:
            raw = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, _LAYOUT.size)
    except OSError:
        return None
    if len(raw) < _LAYOUT.size:
        return None
    return parse_tcp_info(raw)
