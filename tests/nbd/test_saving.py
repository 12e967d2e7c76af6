"""The commands that save work, as real clients see them: trim, fast zero and block
status (base:allocation over structured replies), over a fake LUN whose "LU-side"
commands are a small in-memory model. The real LU (tgt, WRITE SAME / UNMAP / GET LBA
STATUS) is in tests/nbd/test_fio_rig.py."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from tests.filter.fakes import BLOCK, FakeLun
from tests.nbd.client import fake_server
from tests.nbd.test_clients import SYSTEM_PYTHON, need, need_libnbd_python, run, run_tool


@dataclass(frozen=True)
class Extent:
    offset: int
    length: int
    allocated: bool


@dataclass
class ThinModel:
    """A thin LU in memory: a block is allocated once written with nonzero data."""

    lun: FakeLun
    write_same_works: bool = True  # False: advertised, then refused on first use
    refused: bool = False
    calls: list[tuple[str, int, int, bool]] = field(default_factory=list)

    can_unmap = True
    can_map = True
    holes_read_zeroes = True

    @property
    def can_write_same(self) -> bool:
        return not self.refused

    @property
    def can_fast_zero(self) -> bool:
        return not self.refused

    async def write_zeroes(self, offset: int, length: int, *, unmap: bool = False) -> bool:
        assert offset % BLOCK == 0 and length % BLOCK == 0
        self.calls.append(("write_same", offset, length, unmap))
        if not self.write_same_works:
            self.refused = True  # as Provisioned remembers an ILLEGAL REQUEST
            return False
        self.lun.data[offset : offset + length] = bytes(length)
        return True

    async def unmap(self, offset: int, length: int) -> bool:
        assert offset % BLOCK == 0 and length % BLOCK == 0
        self.calls.append(("unmap", offset, length, True))
        self.lun.data[offset : offset + length] = bytes(length)
        return True

    async def extents(self, offset: int, length: int) -> list[Extent]:
        found: list[Extent] = []
        end = min(len(self.lun.data), offset + length)
        position = offset - offset % BLOCK
        while position < end:
            allocated = any(self.lun.data[position : position + BLOCK])
            start = max(position, offset)
            stop = min(position + BLOCK, end)
            if found and found[-1].allocated == allocated:
                last = found.pop()
                found.append(Extent(last.offset, stop - last.offset, allocated))
            else:
                found.append(Extent(start, stop - start, allocated))
            position += BLOCK
        return found


def test_trim_fast_zero_and_map_are_advertised_and_served(sock: str) -> None:
    nbdinfo = need("nbdinfo")
    need_libnbd_python()
    models: list[ThinModel] = []

    def make(lun: FakeLun) -> ThinModel:
        models.append(ThinModel(lun))
        return models[-1]

    script = (
        "h.set_strict_mode(0)\n"
        "h.add_meta_context(nbd.CONTEXT_BASE_ALLOCATION)\n"
        "h.connect_uri(URI)\n"
        "assert h.can_trim() and h.can_fast_zero() and h.can_zero()\n"
        "assert h.can_meta_context(nbd.CONTEXT_BASE_ALLOCATION)\n"
        "h.pwrite(b'\\x55' * 4096, 65536)\n"
        "h.zero(2048, 65536 + 1024, nbd.CMD_FLAG_FAST_ZERO)\n"  # blocks 2..5 of the 8
        "h.trim(512, 65536 + 3584)\n"  # block 7
        "h.zero(100, 65536 + 3000)\n"  # unaligned: written as data, no WRITE SAME
        "print(h.pread(4096, 65536).hex())\n"
        "h.shutdown()\n"
    )

    async def body() -> None:
        async with fake_server(sock, blocks=4096, saving=make) as (server, _device, lun):
            code, out, err = await run_tool(
                SYSTEM_PYTHON, "-c", f"import nbd\nURI = {server.uri!r}\nh = nbd.NBD()\n{script}"
            )
            assert code == 0, err
            expected = bytearray(b"\x55" * 4096)
            expected[1024:3072] = bytes(2048)
            expected[3584:4096] = bytes(512)
            expected[3000:3100] = bytes(100)
            assert bytes.fromhex(out.strip()) == bytes(expected)
            assert bytes(lun.data[65536 : 65536 + 4096]) == bytes(expected)
            (model,) = models
            assert ("write_same", 65536 + 1024, 2048, True) in model.calls
            assert ("unmap", 65536 + 3584, 512, True) in model.calls
            assert [c for c in model.calls if c[0] == "write_same"] == [
                ("write_same", 65536 + 1024, 2048, True)
            ]
            assert server.stats.offloaded == 2

            code, out, err = await run_tool(nbdinfo, "--json", server.uri)
            assert code == 0, err
            (export,) = json.loads(out)["exports"]
            assert export["can_trim"] and export["can_fast_zero"]
            assert "base:allocation" in export["contexts"]
            code, out, err = await run_tool(nbdinfo, "--map", "--json", server.uri)
            assert code == 0, err
            extents = [(e["offset"], e["length"], e["type"]) for e in json.loads(out)]
            # Every extent is where the data says: holes (HOLE|ZERO = 3) hold only zeroes,
            # data extents hold some data, and together they cover the export.
            assert len(extents) >= 5
            covered = 0
            for offset, length, kind in extents:
                assert offset == covered and length > 0
                data = bytes(lun.data[offset : offset + length])
                assert kind in (0, 3)
                assert (kind == 3) == (not any(data))
                covered += length
            assert covered == 4096 * BLOCK

    run(body)


def test_fast_zero_is_refused_when_the_lu_cannot_zero_itself(sock: str) -> None:
    """WRITE SAME is tried on first use; refused, FAST_ZERO requests fail at once with
    ENOTSUP (the client then writes zeroes itself) and plain zeroing is written."""
    need_libnbd_python()
    script = (
        "h.connect_uri(URI)\n"
        "h.pwrite(b'\\x55' * 4096, 0)\n"
        "try:\n"
        "    h.zero(4096, 0, nbd.CMD_FLAG_FAST_ZERO)\n"
        "    print('zeroed')\n"
        "except nbd.Error as e:\n"
        "    print('refused', e.errno)\n"
        "print(h.can_fast_zero())\n"  # advertised at connect time
        "h.zero(4096, 0)\n"  # without FAST_ZERO: written as zeroes
        "print(any(h.pread(4096, 0)))\n"
        "h.shutdown()\n"
    )

    async def body() -> None:
        def make(lun: FakeLun) -> ThinModel:
            return ThinModel(lun, write_same_works=False)

        async with fake_server(sock, blocks=4096, saving=make) as (server, _device, lun):
            code, out, err = await run_tool(
                SYSTEM_PYTHON, "-c", f"import nbd\nURI = {server.uri!r}\nh = nbd.NBD()\n{script}"
            )
            assert code == 0, err
            assert out.split() == ["refused", "ENOTSUP", "True", "False"]
            assert not any(lun.data[0:4096])

    run(body)
