"""The control socket: protocol, errors, and who may do what (SO_PEERCRED)."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest

from mpath.daemon.control import ControlServer, request
from mpath.daemon.service import Daemon
from mpath.errors import ControlError, DeviceError, NotPermittedError, UsageError

NOBODY = 65534


async def _reload() -> dict[str, Any]:
    return {"kept": []}


async def serve(path: Path) -> tuple[Daemon, ControlServer]:
    daemon = Daemon(None)
    server = ControlServer(daemon, path, _reload)
    await server.start()
    return daemon, server


def test_show_and_errors_over_the_socket(tmp_path: Path) -> None:
    async def main() -> None:
        path = tmp_path / "control.sock"
        _daemon, server = await serve(path)
        try:
            assert oct(path.stat().st_mode & 0o777) == "0o666"
            assert await asyncio.to_thread(request, path, ["show", "maps"]) == []
            stats = await asyncio.to_thread(request, path, ["show", "stats"])
            assert stats["pid"] == os.getpid() and stats["maps"] == []
            with pytest.raises(UsageError, match="show what"):
                await asyncio.to_thread(request, path, ["show", "everything"])
            with pytest.raises(UsageError, match="no map named 'x'"):
                await asyncio.to_thread(request, path, ["show", "map", "x"])
            with pytest.raises(UsageError, match="no path 'x:1'"):
                await asyncio.to_thread(request, path, ["fail", "path", "x:1"])
            assert await asyncio.to_thread(request, path, ["reconfigure"]) == {"kept": []}
        finally:
            await server.close()
        assert not path.exists()

    asyncio.run(main())


def test_a_second_server_on_a_live_socket_is_refused_and_leaves_it_alone(
    tmp_path: Path,
) -> None:
    """A second daemon on the same listen_dir fails to start; stopping it must not
    remove the running daemon's socket."""

    async def main() -> None:
        path = tmp_path / "control.sock"
        _daemon, first = await serve(path)
        try:
            with pytest.raises(DeviceError, match="another server is using it"):
                await serve(path)
            second = ControlServer(Daemon(None), path, _reload)
            with pytest.raises(DeviceError):
                await second.start()
            await second.close()
            assert path.exists()
            assert await asyncio.to_thread(request, path, ["show", "maps"]) == []
        finally:
            await first.close()
        assert not path.exists()

    asyncio.run(main())


def test_only_show_is_open_to_other_users(tmp_path: Path) -> None:
    async def main() -> None:
        _daemon, server = await serve(tmp_path / "c.sock")
        try:
            assert await server.dispatch(["show", "paths"], NOBODY) == []
            with pytest.raises(NotPermittedError, match="'fail path m:1' needs root"):
                await server.dispatch(["fail", "path", "m:1"], NOBODY)
            with pytest.raises(NotPermittedError):
                await server.dispatch(["reconfigure"], NOBODY)
        finally:
            await server.close()

    asyncio.run(main())


def test_no_daemon_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ControlError, match="no mpath daemon at"):
        request(tmp_path / "missing.sock", ["show", "maps"])


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run a client as another user")
@pytest.mark.skipif(shutil.which("setpriv") is None, reason="setpriv (util-linux) missing")
def test_a_real_non_root_client_gets_show_and_is_refused_fail() -> None:
    """The user id comes from the kernel (SO_PEERCRED), from a process that is not root."""
    with tempfile.TemporaryDirectory(prefix="mpath-ctl-") as directory:
        os.chmod(directory, 0o755)  # pytest's own tmp_path is private to root
        _run_as_nobody(Path(directory) / "control.sock")


def _run_as_nobody(path: Path) -> None:
    as_nobody = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
                 sys.executable, "-m", "mpath", "ctl", "--socket", str(path)]  # fmt: skip

    async def main() -> None:
        _daemon, server = await serve(path)
        try:
            show = await asyncio.create_subprocess_exec(
                *as_nobody, "show", "maps", "--json", stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )  # fmt: skip
            out, err = await show.communicate()
            assert show.returncode == 0, err
            assert out.strip() == b"[]"
            fail = await asyncio.create_subprocess_exec(
                *as_nobody, "fail", "path", "m:1", stdout=subprocess.PIPE, stderr=subprocess.PIPE
            )
            out, err = await fail.communicate()
            assert fail.returncode == 1
            assert err.decode().strip() == (
                "mpath: error: 'fail path m:1' needs root: only 'show' is open to other "
                f"users (you are uid {NOBODY})"
            )
        finally:
            await server.close()

    asyncio.run(main())
