"""Hostile clients: a property-based fuzzer for the NBD server's handshake and transmission.

Each case is one client session drawn by hypothesis: client flags, a run of options
(real and unknown codes, lying lengths, random or well-formed payloads), maybe a GO
into transmission, then requests (unknown commands, random flags, huge offsets and
lengths, writes whose payload never comes), cut off at a random byte (a disconnect in
the middle of a message) or closed after the last one. The server runs in this process
over an in-memory device, on one event loop for all cases.

After every case: the server closed the connection (it never waits on a client that
went away), no task of it is left (connection handlers, request tasks), the byte
budget is whole again, and another client still connects, writes, reads back what it
wrote and flushes. After all cases no live object of mpath or asyncio, and no open
descriptor, has piled up since the first tenth of them.

``MPATH_FUZZ_EXAMPLES`` sets the number of cases (default 10,000, what CI runs).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import struct
from collections import Counter

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mpath.nbd import ListenAddress, NbdServer, ServeSettings
from mpath.nbd import protocol as nbd
from tests.nbd.client import RawClient, bounded

EXAMPLES = int(os.environ.get("MPATH_FUZZ_EXAMPLES", "10000"))
BLOCK = 512
SIZE = 1024 * 1024
SETTINGS = ServeSettings(
    max_connections=8,
    max_requests=16,
    max_inflight_bytes=4 * 1024 * 1024,
    max_request_bytes=1024 * 1024,
    handshake_timeout=5.0,
    shutdown_timeout=5.0,
)


class MemoryDevice:
    """A block device in memory: the fuzzer tests the server, not a device."""

    block_size = BLOCK
    size_bytes = SIZE

    def __init__(self) -> None:
        self.data = bytearray(SIZE)

    async def read(self, offset: int, length: int) -> bytes:
        await asyncio.sleep(0)
        return bytes(self.data[offset : offset + length])

    async def write(
        self, offset: int, data: bytes | bytearray | memoryview, *, fua: bool = False
    ) -> None:
        await asyncio.sleep(0)
        self.data[offset : offset + len(data)] = data

    async def flush(self) -> None:
        await asyncio.sleep(0)


u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 0xFFFFFFFF)
u64 = st.integers(0, 0xFFFFFFFFFFFFFFFF)
OPTIONS = [
    nbd.OPT_EXPORT_NAME, nbd.OPT_ABORT, nbd.OPT_LIST, nbd.OPT_STARTTLS, nbd.OPT_INFO,
    nbd.OPT_GO, nbd.OPT_STRUCTURED_REPLY, nbd.OPT_LIST_META_CONTEXT, nbd.OPT_SET_META_CONTEXT,
]  # fmt: skip
COMMANDS = [
    nbd.CMD_READ, nbd.CMD_WRITE, nbd.CMD_FLUSH, nbd.CMD_TRIM, nbd.CMD_CACHE,
    nbd.CMD_WRITE_ZEROES, nbd.CMD_BLOCK_STATUS,
]  # fmt: skip


def _name(name: bytes) -> bytes:
    return struct.pack(">I", len(name)) + name


@st.composite
def option_payload(draw: st.DrawFn, option: int) -> bytes:
    """Well-formed payloads for the options that have one, sometimes; else noise."""
    if draw(st.booleans()):
        return draw(st.binary(max_size=64))
    name = draw(st.sampled_from([b"", b"x", b"\xff\xfe", b"a" * 300]))
    if option in (nbd.OPT_INFO, nbd.OPT_GO):
        infos = draw(st.lists(u16, max_size=4))
        return _name(name) + struct.pack(f">H{len(infos)}H", len(infos), *infos)
    if option in (nbd.OPT_LIST_META_CONTEXT, nbd.OPT_SET_META_CONTEXT):
        queries = draw(
            st.lists(st.sampled_from([b"base:allocation", b"base:", b"x:y"]), max_size=3)
        )
        return _name(name) + struct.pack(">I", len(queries)) + b"".join(map(_name, queries))
    return name


@st.composite
def option(draw: st.DrawFn) -> bytes:
    code = draw(st.one_of(st.sampled_from(OPTIONS), u32))
    payload = draw(option_payload(code))
    length = draw(st.one_of(st.just(len(payload)), u32, st.integers(0, 200)))
    magic = nbd.IHAVEOPT if draw(st.integers(0, 19)) else draw(u64)
    return struct.pack(">QII", magic, code, length) + payload


@st.composite
def request(draw: st.DrawFn) -> bytes:
    kind = draw(st.one_of(st.sampled_from(COMMANDS), u16))
    flags = draw(st.one_of(st.just(0), st.just(nbd.CMD_FLAG_FUA), u16))
    aligned = st.integers(0, SIZE // BLOCK - 1).map(lambda b: b * BLOCK)
    offset = draw(st.one_of(aligned, st.integers(0, SIZE), u64))
    length = draw(
        st.one_of(st.integers(0, 8192), st.sampled_from([SIZE, 2 * SIZE, 0xFFFFFFFF]), u32)
    )
    magic = nbd.REQUEST_MAGIC if draw(st.integers(0, 19)) else draw(u32)
    handle = draw(u64)
    payload = b""
    if kind == nbd.CMD_WRITE:
        # The payload the length promises, or less (the rest never comes).
        payload = bytes(min(length, draw(st.integers(0, 8192))))
    return nbd.REQUEST.pack(magic, flags, kind, handle, offset, length) + payload


@st.composite
def session(draw: st.DrawFn) -> tuple[bytes, int | None, bool]:
    """(bytes the client sends, where it cuts them off or None, half-close or reset)."""
    client_flags = draw(st.one_of(st.sampled_from([1, 3]), u32))
    stream = struct.pack(">I", client_flags)
    if draw(st.booleans()):
        stream += b"".join(draw(st.lists(option(), max_size=4)))
    if draw(st.integers(0, 3)):  # most sessions go on into transmission
        if draw(st.booleans()):
            stream += struct.pack(">QII", nbd.IHAVEOPT, nbd.OPT_STRUCTURED_REPLY, 0)
        go = _name(b"") + struct.pack(">H", 0)
        stream += struct.pack(">QII", nbd.IHAVEOPT, nbd.OPT_GO, len(go)) + go
        stream += b"".join(draw(st.lists(request(), max_size=6)))
        if draw(st.booleans()):
            stream += nbd.REQUEST.pack(nbd.REQUEST_MAGIC, 0, nbd.CMD_DISC, 0, 0, 0)
    cut = draw(st.one_of(st.none(), st.integers(0, max(0, len(stream) - 1))))
    return stream, cut, draw(st.booleans())


async def _hostile(path: str, stream: bytes, cut: int | None, reset: bool) -> None:
    """Send the session, then close (half-close: read what comes; or drop at once)."""
    reader, writer = await bounded(asyncio.open_unix_connection(path))
    try:
        await bounded(reader.readexactly(18))  # the greeting
        writer.write(stream if cut is None else stream[:cut])
        if reset:
            return
        writer.write_eof()
        # The server must close its end: reading to EOF never hangs.
        while await bounded(reader.read(65536)):
            pass
    except (ConnectionError, asyncio.IncompleteReadError):
        pass  # the server hung up first (a protocol error): also fine
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


async def _well_behaved(path: str, value: int) -> None:
    """Another client is served: GO, write, read back, flush, disconnect."""
    client = await RawClient.connect(path)
    try:
        await client.connect_export()
        data = bytes([value]) * 4096
        await client.call(nbd.CMD_WRITE, 8192, len(data), data=data)
        assert await client.call(nbd.CMD_READ, 8192, len(data)) == data
        await client.call(nbd.CMD_FLUSH)
        client.request(nbd.CMD_DISC, 0)
        await client.writer.drain()
    finally:
        client.writer.close()
        await client.writer.wait_closed()


async def _settled(server: NbdServer, baseline: int) -> None:
    """Wait until the server holds no connection, no handler, no task beyond the
    baseline, and its whole byte budget (bounded: a leak fails the case, saying what
    is left)."""

    def left() -> list[str]:
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        return [
            *([f"{server.connections} connection(s)"] if server.connections else []),
            *([f"{len(server._handlers)} handler(s)"] if server._handlers else []),
            *([f"{server.budget.used} budget bytes"] if server.budget.used else []),
            *([f"tasks: {[t.get_coro() for t in tasks]}"] if len(tasks) > baseline else []),
        ]

    async def quiet() -> None:
        while left():
            await asyncio.sleep(0.001)  # polling state the server exposes no event for

    try:
        await asyncio.wait_for(quiet(), 10)
    except TimeoutError:
        raise AssertionError(f"the server did not settle: {'; '.join(left())}") from None


def _server_objects() -> dict[str, int]:
    """Live objects a leaking server would pile up: mpath's own, asyncio's tasks,
    futures, streams and transports, and this process's open descriptors.

    Why not RSS: hypothesis's own memory grows with the cases it draws (measured:
    the same growth with and without a server), which would hide or fake a leak.
    """
    gc.collect()
    counts: Counter[str] = Counter()
    for thing in gc.get_objects():
        kind = type(thing)
        module = kind.__module__ or ""
        if module.startswith(("mpath.", "asyncio.")) or kind.__name__ in ("Task", "Future"):
            counts[f"{module}.{kind.__name__}"] += 1
    counts["open descriptors"] = len(os.listdir("/proc/self/fd"))
    return dict(counts)


@pytest.mark.timeout(900)  # 10,000 cases take 75-85 s here; bounded well above that
def test_hostile_clients_never_crash_leak_or_block_the_server(sock: str) -> None:
    runner = asyncio.Runner()
    device = MemoryDevice()
    server = NbdServer(device, SETTINGS)
    runner.run(server.start(ListenAddress.parse(f"unix:{sock}")))
    baseline = runner.run(_count_tasks())
    counter = [0]
    objects: list[dict[str, int]] = []

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(session())
    def case(drawn: tuple[bytes, int | None, bool]) -> None:
        stream, cut, reset = drawn
        counter[0] += 1
        runner.run(_hostile(sock, stream, cut, reset))
        runner.run(_settled(server, baseline))
        runner.run(_well_behaved(sock, counter[0] % 251))
        runner.run(_settled(server, baseline))
        if counter[0] in (EXAMPLES // 10, EXAMPLES):
            objects.append(_server_objects())

    try:
        case()
        assert server.stats.connections >= 2 * counter[0]
        if len(objects) == 2:  # nothing piles up with the cases (after the first tenth)
            before, after = objects
            grown = {k: (before.get(k, 0), n) for k, n in after.items() if n > before.get(k, 0)}
            assert not grown, f"live objects grew over {EXAMPLES} cases: {grown}"
    finally:
        assert runner.run(_shutdown(server))
        runner.close()


async def _count_tasks() -> int:
    return len(asyncio.all_tasks())


async def _shutdown(server: NbdServer) -> bool:
    return await bounded(server.shutdown(), 30)
