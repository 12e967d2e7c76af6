"""The block transport over real loop devices (root): every command the filter layer
sends, what close() guarantees, and ``mpath bench --verify`` over two paths."""

from __future__ import annotations

import asyncio
import ctypes
import errno
import json
import os
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from mpath.cli import main
from mpath.scsi import cdb
from mpath.scsi.capacity import parse_read_capacity16
from mpath.scsi.identity import lun_identity
from mpath.scsi.inquiry import parse_standard_inquiry
from mpath.scsi.luns import parse_report_luns
from mpath.scsi.probe import probe_lun
from mpath.scsi.sense import decode_sense
from mpath.scsi.vpd import (
    VpdPage,
    parse_block_limits,
    parse_designators,
    parse_supported_pages,
    parse_unit_serial,
)
from mpath.transports.base import (
    LoginError,
    PathDisconnectedError,
    ScsiResult,
    ScsiStatus,
    Transport,
)
from mpath.transports.block import (
    BlockTransport,
    _errno_answer,
    _SgIoHeader,
)
from tests.discovery.loops import LoopFactory, make_image

BLOCK = 512


def _sense(result: ScsiResult) -> tuple[int, int, int]:
    assert result.status == ScsiStatus.CHECK_CONDITION
    sense = decode_sense(result.sense)
    assert sense is not None
    return int(sense.key), sense.asc, sense.ascq


def test_sg_io_header_matches_the_kernels_lp64_layout() -> None:
    offsets = {name: getattr(_SgIoHeader, name).offset for name, _ in _SgIoHeader._fields_}
    assert ctypes.sizeof(_SgIoHeader) == 88
    assert offsets["dxfer_len"] == 12
    assert offsets["dxferp"] == 16
    assert offsets["cmdp"] == 24
    assert offsets["sbp"] == 32
    assert offsets["timeout"] == 40
    assert offsets["usr_ptr"] == 56
    assert offsets["status"] == 64
    assert offsets["sb_len_wr"] == 67
    assert offsets["host_status"] == 68
    assert offsets["resid"] == 72
    assert offsets["info"] == 80


@pytest.mark.parametrize(
    ("code", "write", "expected"),
    [
        (errno.ENODATA, False, (0x03, 0x11, 0x00)),  # medium error: the caller's
        (errno.ENODATA, True, (0x03, 0x0C, 0x00)),
        (errno.ENOSPC, True, (0x07, 0x27, 0x07)),
        (errno.EREMOTEIO, False, (0x04, 0x44, 0x00)),
    ],
)
def test_errnos_that_mean_the_medium_become_target_errors(
    code: int, write: bool, expected: tuple[int, int, int]
) -> None:
    assert _sense(_errno_answer(OSError(code, os.strerror(code)), write)) == expected


@pytest.mark.parametrize("code", [errno.EIO, errno.ENOLINK, errno.ETIMEDOUT, errno.ENXIO])
def test_errnos_that_mean_the_path_are_raised_for_failover(code: int) -> None:
    with pytest.raises(OSError):
        _errno_answer(OSError(code, os.strerror(code)), write=False)


def test_busy_is_answered_busy() -> None:
    assert _errno_answer(OSError(errno.EAGAIN, "again"), write=True).status == ScsiStatus.BUSY


def test_something_that_is_not_a_block_device_does_not_connect() -> None:
    async def scenario() -> None:
        with pytest.raises(LoginError, match="not a block device"):
            await BlockTransport("/dev/null").connect()

    asyncio.run(scenario())


# -- real loop devices ---------------------------------------------------------------------


@pytest.fixture
def image(tmp_path: Path) -> Path:
    return make_image(tmp_path, "lun.img", 16 * 1024 * 1024)


Scenario = Callable[[BlockTransport], Awaitable[None]]


def _on_device(node: str, scenario: Scenario) -> None:
    """Run ``scenario`` on a connected transport over ``node``; always close it."""

    async def run() -> None:
        transport = BlockTransport(node)
        await transport.connect()
        try:
            await scenario(transport)
        finally:
            await transport.close()

    asyncio.run(run())


async def _data_in(transport: BlockTransport, command: bytes, length: int = 255) -> bytes:
    result = await transport.execute(command, data_in_length=length)
    assert result.good, result
    return result.data


def test_inquiry_is_answered_from_the_identity(loop_devices: LoopFactory, image: Path) -> None:
    async def scenario(transport: BlockTransport) -> None:
        assert isinstance(transport, Transport)
        assert transport.max_commands is None  # a loop device has no queue_depth
        assert transport.sg_io is False
        standard = parse_standard_inquiry(await _data_in(transport, cdb.inquiry(), 96))
        assert standard.is_disk and standard.lu_present and standard.cmdque
        assert (standard.vendor, standard.product) == ("LINUX", "LOOP")
        pages = await _data_in(transport, cdb.inquiry(VpdPage.SUPPORTED_PAGES))
        assert set(parse_supported_pages(pages)) >= {0x00, 0x80, 0x83, 0xB0}
        page83 = await _data_in(transport, cdb.inquiry(VpdPage.DEVICE_IDENTIFICATION))
        assert transport.identity is not None
        assert lun_identity(parse_designators(page83)).wwid == transport.identity.wwid
        serial = await _data_in(transport, cdb.inquiry(VpdPage.UNIT_SERIAL_NUMBER))
        assert parse_unit_serial(serial).startswith("loopfile-")
        limits = parse_block_limits(await _data_in(transport, cdb.inquiry(VpdPage.BLOCK_LIMITS)))
        assert limits.max_transfer_length is not None and limits.max_transfer_length >= 128
        unknown = await transport.execute(cdb.inquiry(0xC0), data_in_length=255)
        assert _sense(unknown) == (5, 0x24, 0)
        assert len(await _data_in(transport, cdb.inquiry(alloc_len=36), 36)) == 36
        info = await probe_lun(transport)
        assert info.wwid == transport.identity.wwid and info.size_bytes == 16 * 1024 * 1024

    _on_device(loop_devices(image), scenario)


def test_capacity_luns_and_unit_ready(loop_devices: LoopFactory, image: Path) -> None:
    async def scenario(transport: BlockTransport) -> None:
        capacity = parse_read_capacity16(await _data_in(transport, cdb.read_capacity16(), 32))
        assert (capacity.size_bytes, capacity.block_size) == (16 * 1024 * 1024, BLOCK)
        luns = await _data_in(transport, cdb.report_luns(), 4096)
        assert parse_report_luns(luns) == (0,)
        assert (await transport.execute(cdb.test_unit_ready())).good
        unsupported = await transport.execute(bytes([0xC1]) + bytes(9))
        assert _sense(unsupported) == (5, 0x20, 0)

    _on_device(loop_devices(image), scenario)


def test_reads_writes_and_flushes_reach_the_file(loop_devices: LoopFactory, image: Path) -> None:
    payload = os.urandom(8 * BLOCK)

    async def scenario(transport: BlockTransport) -> None:
        assert (await transport.execute(cdb.write16(10, 8), data_out=payload)).good
        assert (await transport.execute(cdb.write16(30, 8, fua=True), data_out=payload)).good
        assert await _data_in(transport, cdb.read16(10, 8), len(payload)) == payload
        assert await _data_in(transport, cdb.read10(30, 8), len(payload)) == payload
        assert (await transport.execute(cdb.synchronize_cache16())).good
        blocks = 16 * 1024 * 1024 // BLOCK
        beyond = await transport.execute(cdb.read16(blocks - 1, 2), data_in_length=2 * BLOCK)
        assert _sense(beyond) == (5, 0x21, 0)

    _on_device(loop_devices(image), scenario)
    with image.open("rb") as handle:
        handle.seek(10 * BLOCK)
        assert handle.read(8 * BLOCK) == payload


def test_a_closed_transport_refuses_commands(loop_devices: LoopFactory, image: Path) -> None:
    node = loop_devices(image)

    async def scenario() -> None:
        transport = BlockTransport(node)
        await transport.connect()
        assert transport.connected and transport.url == node
        await transport.close()
        assert not transport.connected
        with pytest.raises(PathDisconnectedError):
            await transport.execute(cdb.test_unit_ready())
        await transport.close()  # safe twice

    asyncio.run(scenario())


def test_data_written_through_one_loop_device_is_read_through_the_other(
    loop_devices: LoopFactory, image: Path
) -> None:
    first, second = loop_devices(image), loop_devices(image)

    async def scenario() -> None:
        one, two = BlockTransport(first), BlockTransport(second)
        await one.connect()
        await two.connect()
        try:
            data = os.urandom(64 * BLOCK)
            assert (await one.execute(cdb.write16(100, 64), data_out=data)).good
            read = await two.execute(cdb.read16(100, 64), data_in_length=len(data))
            assert read.data == data
        finally:
            await one.close()
            await two.close()

    asyncio.run(scenario())


def test_a_node_is_opened_exclusively_and_reopens_after_close(
    loop_devices: LoopFactory, image: Path
) -> None:
    node = loop_devices(image)

    async def scenario() -> None:
        holder = BlockTransport(node)
        await holder.connect()
        try:
            with pytest.raises(LoginError, match="in use"):
                await BlockTransport(node).connect()
        finally:
            await holder.close()
        await holder.connect()  # a closed transport logs in afresh
        assert (await holder.execute(cdb.test_unit_ready())).good
        await holder.close()

    asyncio.run(scenario())


def test_a_read_only_device_answers_writes_with_data_protect(
    loop_devices: LoopFactory, image: Path
) -> None:
    node = loop_devices(image, "--read-only")

    async def scenario() -> None:
        transport = BlockTransport(node)
        await transport.connect()
        try:
            result = await transport.execute(cdb.write16(0, 1), data_out=bytes(BLOCK))
            assert _sense(result) == (7, 0x27, 0)
            assert (await transport.execute(cdb.read16(0, 1), data_in_length=BLOCK)).good
        finally:
            await transport.close()

    asyncio.run(scenario())


def test_commands_still_queued_at_close_never_reach_the_device(
    loop_devices: LoopFactory, image: Path
) -> None:
    """One worker thread, 200 writes queued, close after the first completes: every
    write either completed or failed with PathDisconnectedError, and once close()
    returned at most one more write (the one in the kernel at that moment) reached the
    file: nothing still queued ever started."""
    node = loop_devices(image)
    count = 200
    pattern = b"\xa5" * BLOCK

    def written() -> int:
        with image.open("rb") as handle:
            return sum(1 for _ in range(count) if handle.read(BLOCK) == pattern)

    async def scenario() -> tuple[int, int, int, int]:
        transport = BlockTransport(node, workers=1)
        await transport.connect()
        session = transport._session
        assert session is not None
        writes = [
            asyncio.ensure_future(transport.execute(cdb.write16(lba, 1), data_out=pattern))
            for lba in range(count)
        ]
        await asyncio.wait(writes, return_when=asyncio.FIRST_COMPLETED)
        await transport.close()
        at_close = written()
        done = await asyncio.gather(*writes, return_exceptions=True)
        # Let the one write that may still be in the kernel finish (bounded).
        await asyncio.wait_for(asyncio.to_thread(session.pool.shutdown, wait=True), 30)
        completed = sum(1 for d in done if isinstance(d, ScsiResult) and d.good)
        refused = sum(1 for d in done if isinstance(d, PathDisconnectedError))
        assert completed + refused == count
        return completed, refused, at_close, written()

    completed, refused, at_close, final = asyncio.run(scenario())
    assert refused > 0
    assert completed <= at_close <= final <= at_close + 1


def test_a_missing_node_does_not_connect() -> None:
    async def scenario() -> None:
        with pytest.raises(LoginError, match="no such device node"):
            await BlockTransport("/dev/mpath-test-no-such-node").connect()

    asyncio.run(scenario())


def test_bench_verify_over_two_loop_devices_of_one_file_passes(
    loop_devices: LoopFactory, tmp_path: Path
) -> None:
    image = make_image(tmp_path, "lun.img", 64 * 1024 * 1024)
    first, second = loop_devices(image), loop_devices(image)
    result = CliRunner().invoke(
        main,
        [
            "bench", first, second, "--verify", "--rw", "randwrite", "--seconds", "3",
            "--span", "32M", "--no-progress", "--json",
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["errors"] == 0
    assert document["verify_mismatches"] == 0
    assert document["iops"] > 0
    paths = {p["url"]: p for p in document["paths"]}
    assert set(paths) == {first, second}
    assert all(p["ios"] > 0 and p["state"] == "active" for p in paths.values())


def test_bench_refuses_loop_devices_over_different_files_naming_both(
    loop_devices: LoopFactory, tmp_path: Path
) -> None:
    first = loop_devices(make_image(tmp_path, "a.img"))
    second = loop_devices(make_image(tmp_path, "b.img"))
    result = CliRunner().invoke(main, ["bench", first, second, "--seconds", "1"])
    assert result.exit_code == 2
    assert result.stdout == ""
    error = result.stderr
    assert error.count("\n") == 1 and "Traceback" not in error
    assert "paths lead to different LUNs" in error
    assert str(tmp_path / "a.img") in error and str(tmp_path / "b.img") in error
