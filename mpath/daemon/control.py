"""The control socket: ``mpath ctl`` talks to the daemon over a Unix socket.

Protocol: the client sends one JSON line ``{"command": ["show", "maps"]}`` and reads
one JSON line back: ``{"ok": true, "result": ...}`` or ``{"ok": false, "error":
"...", "exit_code": N}``. One request per connection, like multipathd's socket.

Who may do what is decided from the peer's credentials (``SO_PEERCRED``), which the
kernel fills in and the client cannot forge: anyone who can reach the socket (it is
world-connectable, in a 0755 directory) may ``show``; every other command needs root
(or the daemon's own user). Refusals name the command and the rule.

``show`` is answered from memory (:mod:`mpath.daemon.views`) without awaiting
anything; commands that change things run as their own tasks, so a slow one never
holds up another client.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import struct
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from mpath.daemon import views
from mpath.daemon.service import Daemon
from mpath.errors import ControlError, MpathError, NotPermittedError, UsageError
from mpath.nbd.listen import remove_stale_socket

log = logging.getLogger(__name__)

MAX_REQUEST_BYTES = 64 * 1024
REQUEST_TIMEOUT = 5.0
#: How long the client waits for an answer (a reload with discovery can take a while).
CLIENT_TIMEOUT = 120.0
_PEERCRED = struct.Struct("3i")

SHOW_WHAT = ("maps", "paths", "topology", "config", "stats", "map")
USAGE = (
    "commands: show {maps|paths|topology|config|stats}, show map NAME, "
    "fail path P, reinstate path P, add map [--alias NAME] PATH..., del map NAME, "
    "reconfigure, reset stats"
)


def peer_uid(sock: socket.socket) -> int:
    """The user id of the process at the other end of a Unix socket."""
    _pid, uid, _gid = _PEERCRED.unpack(
        sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _PEERCRED.size)
    )
    return int(uid)


def is_privileged(uid: int) -> bool:
    return uid in (0, os.geteuid())


class ControlServer:
    """Serves the control protocol for one :class:`Daemon` on one Unix socket."""

    def __init__(self, daemon: Daemon, path: Path, reload: Callable[[], Awaitable[Any]]) -> None:
        self.daemon = daemon
        self.path = path
        self._reload = reload
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        remove_stale_socket(str(self.path))
        try:
            self._server = await asyncio.start_unix_server(self._handle, path=str(self.path))
            os.chmod(self.path, 0o666)  # everyone may connect; SO_PEERCRED decides the rest
        except OSError as exc:
            raise UsageError(
                f"cannot listen on {self.path}: {exc.strerror or exc}"
                " (is another mpath daemon running?)"
            ) from None
        log.info("control socket %s", self.path)

    async def close(self) -> None:
        if self._server is None:
            return  # never listened: the socket file, if any, is another daemon's
        self._server.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._server.wait_closed(), 2)
        with contextlib.suppress(OSError):
            self.path.unlink()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            sock = writer.get_extra_info("socket")
            uid = peer_uid(sock) if sock is not None else -1
            try:
                line = await asyncio.wait_for(reader.readline(), REQUEST_TIMEOUT)
                if len(line) > MAX_REQUEST_BYTES or not line.endswith(b"\n"):
                    raise UsageError("request too long or not one JSON line")
                request = json.loads(line)
                command = request.get("command") if isinstance(request, dict) else None
                if not isinstance(command, list) or not all(isinstance(w, str) for w in command):
                    raise UsageError('request must be {"command": [WORD, ...]}')
                result = await self.dispatch(command, uid)
                answer: dict[str, Any] = {"ok": True, "result": result}
            except MpathError as exc:
                answer = {"ok": False, "error": str(exc), "exit_code": exc.exit_code,
                          "kind": type(exc).__name__}  # fmt: skip
            except (ValueError, TimeoutError) as exc:
                answer = {"ok": False, "error": f"bad request: {exc}", "exit_code": 2}
            writer.write(json.dumps(answer).encode() + b"\n")
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def dispatch(self, command: list[str], uid: int) -> Any:
        """Run one command for a caller with user id ``uid``."""
        if not command:
            raise UsageError(f"empty command; {USAGE}")
        verb, args = command[0], command[1:]
        if verb == "show":
            return self._show(args)
        if not is_privileged(uid):
            raise NotPermittedError(
                f"'{' '.join(command)}' needs root: only 'show' is open to other users "
                f"(you are uid {uid})"
            )
        daemon = self.daemon
        if verb in ("fail", "reinstate") and len(args) == 2 and args[0] == "path":
            log.info("control: %s path %s (uid %d)", verb, args[1], uid)
            if verb == "fail":
                return await daemon.fail_path(args[1])
            return daemon.reinstate_path(args[1])
        if verb == "add" and args[:1] == ["map"]:
            alias, paths = None, args[1:]
            if paths[:1] == ["--alias"]:
                if len(paths) < 2:
                    raise UsageError("add map --alias needs a NAME")
                alias, paths = paths[1], paths[2:]
            log.info("control: add map %s (uid %d)", " ".join(args[1:]), uid)
            return views.map_row(await daemon.add_map(paths, alias))
        if verb == "del" and len(args) == 2 and args[0] == "map":
            log.info("control: del map %s (uid %d)", args[1], uid)
            return {"map": args[1], "removed": True, "clean": await daemon.del_map(args[1])}
        if command == ["reconfigure"]:
            log.info("control: reconfigure (uid %d)", uid)
            return await self._reload()
        if command == ["reset", "stats"]:
            daemon.reset_stats()
            return {"reset": True}
        raise UsageError(f"unknown command {' '.join(command)!r}; {USAGE}")

    def _show(self, args: list[str]) -> Any:
        daemon = self.daemon
        if len(args) == 2 and args[0] == "map":
            return views.map_row(daemon.map(args[1]))
        if len(args) != 1 or args[0] not in SHOW_WHAT or args[0] == "map":
            raise UsageError(f"show what? {USAGE}")
        what = args[0]
        if what == "maps":
            return views.show_maps(daemon)
        if what == "paths":
            return views.show_paths(daemon)
        if what == "topology":
            return views.show_topology(daemon)
        if what == "config":
            return views.show_config(daemon)
        return views.show_stats(daemon)


def request(path: Path, command: list[str], *, timeout: float = CLIENT_TIMEOUT) -> Any:
    """Send one command to the daemon at ``path``; its result, or a ControlError (or
    the daemon's UsageError/NotPermittedError, with their exit codes)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        try:
            sock.connect(str(path))
        except FileNotFoundError:
            raise ControlError(
                f"no mpath daemon at {path} (start one with 'mpath daemon', or give --socket)"
            ) from None
        except ConnectionRefusedError:
            raise ControlError(f"no mpath daemon listening at {path} (stale socket)") from None
        except PermissionError:
            raise ControlError(f"cannot reach {path}: permission denied") from None
        sock.sendall(json.dumps({"command": command}).encode() + b"\n")
        data = b""
        while not data.endswith(b"\n"):
            chunk = sock.recv(1 << 16)
            if not chunk:
                break
            data += chunk
    except TimeoutError:
        raise ControlError(f"the daemon at {path} did not answer within {timeout:g} s") from None
    except OSError as exc:
        raise ControlError(f"{path}: {exc.strerror or exc}") from None
    finally:
        sock.close()
    try:
        answer = json.loads(data)
    except ValueError:
        raise ControlError(
            f"the daemon at {path} closed the connection without an answer"
        ) from None
    if not isinstance(answer, dict):
        raise ControlError(f"the daemon at {path} sent a malformed answer")
    if answer.get("ok"):
        return answer.get("result")
    message = str(answer.get("error", "unknown error"))
    if answer.get("kind") == "NotPermittedError":
        raise NotPermittedError(message)
    if answer.get("exit_code") == 2:
        raise UsageError(message)
    raise ControlError(message)
