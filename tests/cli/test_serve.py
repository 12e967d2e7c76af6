"""``mpath serve``: refusals (exit 2) without a rig; on a real rig, the ready line, an
nbdcopy round trip of a 256 MiB image, read-only mode and clean stops on SIGTERM/SIGINT."""

from __future__ import annotations

import json
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from mpath.cli import main
from mpath.rig import Rig, RigManager
from tests.conftest import unique_rig_name
from tests.discovery.loops import LoopFactory, loop_devices, make_image

IMAGE = 256 * 1024 * 1024
MPATH = [sys.executable, "-m", "mpath"]


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, ["serve", *args])
    return result.exit_code, result.stdout, result.stderr


def test_help_lists_examples() -> None:
    code, out, _err = invoke("--help")
    assert code == 0
    assert "Examples:" in out and "nbdcopy" in out and "--listen" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--listen", "tcp:0.0.0.0:10809"], "--allow-remote"),
        (["--listen", "tcp:192.0.2.1:10809", "--allow-remote"], "does not implement TLS"),
        (["--listen", "udp:127.0.0.1:1"], "expected unix:SOCKET or tcp:HOST:PORT"),
        (["--listen", "tcp:nbd.example:1"], "give an IP address"),
        ([], "give at least one PATH"),
        (["/dev/sdz"], "/dev/sdz: no such device node"),
        (["/dev/null"], "not a block device"),
        (
            [
                "iscsi://198.18.250.2/iqn.x:a/1",
                "iscsi://198.18.251.2/iqn.x:a/1",
                "--policy",
                "quota",
                "--path-args",
                "1",
            ],
            "--path-args given 1 times for 2 paths",
        ),
    ],
)
def test_bad_usage_exits_2_with_one_clear_line(args: list[str], message: str) -> None:
    code, out, err = invoke(*args)
    assert code == 2, (out, err)
    assert message in err
    assert "Traceback" not in err and out == ""


# -- real rig ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def rig() -> Iterator[Rig]:
    manager = RigManager()
    name = unique_rig_name("srv")
    try:
        yield manager.up(name=name, paths=2, size=IMAGE)
    finally:
        manager.down(name)


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """Unix socket paths are limited to 107 bytes; pytest's tmp_path can be longer."""
    folder = Path(tempfile.mkdtemp(prefix="mpserve-", dir="/tmp"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


class Server:
    """``mpath serve`` as a subprocess: started, read until ready, always stopped."""

    def __init__(self, *args: str) -> None:
        self.process = subprocess.Popen(
            [*MPATH, "serve", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )

    def ready(self, timeout: float = 30) -> dict[str, Any]:
        """The --json ready document, read as it arrives (bounded; no sleeping)."""
        assert self.process.stdout is not None
        deadline = time.monotonic() + timeout
        text = b""
        fd = self.process.stdout.fileno()
        while True:
            try:
                document: dict[str, Any] = json.loads(text)
                return document
            except ValueError:
                pass
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no ready document within {timeout} s: {text!r}")
            readable, _w, _x = select.select([fd], [], [], remaining)
            if readable:
                chunk = os.read(fd, 65536)
                if not chunk:
                    raise AssertionError(f"server exited before ready: {self.stop()}")
                text += chunk

    def stop(self, signum: int = signal.SIGTERM, timeout: float = 60) -> tuple[int, str]:
        """Signal the server, wait (bounded); returns its exit code and stderr."""
        if self.process.poll() is None:
            self.process.send_signal(signum)
        try:
            _out, err = self.process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            _out, err = self.process.communicate()
            raise AssertionError(f"server did not stop within {timeout} s") from None
        return self.process.returncode, err.decode()

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.communicate()


def run_tool(*argv: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)


@pytest.mark.rig
@pytest.mark.skipif(shutil.which("nbdcopy") is None, reason="nbdcopy not installed (make setup)")
def test_nbdcopy_of_a_256_mib_image_round_trips_byte_identical(
    rig: Rig, short_dir: Path, tmp_path: Path
) -> None:
    sock = short_dir / "nbd.sock"
    source, back = tmp_path / "image.raw", tmp_path / "back.raw"
    with source.open("wb") as image:
        for _ in range(IMAGE // (16 * 1024 * 1024)):
            image.write(os.urandom(16 * 1024 * 1024))
    server = Server("--rig", rig.name, "--listen", f"unix:{sock}", "--json")
    try:
        ready = server.ready()
        assert ready["uri"] == f"nbd+unix:///?socket={sock}"
        assert ready["size_bytes"] == IMAGE and ready["block_size"] == 512
        assert ready["paths"] == rig.urls and ready["read_only"] is False
        assert ready["wwid"] and ready["pid"] == server.process.pid
        copy_in = run_tool("nbdcopy", "--flush", str(source), ready["uri"])
        assert copy_in.returncode == 0, copy_in.stderr
        copy_out = run_tool("nbdcopy", ready["uri"], str(back))
        assert copy_out.returncode == 0, copy_out.stderr
        code, err = server.stop(signal.SIGTERM)
    finally:
        server.kill()
    compared = run_tool("cmp", str(source), str(back))
    assert compared.returncode == 0, compared.stdout + compared.stderr
    assert code == 0, err
    assert "SIGTERM: stopping" in err and "stopped after" in err and "0 error(s)" in err
    assert not sock.exists()
    # What the target stores is what went in, too (the rig's backing file).
    assert run_tool("cmp", str(source), rig.lun.backing_file).returncode == 0


@pytest.mark.rig
@pytest.mark.skipif(shutil.which("nbdinfo") is None, reason="nbdinfo not installed (make setup)")
def test_read_only_tcp_export_and_sigint(rig: Rig) -> None:
    server = Server("--rig", rig.name, "--listen", "tcp:127.0.0.1:0", "--read-only", "--json")
    try:
        ready = server.ready()
        port = int(ready["listen"].rsplit(":", 1)[1])
        assert port > 0 and ready["uri"] == f"nbd://127.0.0.1:{port}"
        info = run_tool("nbdinfo", "--json", ready["uri"])
        assert info.returncode == 0, info.stderr
        (export,) = json.loads(info.stdout)["exports"]
        assert export["is_read_only"] is True and export["export-size"] == IMAGE
        code, err = server.stop(signal.SIGINT)
    finally:
        server.kill()
    assert code == 0, err
    assert "SIGINT: stopping" in err


@pytest.mark.rig
def test_a_busy_socket_is_refused_with_exit_1(rig: Rig, short_dir: Path) -> None:
    sock = short_dir / "nbd.sock"
    first = Server("--rig", rig.name, "--listen", f"unix:{sock}", "--json")
    try:
        first.ready()
        second = subprocess.run(
            [*MPATH, "serve", "--rig", rig.name, "--listen", f"unix:{sock}"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert second.returncode == 1, second.stderr
        assert "another server is using it" in second.stderr
        assert "Traceback" not in second.stderr
        code, err = first.stop()
    finally:
        first.kill()
    assert code == 0, err


@pytest.mark.skipif(shutil.which("nbdcopy") is None, reason="nbdcopy not installed (make setup)")
def test_two_loop_devices_over_one_file_serve_one_export(
    loop_devices: LoopFactory, short_dir: Path, tmp_path: Path
) -> None:
    backing = make_image(tmp_path, "lun.img", 8 * 1024 * 1024)
    nodes = [loop_devices(backing), loop_devices(backing)]
    source, back = tmp_path / "image.raw", tmp_path / "back.raw"
    source.write_bytes(os.urandom(8 * 1024 * 1024))
    sock = short_dir / "loops.sock"
    server = Server(*nodes, "--listen", f"unix:{sock}", "--json")
    try:
        ready = server.ready()
        assert ready["paths"] == nodes
        assert run_tool("nbdcopy", "--flush", str(source), ready["uri"]).returncode == 0
        assert run_tool("nbdcopy", ready["uri"], str(back)).returncode == 0
        code, err = server.stop(signal.SIGTERM)
    finally:
        server.kill()
    assert code == 0, err
    assert run_tool("cmp", str(source), str(back)).returncode == 0
    assert run_tool("cmp", str(source), str(backing)).returncode == 0


__all__ = ["loop_devices"]  # the fixture, imported for this module's tests
