"""Real NBD clients against the server over fake paths: libnbd's nbdinfo, nbdcopy and
nbdsh (its Python binding, run by the system Python as a subprocess), and fio's nbd
engine. They skip, saying why, where the tools are missing (``make setup`` installs
them: libnbd-bin, python3-libnbd, fio)."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from tests.nbd.client import bounded, fake_server

SYSTEM_PYTHON = "/usr/bin/python3"


def need(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        pytest.skip(f"{tool} not installed (make setup)")
    return path


def need_libnbd_python() -> None:
    """nbdsh runs libnbd's Python binding, which Debian ships for the system Python."""
    probe = subprocess.run(
        [SYSTEM_PYTHON, "-c", "import nbd"], capture_output=True, check=False, timeout=30
    )
    if probe.returncode:
        pytest.skip("python3-libnbd (nbdsh) not installed for the system Python (make setup)")


async def run_tool(*argv: str, timeout: float = 60) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), timeout)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


def fio_json(text: str) -> dict[str, Any]:
    """fio's JSON report; its nbd engine prints a line ("connected to NBD server") first."""
    document: dict[str, Any] = json.loads(text[text.index("{") :])
    return document


def run(body: Callable[[], Awaitable[None]]) -> None:
    async def bounded_body() -> None:
        await bounded(body(), 90)

    asyncio.run(bounded_body())


def test_nbdinfo_sees_the_export_and_its_limits(sock: str) -> None:
    nbdinfo = need("nbdinfo")

    async def body() -> None:
        async with fake_server(sock, blocks=8192) as (server, _device, _lun):
            code, out, err = await run_tool(nbdinfo, "--json", server.uri)
            assert code == 0, err
            info = json.loads(out)
            assert info["protocol"] == "newstyle-fixed" and info["TLS"] is False
            (export,) = info["exports"]
            assert export["export-size"] == 8192 * 512
            assert export["block_size_minimum"] == 512
            assert export["block_size_preferred"] == 4096
            assert export["can_flush"] and export["can_fua"] and export["can_zero"]
            assert export["can_multi_conn"] and not export["can_trim"]
            assert not export["is_read_only"]
            code, out, err = await run_tool(nbdinfo, "--list", "--json", server.uri)
            assert code == 0, err
            assert [e["export-name"] for e in json.loads(out)["exports"]] == [""]

    run(body)


def test_nbdcopy_round_trip_is_byte_identical(sock: str, tmp_path: Path) -> None:
    nbdcopy = need("nbdcopy")
    source = tmp_path / "in.img"
    source.write_bytes(os.urandom(4 * 1024 * 1024))
    back = tmp_path / "out.img"

    async def body() -> None:
        async with fake_server(sock, blocks=8192) as (server, _device, lun):
            code, _out, err = await run_tool(nbdcopy, "--flush", str(source), server.uri)
            assert code == 0, err
            assert bytes(lun.data) == source.read_bytes()
            code, _out, err = await run_tool(nbdcopy, server.uri, str(back))
            assert code == 0, err
            assert server.stats.errors == 0

    run(body)
    assert back.read_bytes() == source.read_bytes()


def test_nbdsh_unaligned_io_without_client_side_alignment(sock: str) -> None:
    """libnbd normally honours the advertised 512-byte minimum; with strict mode off it
    sends unaligned requests as is, and the server must still get them right."""
    need_libnbd_python()
    script = (
        "h.set_strict_mode(0)\n"
        "h.connect_uri(URI)\n"
        "assert h.get_block_size(nbd.SIZE_MINIMUM) == 512\n"
        "h.pwrite(b'0123456789', 507)\n"
        "h.pwrite(b'x', 1, nbd.CMD_FLAG_FUA)\n"
        "h.zero(3, 600)\n"
        "print(h.pread(20, 500).hex(), h.pread(3, 0).hex())\n"
        "h.flush()\n"
        "h.shutdown()\n"
    )

    async def body() -> None:
        async with fake_server(sock) as (server, device, lun):
            lun.data[0:1024] = b"\xaa" * 1024
            code, out, err = await run_tool(
                SYSTEM_PYTHON, "-c", f"import nbd\nURI = {server.uri!r}\nh = nbd.NBD()\n{script}"
            )
            assert code == 0, err
            expected = bytearray(b"\xaa" * 1024)
            expected[507:517] = b"0123456789"
            expected[1] = ord("x")
            expected[600:603] = bytes(3)
            assert bytes(lun.data[0:1024]) == bytes(expected)
            middle, head = out.split()
            assert bytes.fromhex(middle) == bytes(expected[500:520])
            assert bytes.fromhex(head) == bytes(expected[0:3])
            # The FUA byte, read-modify-written, then made durable by a flush (FUA is kept
            # as WRITE + SYNCHRONIZE CACHE).
            fua_write = device.calls.index(("write", 0, 512, False))
            assert ("flush", 0, 0, False) in device.calls[fua_write + 1 :]
            assert server.stats.unaligned >= 3

    run(body)


def test_fio_nbd_engine_write_and_verify(sock: str) -> None:
    fio = need("fio")

    async def body() -> None:
        async with fake_server(sock, blocks=16384) as (server, _device, _lun):
            code, out, err = await run_tool(
                fio, "--name=verify", "--ioengine=nbd", f"--uri={server.uri}",
                "--rw=randwrite", "--bs=4k", "--size=4M", "--iodepth=16",
                "--verify=crc32c", "--do_verify=1", "--verify_fatal=1", "--verify_state_save=0",
                "--output-format=json",
            )  # fmt: skip
            assert code == 0, err + out
            job = fio_json(out)["jobs"][0]
            assert job["error"] == 0
            assert job["write"]["io_bytes"] == 4 * 1024 * 1024
            assert job["read"]["io_bytes"] == 4 * 1024 * 1024  # the verify pass read it all
            assert server.stats.errors == 0

    run(body)
