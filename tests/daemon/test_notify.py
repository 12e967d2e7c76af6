"""systemd notifications reach a (fake) notify socket."""

from __future__ import annotations

import os
import socket
from pathlib import Path

from mpath.daemon.notify import Notifier


def test_notifications_arrive_as_datagrams(tmp_path: Path) -> None:
    address = str(tmp_path / "notify")
    receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    receiver.bind(address)
    receiver.settimeout(5)
    try:
        notifier = Notifier({"NOTIFY_SOCKET": address, "WATCHDOG_USEC": "2000000",
                             "WATCHDOG_PID": str(os.getpid())})  # fmt: skip
        assert notifier.watchdog_interval == 1.0
        assert notifier.ready("serving 2 map(s)")
        assert receiver.recv(4096) == b"READY=1\nSTATUS=serving 2 map(s)"
        assert notifier.reloading()
        message = receiver.recv(4096).decode()
        assert message.startswith("RELOADING=1\nMONOTONIC_USEC=")
        assert notifier.watchdog()
        assert receiver.recv(4096) == b"WATCHDOG=1"
        assert notifier.stopping()
        assert receiver.recv(4096).startswith(b"STOPPING=1")
    finally:
        receiver.close()


def test_abstract_socket_and_no_socket() -> None:
    assert Notifier({"NOTIFY_SOCKET": "@sd"}).address == "\0sd"
    silent = Notifier({})
    assert not silent.enabled and not silent.send(READY=1)
    assert Notifier({"WATCHDOG_USEC": "1000", "WATCHDOG_PID": "1"}).watchdog_interval is None
