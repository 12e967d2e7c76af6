"""IscsiTransport against the real rig: login, data, concurrency, failures, teardown.

Every wait is bounded (``asyncio.wait_for``) so a bug fails a test instead of hanging
the suite; synchronisation uses futures and task completion, never sleeps. The few
fixed durations (``timeout=1.0`` while a path is faulted) are the *caller's* command
deadline the contract leaves to the filter layer, not waits for something to happen.
Faults are always cleared in ``finally`` blocks because the rig is shared by the module.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import struct
from collections.abc import AsyncIterator, Coroutine
from typing import Any, TypeVar

import pytest

from mpath.errors import UsageError
from mpath.rig import Rig, RigManager
from mpath.transports.base import (
    LoginError,
    PathDisconnectedError,
    ScsiResult,
    ScsiStatus,
    Transport,
    TransportError,
)
from mpath.transports.iscsi import IscsiTransport
from mpath.units import parse_rate
from tests.transports import cdbs

pytestmark = pytest.mark.rig

T = TypeVar("T")
BLOCK = 512


def run(coro: Coroutine[Any, Any, T], timeout: float = 20.0) -> T:
    """Run one test scenario on a fresh loop, bounded as a whole."""
    return asyncio.run(asyncio.wait_for(coro, timeout))


@contextlib.asynccontextmanager
async def session(url: str, **options: Any) -> AsyncIterator[IscsiTransport]:
    transport = IscsiTransport(url, **options)
    await asyncio.wait_for(transport.connect(), 10)
    try:
        yield transport
    finally:
        await asyncio.wait_for(transport.close(), 5)


@contextlib.contextmanager
def fault(rig: Rig, path: int, action: str, rate: str | None = None) -> Any:
    """Apply a rig fault for the duration of a block; always cleared afterwards."""
    manager = RigManager()
    manager.fault(rig.name, path, action, parse_rate(rate) if rate else None)
    try:
        yield
    finally:
        manager.fault(rig.name, path, "clear")


def backing(rig: Rig, offset: int, length: int) -> bytes:
    """Bytes of the LUN read straight from the rig's backing file, bypassing iSCSI."""
    with open(rig.lun.backing_file, "rb") as f:
        f.seek(offset)
        return f.read(length)


def sense_key_asc(result: ScsiResult) -> tuple[int, int]:
    sense = result.sense
    if sense[0] & 0x7F in (0x72, 0x73):
        return sense[1] & 0x0F, sense[2]
    return sense[2] & 0x0F, sense[12]


async def read(t: IscsiTransport, lba: int, blocks: int) -> bytes:
    result = await t.execute(cdbs.read16(lba, blocks), data_in_length=blocks * BLOCK)
    assert result.good, result
    return result.data


# -- login and identity -----------------------------------------------------------------


def test_login_inquiry_and_capacity_on_both_paths(rig2: Rig) -> None:
    async def scenario(url: str) -> None:
        async with session(url) as t:
            assert isinstance(t, Transport)
            assert t.connected
            assert t.url == url
            # tgt grants a window of MaxQueueCmd + 1; any sane target grants 1..65536.
            assert t.max_commands is not None
            assert 1 <= t.max_commands <= 65536

            inq = await t.execute(cdbs.inquiry(96), data_in_length=96)
            assert inq.status == ScsiStatus.GOOD
            assert inq.data[8:16] == b"MPATH   "
            assert inq.data[16:32].rstrip() == b"RIG-LUN"
            # tgt returns additional length + 5 bytes; the rest of 96 is the residual.
            assert len(inq.data) == inq.data[4] + 5
            assert inq.residual == 96 - len(inq.data)

            serial = await t.execute(cdbs.inquiry(255, page=0x80), data_in_length=255)
            assert serial.data[1] == 0x80
            assert serial.data[4 : 4 + serial.data[3]].decode().strip() == rig2.lun.serial

            ident = await t.execute(cdbs.inquiry(255, page=0x83), data_in_length=255)
            assert bytes.fromhex(rig2.lun.designator) in ident.data

            cap = await t.execute(cdbs.read_capacity16(32), data_in_length=32)
            last_lba, block_length = struct.unpack(">QI", cap.data[:12])
            assert block_length == BLOCK
            assert (last_lba + 1) * block_length == rig2.lun.size_bytes

    for url in rig2.urls:
        run(scenario(url))


def test_check_condition_carries_the_sense_data(rig2: Rig) -> None:
    async def scenario() -> None:
        async with session(rig2.urls[0]) as t:
            bad_opcode = await t.execute(bytes([0xFF, 0, 0, 0, 0, 0]))
            assert bad_opcode.status == ScsiStatus.CHECK_CONDITION
            assert sense_key_asc(bad_opcode) == (0x05, 0x20)  # ILLEGAL REQUEST, bad opcode

            beyond = rig2.lun.size_bytes // BLOCK
            out_of_range = await t.execute(cdbs.read16(beyond, 1), data_in_length=BLOCK)
            assert out_of_range.status == ScsiStatus.CHECK_CONDITION
            assert sense_key_asc(out_of_range) == (0x05, 0x21)  # LBA out of range
            assert out_of_range.data == b""

            # The session is still usable after both.
            assert (await t.execute(cdbs.tur())).good

    run(scenario())


def test_bad_target_is_a_quick_one_line_login_error(rig2: Rig) -> None:
    url = rig2.urls[0].rsplit("/", 2)[0] + "/iqn.2026-11.org.mpath:no-such-target/1"
    t = IscsiTransport(url)
    with pytest.raises(LoginError) as caught:
        run(t.connect(), timeout=5)
    assert "Target not found" in str(caught.value)
    assert "\n" not in str(caught.value)
    assert caught.value.url == url
    assert not t.connected
    assert t.max_commands is None
    with pytest.raises(PathDisconnectedError):
        run(t.execute(cdbs.tur()))


def test_refused_portal_is_a_quick_one_line_login_error(rig2: Rig) -> None:
    path = rig2.paths[0]
    url = rig2.urls[0].replace(path.target_ip, f"{path.target_ip}:3261")
    with pytest.raises(LoginError) as caught:
        run(IscsiTransport(url).connect(), timeout=5)
    assert "Connection refused" in str(caught.value)
    assert "\n" not in str(caught.value)


def test_missing_lun_is_a_login_error_naming_it(rig2: Rig) -> None:
    url = rig2.urls[0].rsplit("/", 1)[0] + "/9"
    with pytest.raises(LoginError, match="has no LUN 9"):
        run(IscsiTransport(url).connect(), timeout=5)


def test_black_holed_portal_gives_login_error_after_the_login_timeout(rig2: Rig) -> None:
    with fault(rig2, 2, "drop"), pytest.raises(LoginError) as caught:
        run(IscsiTransport(rig2.urls[1], login_timeout=1.0).connect(), timeout=5)
    assert "no login answer" in str(caught.value)


def test_commands_are_checked_before_they_reach_libiscsi(rig2: Rig) -> None:
    async def scenario() -> None:
        t = IscsiTransport(rig2.urls[0])
        with pytest.raises(PathDisconnectedError, match="not connected"):
            await t.execute(cdbs.tur())
        async with session(rig2.urls[0]) as t:
            with pytest.raises(UsageError, match="1 to 16 bytes"):
                await t.execute(bytes(17))
            with pytest.raises(UsageError, match="1 to 16 bytes"):
                await t.execute(b"")
            with pytest.raises(UsageError, match="contiguous"):
                await t.execute(cdbs.write16(0, 1), data_out=memoryview(bytes(2 * BLOCK))[::2])
            with pytest.raises(UsageError, match="bidirectional"):
                await t.execute(cdbs.write16(0, 1), data_out=bytes(BLOCK), data_in_length=BLOCK)
            assert t.outstanding == 0

    run(scenario())


# -- data ----------------------------------------------------------------------------------


def test_write_on_one_path_reads_back_on_the_other_and_on_disk(rig2: Rig) -> None:
    lba, blocks = 4096, 128  # 64 KiB
    pattern = os.urandom(blocks * BLOCK)

    async def scenario() -> None:
        async with session(rig2.urls[0]) as one, session(rig2.urls[1]) as two:
            half = blocks // 2
            first = await one.execute(cdbs.write16(lba, half), data_out=pattern[: half * BLOCK])
            assert first.good, first
            # memoryview data-out (zero-copy path) for the second half
            view = memoryview(pattern)[half * BLOCK :]
            second = await one.execute(cdbs.write16(lba + half, half), data_out=view)
            assert second.good, second
            assert (await one.execute(cdbs.synchronize_cache10())).good
            assert await read(two, lba, blocks) == pattern

    run(scenario())
    assert backing(rig2, lba * BLOCK, len(pattern)) == pattern


def test_64_commands_in_flight_at_once_all_complete(rig2: Rig) -> None:
    base, count, blocks = 8192, 64, 8
    pattern = os.urandom(count * blocks * BLOCK)
    chunk = blocks * BLOCK

    async def scenario() -> None:
        async with session(rig2.urls[0]) as t:
            wrote = await t.execute(cdbs.write16(base, count * blocks), data_out=pattern)
            assert wrote.good, wrote
            tasks = [asyncio.create_task(read(t, base + i * blocks, blocks)) for i in range(count)]
            await asyncio.sleep(0)  # let every task reach its first await (a yield)
            assert t.outstanding == count  # all queued in libiscsi together
            results = await asyncio.wait_for(asyncio.gather(*tasks), 10)
            assert t.outstanding == 0
            for i, data in enumerate(results):
                assert data == pattern[i * chunk : (i + 1) * chunk], f"command {i}"

    run(scenario())
    assert backing(rig2, base * BLOCK, len(pattern)) == pattern


# -- closing and failures ---------------------------------------------------------------


def test_close_is_idempotent_and_connect_after_close_logs_in_afresh(rig2: Rig) -> None:
    async def scenario() -> None:
        t = IscsiTransport(rig2.urls[0])
        await asyncio.wait_for(t.connect(), 10)
        first_window = t.max_commands
        await t.close()
        await t.close()
        assert not t.connected
        assert t.max_commands is None
        with pytest.raises(PathDisconnectedError, match="session closed"):
            await t.execute(cdbs.tur())
        await asyncio.wait_for(t.connect(), 10)
        try:
            assert t.connected
            assert t.max_commands == first_window
            assert len(await read(t, 0, 1)) == BLOCK
        finally:
            await t.close()

    run(scenario())


def test_logout_ends_the_session_politely(rig2: Rig) -> None:
    async def scenario() -> None:
        t = IscsiTransport(rig2.urls[0])
        await asyncio.wait_for(t.connect(), 10)
        await asyncio.wait_for(t.logout(timeout=2.0), 5)
        assert not t.connected
        with pytest.raises(PathDisconnectedError, match="session logged out"):
            await t.execute(cdbs.tur())
        await asyncio.wait_for(t.connect(), 10)
        await t.close()

    run(scenario())


@pytest.mark.parametrize("action", ["down", "drop"])
def test_faulted_path_fails_or_times_out_and_close_is_prompt(rig2: Rig, action: str) -> None:
    async def scenario() -> None:
        t = IscsiTransport(rig2.urls[0])
        await asyncio.wait_for(t.connect(), 10)
        try:
            with fault(rig2, 1, action):
                outstanding = [asyncio.create_task(read(t, i * 8, 8)) for i in range(8)]
                # The caller's deadline: a dead path answers neither with data nor error.
                with pytest.raises((TimeoutError, TransportError)):
                    await asyncio.wait_for(read(t, 1024, 8), 1.0)
                assert not any(task.done() and not task.exception() for task in outstanding)
                # close() must not wait for the dead path.
                await asyncio.wait_for(t.close(), 1.0)
                results = await asyncio.wait_for(
                    asyncio.gather(*outstanding, return_exceptions=True), 2.0
                )
                assert all(isinstance(r, PathDisconnectedError) for r in results), results
                assert t.outstanding == 0
            # Fault cleared: a new session works at once.
            await asyncio.wait_for(t.connect(), 10)
            assert len(await read(t, 0, 8)) == 8 * BLOCK
        finally:
            await t.close()

    run(scenario())


def test_broken_connection_fails_every_outstanding_command_at_once(rig2: Rig) -> None:
    async def scenario() -> None:
        t = IscsiTransport(rig2.urls[0])
        await asyncio.wait_for(t.connect(), 10)
        try:
            with fault(rig2, 1, "drop"):
                outstanding = [asyncio.create_task(read(t, i * 8, 8)) for i in range(16)]
                await asyncio.sleep(0)  # a yield: the commands are queued
                assert t.outstanding == 16
                # Break the connection under libiscsi (as a target reset would): shut
                # down the transport's own socket through a duplicate descriptor.
                with socket.socket(fileno=os.dup(t._socket.fd)) as sock:
                    sock.shutdown(socket.SHUT_RDWR)
                results = await asyncio.wait_for(
                    asyncio.gather(*outstanding, return_exceptions=True), 2.0
                )
            assert all(isinstance(r, PathDisconnectedError) for r in results), results
            assert "connection" in str(results[0])
            assert not t.connected
            assert t.outstanding == 0
            with pytest.raises(PathDisconnectedError):
                await t.execute(cdbs.tur())
        finally:
            await t.close()

    run(scenario())


def test_close_during_in_flight_writes_fails_them_and_nothing_hangs(rig2: Rig) -> None:
    lba, count, blocks = 16384, 16, 256  # 16 writes of 128 KiB
    data = os.urandom(blocks * BLOCK)

    async def scenario() -> None:
        t = IscsiTransport(rig2.urls[0])
        await asyncio.wait_for(t.connect(), 10)
        with fault(rig2, 1, "rate", "8mbit"):  # ~1 MB/s: the 2 MiB take about 2 s
            writes = [
                asyncio.create_task(
                    t.execute(cdbs.write16(lba + i * blocks, blocks), data_out=data)
                )
                for i in range(count)
            ]
            done, _ = await asyncio.wait(writes, timeout=10, return_when=asyncio.FIRST_COMPLETED)
            assert done, "no write completed on the slowed path"
            await asyncio.wait_for(t.close(), 1.0)
            results = await asyncio.wait_for(asyncio.gather(*writes, return_exceptions=True), 2.0)
        failed = [r for r in results if isinstance(r, PathDisconnectedError)]
        good = [r for r in results if isinstance(r, ScsiResult) and r.good]
        assert len(failed) + len(good) == count, results
        assert failed, "close() left no write outstanding to fail"
        assert "session closed" in str(failed[0])

    run(scenario())


def _tcp_sockets_with_local_port(port: int) -> list[str]:
    """Lines of /proc/net/tcp for sockets bound to local ``port`` (any state)."""
    with open("/proc/net/tcp") as f:
        rows = f.read().splitlines()[1:]
    return [row for row in rows if int(row.split()[1].split(":")[1], 16) == port]


def test_close_discards_unsent_data_so_nothing_reaches_the_target_later(rig2: Rig) -> None:
    """A write queued on a black-holed path must die with the session.

    A plain close() would leave an orphaned socket retransmitting the write for
    minutes; once the path came back it would land on the target after the filter
    layer had retried it elsewhere. The transport resets the connection instead: right
    after close() the kernel holds no socket for the session's port.
    """
    lba, blocks = 32768, 512

    async def scenario() -> None:
        t = IscsiTransport(rig2.urls[0])
        await asyncio.wait_for(t.connect(), 10)
        with socket.socket(fileno=os.dup(t._socket.fd)) as sock:
            port = sock.getsockname()[1]
        assert _tcp_sockets_with_local_port(port)
        with fault(rig2, 1, "drop"):
            write = asyncio.create_task(
                t.execute(cdbs.write16(lba, blocks), data_out=os.urandom(blocks * BLOCK))
            )
            await asyncio.sleep(0)  # a yield: the write is queued and sent to the socket
            assert t.outstanding == 1
            await asyncio.wait_for(t.close(), 1.0)
            with pytest.raises(PathDisconnectedError):
                await asyncio.wait_for(write, 1.0)
            assert _tcp_sockets_with_local_port(port) == []

    run(scenario())


def test_one_byte_read_leaves_shared_bytes_objects_alone(rig2: Rig) -> None:
    """Reads land in fresh objects; a 1-byte read must not write into b'\\x00'."""

    async def scenario() -> None:
        async with session(rig2.urls[0]) as t:
            mode_sense6 = bytes([0x1A, 0, 0x3F, 0, 1, 0])  # all pages, 1 byte
            result = await t.execute(mode_sense6, data_in_length=1)
            assert result.good, result
            assert len(result.data) == 1
            assert result.data != b"\x00"  # the mode data length
            assert bytes(1) == b"\x00"
            assert bytes([0]) == b"\x00"

    run(scenario())


def test_nop_pings_the_target_and_fails_with_the_session(rig2: Rig) -> None:
    async def scenario() -> None:
        t = IscsiTransport(rig2.urls[0])
        await asyncio.wait_for(t.connect(), 10)
        try:
            await asyncio.wait_for(t.nop(), 5)
            with fault(rig2, 1, "drop"):
                ping = asyncio.create_task(t.nop())
                done, _ = await asyncio.wait([ping], timeout=1.0)  # the caller's deadline
                assert not done, "a black-holed path answered a NOP-Out"
                await asyncio.wait_for(t.close(), 1.0)
                with pytest.raises(PathDisconnectedError, match="session closed"):
                    await asyncio.wait_for(ping, 1.0)
            with pytest.raises(PathDisconnectedError):
                await t.nop()
        finally:
            await t.close()

    run(scenario())
