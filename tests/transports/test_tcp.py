"""``TCP_INFO`` as the stall watchdog reads it (mpath/transports/tcp.py)."""

from __future__ import annotations

import os
import socket
import struct
import time

from mpath.transports.tcp import LinkState, parse_tcp_info, read_link


def test_the_fields_come_from_their_places_in_struct_tcp_info() -> None:
    # Byte offsets in the kernel's struct tcp_info (uapi/linux/tcp.h): tcpi_retransmits
    # is the third byte, tcpi_unacked the fifth u32 after the 8 bytes of u8 fields, and
    # tcpi_bytes_acked the u64 after tcpi_pacing_rate and tcpi_max_pacing_rate.
    raw = bytearray(232)
    raw[2] = 3
    struct.pack_into("=I", raw, 24, 7)
    struct.pack_into("=Q", raw, 120, 123_456_789_012)
    struct.pack_into("=I", raw, 20, 99)  # tcpi_rcv_mss: next to unacked, not read
    assert parse_tcp_info(bytes(raw)) == LinkState(
        unacked=7, timeouts=3, bytes_acked=123_456_789_012
    )


def _acknowledged(sock: socket.socket) -> LinkState | None:
    """The state once nothing is in flight (the peer may delay its ACK a little)."""
    deadline = time.monotonic() + 2.0
    while True:
        state = read_link(sock.fileno())
        if state is None or state.unacked == 0 or time.monotonic() > deadline:
            return state
        time.sleep(0.005)  # the kernel's ACK state: nothing to await


def test_a_connection_whose_peer_acknowledged_everything_has_nothing_unacked() -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        client = socket.create_connection(server.getsockname())
        peer, _ = server.accept()
        with client, peer:
            before = read_link(client.fileno())
            client.sendall(b"x" * 1000)
            assert len(peer.recv(1000)) == 1000
            state = _acknowledged(client)
            assert before is not None and state is not None
            assert state.unacked == 0
            assert state.timeouts == 0
            assert state.bytes_acked == before.bytes_acked + 1000
            client.sendall(b"y")  # the descriptor was only borrowed: still open
            assert peer.recv(1) == b"y"


def test_what_is_not_a_tcp_socket_says_nothing_and_keeps_no_descriptor() -> None:
    read_end, write_end = os.pipe()
    try:
        open_before = len(os.listdir("/proc/self/fd"))
        assert read_link(read_end) is None
        assert len(os.listdir("/proc/self/fd")) == open_before
    finally:
        os.close(read_end)
        os.close(write_end)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as unix:
        assert read_link(unix.fileno()) is None
