"""``TCP_INFO`` as the stall watchdog reads it (mpath/transports/tcp.py)."""

from __future__ import annotations

import os
import socket
import struct

from mpath.transports.tcp import LinkState, parse_tcp_info, read_link


def test_the_fields_come_from_their_places_in_struct_tcp_info() -> None:
    # state, ca_state, retransmits, probes, backoff, options, wscale, flags; then rto,
    # ato, snd_mss, rcv_mss, unacked, sacked, lost, retrans, fackets, last_data_sent,
    # last_ack_sent, last_data_recv, last_ack_recv (the kernel's uapi/linux/tcp.h).
    raw = struct.pack(
        "=8B13I", 1, 0, 3, 0, 3, 0, 0, 0, *range(200, 204), 7, 0, 0, 0, 0, 1250, 0, 0, 0
    )
    assert parse_tcp_info(raw + bytes(40)) == LinkState(unacked=7, timeouts=3, since_sent=1.25)


def test_a_connection_whose_peer_acknowledged_everything_has_nothing_unacked() -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        client = socket.create_connection(server.getsockname())
        peer, _ = server.accept()
        with client, peer:
            client.sendall(b"x" * 1000)
            assert peer.recv(1000)
            state = read_link(client.fileno())
            assert state is not None
            assert state.unacked == 0
            assert state.timeouts == 0
            assert 0 <= state.since_sent < 5
            client.sendall(b"y")  # the descriptor was only borrowed: still open
            assert peer.recv(1) == b"y"


def test_what_is_not_a_tcp_socket_says_nothing() -> None:
    read_end, write_end = os.pipe()
    try:
        assert read_link(read_end) is None
    finally:
        os.close(read_end)
        os.close(write_end)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as unix:
        assert read_link(unix.fileno()) is None
