"""What the TCP connection under a path says about the network (Linux ``TCP_INFO``).

When every path of a LUN is silent, the LUN may be slow or every path may be cut, and
the commands' answers cannot tell which. The kernel's TCP state can: a target whose
iSCSI layer is stalled still has a kernel that acknowledges the bytes sent to it,
while a cut link acknowledges nothing, and TCP times the unacknowledged bytes out
(retransmission timeouts). :func:`read_link` reads that state from a connected
socket; the stall watchdog (:mod:`mpath.filter.stall`) weighs it.
"""

from __future__ import annotations

import contextlib
import os
import socket
import struct
from dataclasses import dataclass

#: ``struct tcp_info`` (uapi/linux/tcp.h) up to ``tcpi_bytes_acked`` (Linux 4.1): 8
#: one-byte fields, 24 u32 (``tcpi_rto`` to ``tcpi_total_retrans``), then the u64
#: ``tcpi_pacing_rate``, ``tcpi_max_pacing_rate`` and ``tcpi_bytes_acked``.
_LAYOUT = struct.Struct("=8B24I3Q")
_RETRANSMITS = 2  # consecutive retransmission timeouts (icsk_retransmits)
_UNACKED = 8 + 4  # segments in flight, not acknowledged
_BYTES_ACKED = 8 + 24 + 2


@dataclass(frozen=True, slots=True)
class LinkState:
    """A TCP connection's view of its peer, at the moment it was read.

    ``unacked``: segments sent and not acknowledged yet. ``timeouts``: retransmission
    timeouts in a row without an acknowledgement (0 once the peer acknowledges).
    ``bytes_acked``: every byte the peer ever acknowledged on this connection: it
    grows only when an acknowledgement really arrives (a packet that never left this
    host, or was dropped on the way, does not count).
    """

    unacked: int
    timeouts: int
    bytes_acked: int


def parse_tcp_info(raw: bytes) -> LinkState:
    """The fields of a ``TCP_INFO`` answer that :class:`LinkState` keeps."""
    fields = _LAYOUT.unpack_from(raw)
    return LinkState(
        unacked=fields[_UNACKED], timeouts=fields[_RETRANSMITS], bytes_acked=fields[_BYTES_ACKED]
    )


def read_link(fd: int) -> LinkState | None:
    """The TCP state of the connected socket ``fd`` (borrowed: neither closed nor taken
    over), or None when it is not a TCP socket or the kernel says too little."""
    try:
        copy = os.dup(fd)
    except OSError:
        return None
    try:
        sock = socket.socket(fileno=copy)
    except OSError:
        with contextlib.suppress(OSError):
            os.close(copy)
        return None
    with sock:
        try:
            raw = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, _LAYOUT.size)
        except OSError:
            return None
    if len(raw) < _LAYOUT.size:
        return None
    return parse_tcp_info(raw)
