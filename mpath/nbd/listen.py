"""Where the NBD server listens, and the policy that keeps the LUN off the network.

``unix:PATH`` or ``tcp:HOST:PORT``; only Unix sockets and loopback addresses are
served (:func:`check_listen_policy`): an NBD export has no authentication, so anyone
who can reach the socket can read and write the LUN.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import stat
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from mpath.errors import DeviceError, UsageError

DEFAULT_PORT = 10809


@dataclass(frozen=True, slots=True)
class ListenAddress:
    """Where the server listens: a Unix socket path, or a TCP host and port."""

    kind: str  # "unix" or "tcp"
    path: str = ""
    host: str = ""
    port: int = 0

    @classmethod
    def parse(cls, text: str) -> ListenAddress:
        """``unix:PATH`` or ``tcp:HOST:PORT`` (``tcp:[::1]:PORT`` for IPv6; port 0 picks one)."""
        kind, sep, rest = text.partition(":")
        if not sep or not rest:
            raise UsageError(f"bad --listen {text!r}: expected unix:SOCKET or tcp:HOST:PORT")
        if kind == "unix":
            return cls("unix", path=os.path.abspath(rest))
        if kind != "tcp":
            raise UsageError(f"bad --listen {text!r}: expected unix:SOCKET or tcp:HOST:PORT")
        if rest.startswith("["):
            host, bracket, port_text = rest[1:].partition("]:")
            if not bracket:
                raise UsageError(f"bad --listen {text!r}: expected tcp:[IPV6]:PORT")
        else:
            host, colon, port_text = rest.rpartition(":")
            if not colon:
                raise UsageError(f"bad --listen {text!r}: expected tcp:HOST:PORT")
        try:
            port = int(port_text)
        except ValueError:
            raise UsageError(f"bad port in --listen {text!r}") from None
        if not 0 <= port <= 65535:
            raise UsageError(f"bad port in --listen {text!r}: {port}")
        if host == "localhost":
            host = "127.0.0.1"
        try:
            ipaddress.ip_address(host)
        except ValueError:
            raise UsageError(
                f"bad host in --listen {text!r}: give an IP address (127.0.0.1, ::1)"
            ) from None
        return cls("tcp", host=host, port=port)

    @property
    def is_local(self) -> bool:
        """True for Unix sockets and loopback addresses: not reachable from the network."""
        return self.kind == "unix" or ipaddress.ip_address(self.host).is_loopback

    def uri(self, port: int | None = None, export: str = "") -> str:
        """The NBD URI of an export (the default one: ``""``) at this address:
        ``nbd+unix:///EXPORT?socket=PATH`` or ``nbd://HOST:PORT/EXPORT``."""
        name = quote(export, safe="")
        if self.kind == "unix":
            return f"nbd+unix:///{name}?socket={quote(self.path, safe='/')}"
        host = f"[{self.host}]" if ":" in self.host else self.host
        at = f"nbd://{host}:{self.port if port is None else port}"
        return f"{at}/{name}" if name else at

    def __str__(self) -> str:
        if self.kind == "unix":
            return f"unix:{self.path}"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"tcp:{host}:{self.port}"


def check_listen_policy(address: ListenAddress, *, allow_remote: bool) -> None:
    """Refuse to expose the LUN to the network: only loopback and Unix sockets are served.

    A non-loopback bind needs ``--allow-remote`` *and* TLS; this version does not
    implement TLS, so it refuses such binds either way, saying why.
    """
    if address.is_local:
        return
    if not allow_remote:
        raise UsageError(
            f"refusing to listen on {address}: that is reachable from the network; "
            "exporting the LUN there needs --allow-remote and TLS (use a Unix socket or "
            "127.0.0.1, and ssh -L to reach it from elsewhere)"
        )
    raise UsageError(
        f"refusing to listen on {address}: a non-loopback export needs TLS, and this "
        "version of 'mpath serve' does not implement TLS; listen on a Unix socket or "
        "127.0.0.1 and tunnel it (ssh -L)"
    )


def remove_stale_socket(path: str) -> None:
    """Clear a socket file left by a dead server; refuse a live one or a non-socket."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        parent = Path(path).parent
        if not parent.is_dir():
            raise UsageError(f"cannot listen on unix:{path}: {parent} does not exist") from None
        return
    if not stat.S_ISSOCK(info.st_mode):
        raise UsageError(f"cannot listen on unix:{path}: it exists and is not a socket")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.settimeout(1.0)
        probe.connect(path)
    except OSError:
        os.unlink(path)  # nobody answers: a leftover of a server that died
        return
    finally:
        probe.close()
    raise DeviceError(f"cannot listen on unix:{path}: another server is using it")
