"""Trim, fast zero and block status through the export on the real rig (tgt, a
thin-provisioned file LUN): the LUN advertises them, GET LBA STATUS maps the data
written from outside, nbdcopy copies it byte-identical, and TRIM / WRITE_ZEROES
deallocate blocks in the backing file (checked from outside after the server stops)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from mpath.filter import DeviceSettings, MultipathDevice
from mpath.filter.provisioning import Provisioned
from mpath.nbd import ListenAddress, NbdServer
from mpath.rig import Rig, RigManager
from tests.conftest import unique_rig_name
from tests.nbd.client import bounded
from tests.nbd.test_clients import SYSTEM_PYTHON, need, need_libnbd_python, run, run_tool

pytestmark = pytest.mark.rig

SIZE = 64 * 1024 * 1024
MIB = 1024 * 1024
PIECES = (3 * MIB, 10 * MIB, 11 * MIB, 40 * MIB)  # 1 MiB of data at each


@pytest.fixture(scope="module")
def rig() -> Iterator[Rig]:
    manager = RigManager()
    name = unique_rig_name("nbdthin")
    try:
        yield manager.up(name=name, paths=2, size=SIZE)
    finally:
        manager.down(name)


def _allocated(path: str, offset: int, length: int) -> bool:
    """Whether the backing file holds data anywhere in the range (SEEK_DATA)."""
    with open(path, "rb") as file:
        try:
            found = os.lseek(file.fileno(), offset, os.SEEK_DATA)
        except OSError:
            return False
        return found < offset + length


def test_trim_zero_map_and_sparse_copy_on_a_thin_lun(rig: Rig, sock: str, tmp_path: Path) -> None:
    nbdinfo, nbdcopy = need("nbdinfo"), need("nbdcopy")
    need_libnbd_python()
    backing = rig.lun.backing_file
    data = {offset: os.urandom(MIB) for offset in PIECES}
    with open(backing, "r+b") as lun:
        for offset, piece in data.items():
            lun.seek(offset)
            lun.write(piece)
    copy = tmp_path / "copy.img"
    script = (
        "h.add_meta_context(nbd.CONTEXT_BASE_ALLOCATION)\n"
        "h.connect_uri(URI)\n"
        f"h.trim({MIB}, {10 * MIB})\n"
        f"h.zero({MIB}, {11 * MIB}, nbd.CMD_FLAG_FAST_ZERO)\n"
        "h.flush()\n"
        "h.shutdown()\n"
    )

    async def body() -> None:
        device = await MultipathDevice.open(rig.urls, DeviceSettings(policy="round-robin"))
        try:
            server = NbdServer(device, saving=Provisioned(device))
            await server.start(ListenAddress.parse(f"unix:{sock}"))
            try:
                code, out, err = await run_tool(nbdinfo, "--json", server.uri)
                assert code == 0, err
                (export,) = json.loads(out)["exports"]
                assert export["can_trim"] and export["can_fast_zero"], export
                assert "base:allocation" in export["contexts"]

                code, out, err = await run_tool(nbdinfo, "--map", "--json", server.uri)
                assert code == 0, err
                data_extents = [
                    (e["offset"], e["length"]) for e in json.loads(out) if not e["type"] & 1
                ]
                assert data_extents == [(3 * MIB, MIB), (10 * MIB, 2 * MIB), (40 * MIB, MIB)]

                code, _out, err = await run_tool(nbdcopy, server.uri, str(copy))
                assert code == 0, err

                code, _out, err = await run_tool(
                    SYSTEM_PYTHON,
                    "-c",
                    f"import nbd\nURI = {server.uri!r}\nh = nbd.NBD()\n{script}",
                )
                assert code == 0, err
                assert server.stats.errors == 0
                assert server.stats.offloaded == 2
            finally:
                assert await bounded(server.shutdown(), 60)
        finally:
            await device.close()

    run(body)
    # The copy (taken before the trim and the zeroing) is the LUN as written.
    expected = bytearray(SIZE)
    for offset, piece in data.items():
        expected[offset : offset + MIB] = piece
    assert copy.read_bytes() == bytes(expected)
    # From outside, after the server stopped: the trimmed and the zeroed MiB read as
    # zeroes and are holes in the backing file again; the others are untouched.
    after = Path(backing).read_bytes()
    for offset in (10 * MIB, 11 * MIB):
        assert after[offset : offset + MIB] == bytes(MIB)
        assert not _allocated(backing, offset, MIB)
    for offset in (3 * MIB, 40 * MIB):
        assert after[offset : offset + MIB] == data[offset]
