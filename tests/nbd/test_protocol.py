"""The NBD server's protocol, driven byte by byte over a Unix socket, over fake paths.

No rig is needed: the exported device is a MultipathDevice over two fake transports
(tests/filter/fakes.py). Real clients are in test_clients.py, the real rig in
test_fio_rig.py and tests/cli/test_serve.py.
"""

from __future__ import annotations

import asyncio
import errno
import os
import socket
import struct
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from mpath.errors import DeviceError, UsageError
from mpath.nbd import ListenAddress, NbdServer, ServeSettings, check_listen_policy
from mpath.nbd import protocol as nbd
from mpath.nbd.limits import BlockLocks
from mpath.transports.base import ScsiResult
from tests.filter.fakes import BLOCK, check_condition
from tests.nbd.client import (
    OptionRefusedError,
    RawClient,
    RequestFailedError,
    bounded,
    fake_server,
    until,
)


def run(body: Callable[[], Awaitable[None]]) -> None:
    async def bounded_body() -> None:
        await bounded(body(), 30)

    asyncio.run(bounded_body())


# -- handshake ---------------------------------------------------------------------------


def test_go_reports_size_flags_and_block_sizes(sock: str) -> None:
    async def body() -> None:
        async with fake_server(sock, blocks=4096) as (_server, _device, _lun):
            client = await RawClient.connect(sock)
            await client.greeting()
            assert client.handshake_flags == nbd.FLAG_FIXED_NEWSTYLE | nbd.FLAG_NO_ZEROES
            infos = await client.go(infos=(nbd.INFO_BLOCK_SIZE, nbd.INFO_DESCRIPTION))
            size, flags = struct.unpack(">QH", infos[nbd.INFO_EXPORT])
            assert size == 4096 * BLOCK
            for flag in (
                nbd.TFLAG_HAS_FLAGS,
                nbd.TFLAG_SEND_FLUSH,
                nbd.TFLAG_SEND_FUA,
                nbd.TFLAG_SEND_WRITE_ZEROES,
                nbd.TFLAG_CAN_MULTI_CONN,
            ):
                assert flags & flag, hex(flags)
            assert not flags & (nbd.TFLAG_READ_ONLY | nbd.TFLAG_SEND_TRIM)
            minimum, preferred, maximum = struct.unpack(">III", infos[nbd.INFO_BLOCK_SIZE])
            assert (minimum, preferred, maximum) == (BLOCK, 4096, 32 * 1024 * 1024)
            # Transmission works after GO.
            assert await client.call(nbd.CMD_READ, 0, 512) == bytes(512)
            await client.close()

    run(body)


def test_block_size_is_advertised_even_when_not_requested(sock: str) -> None:
    async def body() -> None:
        async with fake_server(sock) as _:
            client = await RawClient.connect(sock)
            await client.greeting()
            infos = await client.go(infos=())
            assert struct.unpack(">I", infos[nbd.INFO_BLOCK_SIZE][:4]) == (BLOCK,)
            await client.close()

    run(body)


@pytest.mark.parametrize("no_zeroes", [True, False])
def test_export_name_enters_transmission_with_or_without_zero_padding(
    sock: str, no_zeroes: bool
) -> None:
    async def body() -> None:
        async with fake_server(sock) as (_server, _device, _lun):
            client = await RawClient.connect(sock)
            await client.greeting(client_flags=3 if no_zeroes else 1)
            client.send_option(nbd.OPT_EXPORT_NAME, b"")
            size, flags = struct.unpack(">QH", await client.read(10))
            assert size == 2048 * BLOCK and flags & nbd.TFLAG_HAS_FLAGS
            if not no_zeroes:
                assert await client.read(124) == bytes(124)
            await client.call(nbd.CMD_WRITE, 512, 4, data=b"abcd")
            assert await client.call(nbd.CMD_READ, 512, 4) == b"abcd"
            await client.close()

    run(body)


def test_list_info_and_refusals_keep_the_handshake_going(sock: str) -> None:
    async def body() -> None:
        async with fake_server(sock) as _:
            client = await RawClient.connect(sock)
            await client.greeting()
            client.send_option(nbd.OPT_LIST)
            option, reply, payload = await client.option_reply()
            assert (option, reply) == (nbd.OPT_LIST, nbd.REP_SERVER)
            assert payload[:4] == struct.pack(">I", 0)  # the default export, ""
            assert (await client.option_reply())[1] == nbd.REP_ACK

            client.send_option(nbd.OPT_LIST, b"junk")
            assert (await client.option_reply())[1] == nbd.REP_ERR_INVALID

            for option, expected in (
                (nbd.OPT_STARTTLS, nbd.REP_ERR_POLICY),
                (nbd.OPT_SET_META_CONTEXT, nbd.REP_ERR_INVALID),  # structured replies first
                (4242, nbd.REP_ERR_UNSUP),
            ):
                client.send_option(option)
                got_option, reply, message = await client.option_reply()
                assert (got_option, reply) == (option, expected), message

            with pytest.raises(OptionRefusedError) as refused:
                await client.go(name="nope")
            assert refused.value.reply == nbd.REP_ERR_UNKNOWN
            assert "nope" in refused.value.message

            client.send_option(nbd.OPT_INFO, b"\0\0\0\0\0")  # truncated
            assert (await client.option_reply())[1] == nbd.REP_ERR_INVALID
            # INFO answers like GO but stays in the handshake; GO then enters transmission.
            data = struct.pack(">IH", 0, 0)
            client.send_option(nbd.OPT_INFO, data)
            replies = [await client.option_reply() for _ in range(3)]
            assert [r[1] for r in replies] == [nbd.REP_INFO, nbd.REP_INFO, nbd.REP_ACK]
            await client.go()
            assert await client.call(nbd.CMD_READ, 0, 1) == b"\0"
            await client.close()

    run(body)


def test_abort_is_acknowledged_and_the_connection_closed(sock: str) -> None:
    async def body() -> None:
        async with fake_server(sock) as _:
            client = await RawClient.connect(sock)
            await client.greeting()
            client.send_option(nbd.OPT_ABORT)
            assert (await client.option_reply())[1] == nbd.REP_ACK
            assert await client.closed()

    run(body)


@pytest.mark.parametrize(
    "misbehaviour", ["unknown client flag", "unknown export by name", "bad option magic"]
)
def test_protocol_violations_in_the_handshake_drop_the_connection(
    sock: str, misbehaviour: str
) -> None:
    async def body() -> None:
        async with fake_server(sock) as (server, _device, _lun):
            client = await RawClient.connect(sock)
            if misbehaviour == "unknown client flag":
                await client.greeting(client_flags=0x80)
            elif misbehaviour == "unknown export by name":
                await client.greeting()
                client.send_option(nbd.OPT_EXPORT_NAME, b"other")
            else:
                await client.greeting()
                client.writer.write(struct.pack(">QII", 0x1234, nbd.OPT_LIST, 0))
            assert await client.closed()
            await client.close()
            # The server itself carries on.
            other = await RawClient.connect(sock)
            await other.connect_export()
            assert await other.call(nbd.CMD_READ, 0, 8) == bytes(8)
            await other.close()
            assert server.stats.connections == 2

    run(body)


# -- transmission ------------------------------------------------------------------------


def test_fua_writes_and_flush_reach_the_device_as_write_then_synchronize_cache(sock: str) -> None:
    """FUA is kept as WRITE + SYNCHRONIZE CACHE: targets without DPOFUA refuse the bit."""

    async def body() -> None:
        async with fake_server(sock) as (server, device, _lun):
            client = await RawClient.connect(sock)
            await client.connect_export()
            await client.call(nbd.CMD_WRITE, 0, 512, data=b"a" * 512)
            await client.call(nbd.CMD_WRITE, 512, 512, flags=nbd.CMD_FLAG_FUA, data=b"b" * 512)
            await client.call(nbd.CMD_FLUSH)
            assert device.calls == [
                ("write", 0, 512, False),
                ("write", 512, 512, False),
                ("flush", 0, 0, False),
                ("flush", 0, 0, False),
            ]
            assert server.stats.flushes == 1
            await client.close()

    run(body)


def test_fua_write_is_followed_by_synchronize_cache_before_the_reply(sock: str) -> None:
    """Beyond the device call: the WRITE carries no FUA bit (byte 1, bit 3) and a
    SYNCHRONIZE CACHE follows it before the client's next request is served."""

    async def body() -> None:
        async with fake_server(sock) as (_server, recording, _lun):
            seen: list[bytes] = []
            for path in recording.device.path_objects:
                transport = path.transport
                original = transport.execute

                async def spy(
                    cdb: bytes,
                    *,
                    data_out: bytes | memoryview | None = None,
                    data_in_length: int = 0,
                    original: Callable[..., Awaitable[ScsiResult]] = original,
                ) -> ScsiResult:
                    seen.append(bytes(cdb))
                    return await original(cdb, data_out=data_out, data_in_length=data_in_length)

                transport.execute = spy  # type: ignore[method-assign]
            client = await RawClient.connect(sock)
            await client.connect_export()
            await client.call(nbd.CMD_WRITE, 1024, 512, flags=nbd.CMD_FLAG_FUA, data=b"f" * 512)
            await client.call(nbd.CMD_WRITE, 2048, 512, data=b"n" * 512)
            await client.call(nbd.CMD_FLUSH)
            ops = [c[0] for c in seen]
            writes = [c for c in seen if c[0] == 0x8A]  # WRITE (16)
            assert [bool(c[1] & 0x08) for c in writes] == [False, False]
            # WRITE, SYNCHRONIZE CACHE (16) for the FUA write, WRITE, then the FLUSH.
            assert ops == [0x8A, 0x91, 0x8A, 0x91]
            await client.close()

    run(body)


def test_replies_come_as_requests_finish_matched_by_handle(sock: str) -> None:
    async def body() -> None:
        async with fake_server(sock) as (_server, device, lun):
            lun.data[0:512] = b"A" * 512
            lun.data[4096:4608] = b"B" * 512
            gate = asyncio.Event()
            device.hold[0] = gate
            client = await RawClient.connect(sock)
            await client.connect_export()
            client.request(nbd.CMD_READ, 1, 0, 512)
            client.request(nbd.CMD_READ, 2, 4096, 512)
            handle, error, data = await client.reply(512)
            assert (handle, error, data) == (2, 0, b"B" * 512)  # the held one is overtaken
            gate.set()
            assert await client.reply(512) == (1, 0, b"A" * 512)
            await client.close()

    run(body)


def test_requests_in_flight_per_connection_are_bounded(sock: str) -> None:
    async def body() -> None:
        async with fake_server(sock, ServeSettings(max_requests=4)) as (_s, device, _lun):
            gate = asyncio.Event()
            offsets = [i * 4096 for i in range(12)]
            for offset in offsets:
                device.hold[offset] = gate
            client = await RawClient.connect(sock)
            await client.connect_export()
            for i, offset in enumerate(offsets):
                client.request(nbd.CMD_READ, i, offset, 512)
            await device.wait_for_calls(4)
            gate.set()
            replies = [await client.reply(512) for _ in offsets]
            assert sorted(h for h, _e, _d in replies) == list(range(12))
            assert all(e == 0 for _h, e, _d in replies)
            assert device.max_in_flight == 4
            await client.close()

    run(body)


def test_unaligned_reads_and_writes_are_read_modify_written(sock: str) -> None:
    async def body() -> None:
        async with fake_server(sock) as (server, _device, lun):
            lun.data[0:2048] = bytes(range(256)) * 8
            before = bytes(lun.data[0:2048])
            client = await RawClient.connect(sock)
            await client.connect_export()
            # Inside one block, across a block boundary, and across three blocks.
            for offset, payload in ((3, b"hello"), (510, b"XYZW"), (100, b"#" * 1000)):
                await client.call(nbd.CMD_WRITE, offset, len(payload), data=payload)
                expected = bytearray(before)
                expected[offset : offset + len(payload)] = payload
                assert bytes(lun.data[0:2048]) == bytes(expected)
                assert await client.call(nbd.CMD_READ, offset, len(payload)) == payload
                before = bytes(expected)
            assert await client.call(nbd.CMD_READ, 511, 3) == before[511:514]
            assert server.stats.unaligned >= 4
            await client.close()

    run(body)


def test_concurrent_unaligned_writes_into_one_block_do_not_tear(sock: str) -> None:
    """64 writes of 7 bytes each into one block, from two connections at once: each is
    a read-modify-write of the same block, and every one of them must survive."""

    async def body() -> None:
        async with fake_server(sock) as (_server, _device, lun):
            clients = [await RawClient.connect(sock) for _ in range(2)]
            for client in clients:
                await client.connect_export()
            base = 8 * BLOCK
            for i in range(64):
                clients[i % 2].request(
                    nbd.CMD_WRITE, i, base + 8 * i + 1, 7, data=bytes([0x80 + i]) * 7
                )
            for client in clients:
                for _ in range(32):
                    assert (await client.reply())[1] == 0
            block = bytes(lun.data[base : base + BLOCK])
            for i in range(64):
                assert block[8 * i : 8 * i + 8] == b"\0" + bytes([0x80 + i]) * 7, i
            for client in clients:
                await client.close()

    run(body)


def test_an_aligned_write_cannot_slip_between_the_read_and_write_of_an_rmw(sock: str) -> None:
    """The RMW of a small write reads its block and is held there; an aligned write of
    the whole block arrives meanwhile. It must wait: if it landed first, the RMW would
    write back the block as it read it and undo the aligned write's other bytes."""

    async def body() -> None:
        async with fake_server(sock) as (server, device, lun):
            base = 8 * BLOCK
            gate = asyncio.Event()
            device.hold[base] = gate
            client = await RawClient.connect(sock)
            await client.connect_export()
            client.request(nbd.CMD_WRITE, 1, base + 10, 4, data=b"tiny")
            await device.wait_for_calls(1)
            assert device.calls[0][:3] == ("read", base, BLOCK)  # the RMW's read, held
            client.request(nbd.CMD_WRITE, 2, base, BLOCK, data=b"\xee" * BLOCK)
            # Either the aligned write queues behind the RMW (correct) or it reaches the
            # device (the bug this test is for).
            await until(lambda: len(server.export.io.locks) == 2 or len(device.calls) == 2)
            gate.set()
            replies = {(await client.reply())[0] for _ in range(2)}
            assert replies == {1, 2}
            block = bytes(lun.data[base : base + BLOCK])
            expected = bytearray(b"\xee" * BLOCK)
            expected[10:14] = b"tiny"
            assert block in (b"\xee" * BLOCK, bytes(expected)), block.hex()
            await client.close()

    run(body)


def test_write_zeroes_clears_exactly_the_range(sock: str) -> None:
    async def body() -> None:
        async with fake_server(sock, blocks=8192) as (_server, device, lun):
            lun.data[:] = b"\xff" * len(lun.data)
            client = await RawClient.connect(sock)
            await client.connect_export()
            start, length = 1000, 3 * 1024 * 1024 + 77  # unaligned, several pieces
            await client.call(nbd.CMD_WRITE_ZEROES, start, length, flags=nbd.CMD_FLAG_FUA)
            assert bytes(lun.data[start : start + length]) == bytes(length)
            assert lun.data[start - 1] == 0xFF and lun.data[start + length] == 0xFF
            writes = [c for c in device.calls if c[0] == "write"]
            assert writes and not any(fua for *_rest, fua in writes)
            assert device.calls[-1] == ("flush", 0, 0, False)  # FUA: one flush at the end
            assert max(n for _k, _o, n, _f in writes) <= 1024 * 1024 + BLOCK
            await client.close()

    run(body)


def test_bad_requests_get_errors_and_the_connection_stays_usable(sock: str) -> None:
    async def body() -> None:
        settings = ServeSettings(max_request_bytes=64 * 1024)
        async with fake_server(sock, settings) as (_server, _device, lun):
            size = len(lun.data)
            client = await RawClient.connect(sock)
            await client.connect_export()
            cases = [
                (nbd.CMD_READ, size - 512, 1024, 0, b"", errno.EINVAL),
                (nbd.CMD_WRITE, size - 512, 1024, 0, bytes(1024), errno.ENOSPC),
                (nbd.CMD_WRITE, 0, 128 * 1024, 0, bytes(128 * 1024), errno.EINVAL),
                (nbd.CMD_READ, 0, 128 * 1024, 0, b"", errno.EINVAL),
                (nbd.CMD_TRIM, 0, 512, 0, b"", errno.EINVAL),
                (nbd.CMD_READ, 0, 512, 0x40, b"", errno.EINVAL),
            ]
            for kind, offset, length, flags, data, expected in cases:
                with pytest.raises(RequestFailedError) as failed:
                    await client.call(kind, offset, length, flags=flags, data=data)
                assert failed.value.error == expected, (kind, offset, length)
            await client.call(nbd.CMD_WRITE, 0, 4, data=b"okay")
            assert await client.call(nbd.CMD_READ, 0, 4) == b"okay"
            await client.close()

    run(body)


def test_target_errors_become_eio_for_that_request_only(sock: str) -> None:
    async def body() -> None:
        async with fake_server(sock) as (server, device, _lun):
            transports = [p.transport for p in device.device.path_objects]
            for transport in transports:
                transport.injected.append(check_condition(0x03, 0x11, 0x00))  # type: ignore[attr-defined]
            client = await RawClient.connect(sock)
            await client.connect_export()
            with pytest.raises(RequestFailedError) as failed:
                await client.call(nbd.CMD_READ, 0, 512)
            assert failed.value.error == errno.EIO
            for transport in transports:
                transport.injected.clear()  # type: ignore[attr-defined]
            assert server.stats.errors == 1
            assert await client.call(nbd.CMD_READ, 0, 512) == bytes(512)
            await client.close()

    run(body)


def test_read_only_export_refuses_writes(sock: str) -> None:
    async def body() -> None:
        async with fake_server(sock, ServeSettings(read_only=True)) as (_s, device, lun):
            client = await RawClient.connect(sock)
            flags = await client.connect_export()
            assert flags & nbd.TFLAG_READ_ONLY
            assert not flags & (nbd.TFLAG_SEND_FUA | nbd.TFLAG_SEND_WRITE_ZEROES)
            for kind, data in ((nbd.CMD_WRITE, b"x" * 512), (nbd.CMD_WRITE_ZEROES, b"")):
                with pytest.raises(RequestFailedError) as failed:
                    await client.call(kind, 0, 512, data=data)
                assert failed.value.error == errno.EPERM
            assert lun.data[:512] == bytes(512)
            assert not [c for c in device.calls if c[0] == "write"]
            await client.close()

    run(body)


def test_disconnect_waits_for_requests_in_flight_then_flushes(sock: str) -> None:
    async def body() -> None:
        async with fake_server(sock) as (server, device, lun):
            gate = asyncio.Event()
            device.hold[4096] = gate
            client = await RawClient.connect(sock)
            await client.connect_export()
            client.request(nbd.CMD_WRITE, 1, 4096, 512, data=b"w" * 512)
            await device.wait_for_calls(1)
            client.request(nbd.CMD_DISC, 2)
            gate.set()
            assert await client.reply() == (1, 0, b"")
            assert await client.closed()
            assert lun.data[4096:4608] == b"w" * 512
            # The last client left with unflushed writes: the server flushes them.
            await device.wait_for_calls(2)
            assert device.calls[-1][0] == "flush"
            assert server.stats.flushes == 1

    run(body)


def test_a_write_finishing_after_a_flush_began_is_flushed_when_the_client_leaves(
    sock: str,
) -> None:
    async def body() -> None:
        async with fake_server(sock) as (server, device, _lun):
            gate = asyncio.Event()
            device.hold[4096] = gate
            client = await RawClient.connect(sock)
            await client.connect_export()
            client.request(nbd.CMD_WRITE, 1, 4096, 512, data=b"w" * 512)
            await device.wait_for_calls(1)
            client.request(nbd.CMD_FLUSH, 2)  # does not cover the write still in flight
            assert await client.reply() == (2, 0, b"")
            gate.set()
            assert await client.reply() == (1, 0, b"")
            client.request(nbd.CMD_DISC, 3)
            assert await client.closed()
            await device.wait_for_calls(3)
            assert [c[0] for c in device.calls] == ["write", "flush", "flush"]
            assert server.stats.flushes == 2

    run(body)


def test_write_protected_lun_gives_eperm(sock: str) -> None:
    async def body() -> None:
        async with fake_server(sock) as (_server, device, _lun):
            transports = [p.transport for p in device.device.path_objects]
            for transport in transports:
                transport.injected.append(check_condition(0x07, 0x27, 0x00))  # type: ignore[attr-defined]
            client = await RawClient.connect(sock)
            await client.connect_export()
            with pytest.raises(RequestFailedError) as failed:
                await client.call(nbd.CMD_WRITE, 0, 512, data=bytes(512))
            assert failed.value.error == errno.EPERM
            await client.close()

    run(body)


# -- shutdown ----------------------------------------------------------------------------


def test_shutdown_finishes_requests_in_flight_refuses_new_ones_and_flushes(sock: str) -> None:
    async def body() -> None:
        async with fake_server(sock) as (server, device, lun):
            gate = asyncio.Event()
            device.hold[8192] = gate
            client = await RawClient.connect(sock)
            await client.connect_export()
            client.request(nbd.CMD_WRITE, 1, 8192, 512, data=b"s" * 512)
            await device.wait_for_calls(1)
            stopping = asyncio.ensure_future(server.shutdown())
            while not server.shutting_down:
                await asyncio.sleep(0)
            client.request(nbd.CMD_WRITE, 2, 0, 512, data=b"late" * 128)
            assert await client.reply() == (2, errno.ESHUTDOWN, b"")
            gate.set()
            assert await client.reply() == (1, 0, b"")  # in flight: completed, acknowledged
            assert await bounded(stopping) is True
            assert lun.data[8192:8704] == b"s" * 512
            assert lun.data[0:512] == bytes(512)  # the refused write never reached the LUN
            assert device.calls[-1][0] == "flush"
            assert server.stats.shutdown_replies == 1
            assert await client.closed()
            assert not os.path.exists(sock)

    run(body)


def test_shutdown_abandons_stuck_requests_unacknowledged_after_the_timeout(sock: str) -> None:
    async def body() -> None:
        settings = ServeSettings(shutdown_timeout=0.2)
        async with fake_server(sock, settings) as (server, device, _lun):
            device.hold[0] = asyncio.Event()  # never set before shutdown
            client = await RawClient.connect(sock)
            await client.connect_export()
            client.request(nbd.CMD_WRITE, 1, 0, 512, data=b"x" * 512)
            await device.wait_for_calls(1)
            assert await bounded(server.shutdown()) is False
            assert server.stats.abandoned == 1
            # No reply for the abandoned write: the connection just ends.
            assert await client.closed()

    run(body)


def test_abort_stops_waiting_for_requests_in_flight_but_still_flushes(sock: str) -> None:
    async def body() -> None:
        settings = ServeSettings(shutdown_timeout=60)
        async with fake_server(sock, settings) as (server, device, lun):
            device.hold[4096] = asyncio.Event()  # a write that will not finish by itself
            client = await RawClient.connect(sock)
            await client.connect_export()
            await client.call(nbd.CMD_WRITE, 0, 512, data=b"d" * 512)  # acknowledged
            client.request(nbd.CMD_WRITE, 2, 4096, 512, data=b"x" * 512)
            await device.wait_for_calls(2)
            stopping = asyncio.ensure_future(server.shutdown())
            await until(lambda: server.shutting_down)
            server.abort()
            assert await bounded(stopping) is False  # well before the 60 s timeout
            assert server.stats.abandoned == 1
            assert device.calls[-1][0] == "flush"  # the acknowledged write is flushed
            assert lun.data[0:512] == b"d" * 512
            assert await client.closed()  # and the abandoned write got no reply

    run(body)


def test_connections_beyond_the_limit_are_closed_and_the_socket_is_owner_only(sock: str) -> None:
    async def body() -> None:
        async with fake_server(sock, ServeSettings(max_connections=1)) as (server, _d, _l):
            assert os.stat(sock).st_mode & 0o777 == 0o600
            first = await RawClient.connect(sock)
            await first.connect_export()
            second = await RawClient.connect(sock)
            assert await second.closed()
            assert server.stats.refused_connections == 1
            assert await first.call(nbd.CMD_READ, 0, 4) == bytes(4)
            await first.close()
            await second.close()

    run(body)


def test_no_connections_after_shutdown(sock: str) -> None:
    async def body() -> None:
        async with fake_server(sock) as (server, _device, _lun):
            await server.shutdown()
            with pytest.raises(OSError):
                await RawClient.connect(sock)

    run(body)


# -- block locks -------------------------------------------------------------------------


def test_block_locks_serialise_only_conflicting_edges() -> None:
    async def body() -> None:
        locks = BlockLocks()
        aligned = await locks.acquire(0, 10)
        other_aligned = await locks.acquire(5, 15)  # whole-block writers never wait
        edge = asyncio.ensure_future(locks.acquire(9, 11, (9, 10)))  # RMW of block 9
        disjoint_edge = await locks.acquire(20, 21, (20,))
        await asyncio.sleep(0)
        assert not edge.done()
        locks.release(aligned)
        await asyncio.sleep(0)
        assert not edge.done()  # block 9 is still being written whole by other_aligned
        locks.release(other_aligned)
        claim = await bounded(edge)
        # An aligned writer of block 10 now waits for the RMW (FIFO keeps order too).
        later = asyncio.ensure_future(locks.acquire(10, 12))
        await asyncio.sleep(0)
        assert not later.done()
        locks.release(claim)
        locks.release(await bounded(later))
        locks.release(disjoint_edge)
        assert len(locks) == 0

    run(body)


def test_a_direct_write_takes_its_claim_only_when_it_need_not_wait() -> None:
    async def body() -> None:
        locks = BlockLocks()
        edge = await locks.acquire(9, 11, (9, 10))  # an RMW of blocks 9 and 10
        assert locks.try_acquire(10, 12) is None  # would write into the RMW: wait in line
        whole = locks.try_acquire(0, 9)  # beside it: taken at once
        assert whole is not None and len(locks) == 2
        queued = asyncio.ensure_future(locks.acquire(11, 13, (12,)))  # an RMW waiting...
        await asyncio.sleep(0)
        assert queued.done()  # ...no: nothing conflicts with block 12, it is granted
        later_edge = asyncio.ensure_future(locks.acquire(8, 10, (8,)))  # waits for `whole`
        await asyncio.sleep(0)
        assert not later_edge.done()
        # A whole-block write behind a waiting RMW of its block does not overtake it.
        assert locks.try_acquire(8, 9) is None
        locks.release(whole)
        locks.release(edge)
        locks.release(await bounded(later_edge))
        locks.release(await bounded(queued))
        assert len(locks) == 0

    run(body)


# -- listen addresses --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "uri"),
    [
        ("unix:/run/x.sock", "nbd+unix:///?socket=/run/x.sock"),
        ("tcp:127.0.0.1:10809", "nbd://127.0.0.1:10809"),
        ("tcp:localhost:1", "nbd://127.0.0.1:1"),
        ("tcp:[::1]:10809", "nbd://[::1]:10809"),
    ],
)
def test_listen_addresses_parse_to_uris(text: str, uri: str) -> None:
    address = ListenAddress.parse(text)
    assert address.uri() == uri
    assert address.is_local
    check_listen_policy(address, allow_remote=False)


@pytest.mark.parametrize(
    "text",
    [
        "10809",
        "udp:1.2.3.4:1",
        "tcp:127.0.0.1",
        "tcp:host.example:1",
        "tcp:[::1:5",
        "tcp:127.0.0.1:70000",
    ],
)
def test_bad_listen_addresses_are_usage_errors(text: str) -> None:
    with pytest.raises(UsageError):
        ListenAddress.parse(text)


@pytest.mark.parametrize("allow_remote", [False, True])
def test_network_addresses_are_refused_without_tls(allow_remote: bool) -> None:
    address = ListenAddress.parse("tcp:0.0.0.0:10809")
    with pytest.raises(UsageError) as refused:
        check_listen_policy(address, allow_remote=allow_remote)
    assert "TLS" in str(refused.value)
    if not allow_remote:
        assert "--allow-remote" in str(refused.value)


def test_tcp_port_zero_picks_a_free_loopback_port(sock: str) -> None:
    async def body() -> None:
        async with fake_server(sock) as (server, _device, _lun):
            tcp = NbdServer(server.export.device)
            await tcp.start(ListenAddress.parse("tcp:127.0.0.1:0"))
            try:
                assert tcp.port and tcp.uri == f"nbd://127.0.0.1:{tcp.port}"
                reader, writer = await bounded(asyncio.open_connection("127.0.0.1", tcp.port))
                magic = await bounded(reader.readexactly(8))
                assert struct.unpack(">Q", magic) == (nbd.NBDMAGIC,)
                writer.close()
            finally:
                await bounded(tcp.shutdown())

    run(body)


def test_stale_socket_is_replaced_but_a_live_one_or_a_file_is_refused(
    sock_dir: Path, sock: str
) -> None:
    async def body() -> None:
        stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        stale.bind(sock)  # bound, never listening: what a killed server leaves
        stale.close()
        async with fake_server(sock) as (server, _device, _lun):
            with pytest.raises(DeviceError, match="another server"):
                await NbdServer(server.export.device).start(ListenAddress.parse(f"unix:{sock}"))
            assert os.path.exists(sock)  # the live server's socket is left alone
            plain = sock_dir / "file"
            plain.write_text("not a socket")
            with pytest.raises(UsageError, match="not a socket"):
                await NbdServer(server.export.device).start(ListenAddress.parse(f"unix:{plain}"))
            assert plain.read_text() == "not a socket"

    run(body)
