"""A minimal raw NBD client for protocol tests, and helpers to run a server over fakes.

Real clients (nbdinfo, nbdcopy, nbdsh, fio) are driven as subprocesses elsewhere; this
one exists to send exactly the bytes a test needs (bad flags, unknown options,
out-of-order replies) and read exactly what comes back.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from typing import TypeVar

from mpath.filter import DeviceSettings, MultipathDevice
from mpath.nbd import ListenAddress, NbdServer, ServeSettings
from mpath.nbd import protocol as nbd
from mpath.nbd.settings import SavingCommands
from tests.filter.fakes import FakeLun, FakeTransport

T = TypeVar("T")
FAST = DeviceSettings(policy="round-robin", io_timeout_min=0.05, reconnect_interval=0.02)


def bounded(awaitable: Awaitable[T], seconds: float = 10.0) -> Awaitable[T]:
    """Every wait in these tests is bounded: a bug fails the test instead of hanging it."""
    return asyncio.wait_for(awaitable, seconds)


async def until(condition: Callable[[], bool]) -> None:
    """Yield to the loop until ``condition`` holds (bounded); no clock involved."""

    async def spin() -> None:
        while not condition():
            await asyncio.sleep(0)

    await bounded(spin())


@dataclass
class RecordingDevice:
    """A device wrapper that records calls and can hold chosen requests.

    ``hold`` maps an offset to an event: a read or write at that offset waits for the
    event before reaching the device. ``arrived`` is set each time a call starts.
    """

    device: MultipathDevice
    calls: list[tuple[str, int, int, bool]] = field(default_factory=list)
    hold: dict[int, asyncio.Event] = field(default_factory=dict)
    in_flight: int = 0
    max_in_flight: int = 0
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def block_size(self) -> int:
        return self.device.block_size

    @property
    def size_bytes(self) -> int:
        return self.device.size_bytes

    async def _enter(self, kind: str, offset: int, length: int, fua: bool) -> None:
        self.calls.append((kind, offset, length, fua))
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        self.arrived.set()
        gate = self.hold.get(offset)
        if gate is not None:
            await gate.wait()

    async def read(self, offset: int, length: int) -> bytes:
        try:
            await self._enter("read", offset, length, False)
            return await self.device.read(offset, length)
        finally:
            self.in_flight -= 1

    def start_read(self, offset: int, length: int) -> asyncio.Future[bytes]:
        """The device's direct read, recorded; a held one waits in a task (``read``)."""
        if offset in self.hold:
            return asyncio.ensure_future(self.read(offset, length))
        self.calls.append(("read", offset, length, False))
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        self.arrived.set()
        reading = self.device.start_read(offset, length)
        reading.add_done_callback(self._left)
        return reading

    def start_write(
        self, offset: int, data: bytes | bytearray | memoryview
    ) -> asyncio.Future[None]:
        """The device's direct write, recorded; a held one waits in a task (``write``)."""
        if offset in self.hold:
            return asyncio.ensure_future(self.write(offset, data))
        self.calls.append(("write", offset, len(data), False))
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        self.arrived.set()
        writing = self.device.start_write(offset, data)
        writing.add_done_callback(self._left)
        return writing

    def _left(self, _: object) -> None:
        self.in_flight -= 1

    async def write(
        self, offset: int, data: bytes | bytearray | memoryview, *, fua: bool = False
    ) -> None:
        try:
            await self._enter("write", offset, len(data), fua)
            await self.device.write(offset, data, fua=fua)
        finally:
            self.in_flight -= 1

    async def flush(self) -> None:
        self.calls.append(("flush", 0, 0, False))
        self.arrived.set()
        await self.device.flush()

    async def wait_for_calls(self, count: int) -> None:
        while len(self.calls) < count:
            self.arrived.clear()
            await bounded(self.arrived.wait())


@asynccontextmanager
async def fake_server(
    tmp_socket: str,
    settings: ServeSettings | None = None,
    blocks: int = 2048,
    saving: Callable[[FakeLun], SavingCommands] | None = None,
) -> AsyncIterator[tuple[NbdServer, RecordingDevice, FakeLun]]:
    """A server on a Unix socket over a MultipathDevice of two fake paths (and, with
    ``saving``, the zeroing/trim/map commands it makes for the fake LUN)."""
    lun = FakeLun(blocks=blocks)
    transports = [FakeTransport(f"fake://path{i + 1}", lun) for i in range(2)]
    device = await MultipathDevice.open(transports, FAST)
    recording = RecordingDevice(device)
    server = NbdServer(recording, settings, saving(lun) if saving is not None else None)
    try:
        await server.start(ListenAddress.parse(f"unix:{tmp_socket}"))
        try:
            yield server, recording, lun
        finally:
            for gate in recording.hold.values():
                gate.set()
            await bounded(server.shutdown(), 30)
    finally:
        await device.close()


@asynccontextmanager
async def fake_exports(
    tmp_socket: str, names: tuple[str, ...], blocks: int = 2048
) -> AsyncIterator[tuple[NbdServer, dict[str, tuple[RecordingDevice, FakeLun]]]]:
    """One server on a Unix socket with one named export per fake LUN (two fake paths
    each), as ``mpath daemon`` serves its maps."""
    server = NbdServer()
    devices: dict[str, tuple[RecordingDevice, FakeLun]] = {}
    opened: list[MultipathDevice] = []
    try:
        await server.start(ListenAddress.parse(f"unix:{tmp_socket}"))
        try:
            for name in names:
                lun = FakeLun(blocks=blocks)
                transports = [FakeTransport(f"fake://{name}/path{i + 1}", lun) for i in range(2)]
                device = await MultipathDevice.open(transports, FAST)
                opened.append(device)
                devices[name] = (RecordingDevice(device), lun)
                server.add(name, devices[name][0], ServeSettings(description=f"LUN {name}"))
            yield server, devices
        finally:
            for recording, _lun in devices.values():
                for gate in recording.hold.values():
                    gate.set()
            await bounded(server.shutdown(), 30)
    finally:
        for device in opened:
            await device.close()


class RawClient:
    """Speaks the NBD wire protocol byte by byte."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.handshake_flags = 0

    @classmethod
    async def connect(cls, path: str) -> RawClient:
        reader, writer = await bounded(asyncio.open_unix_connection(path))
        return cls(reader, writer)

    async def read(self, n: int) -> bytes:
        return await bounded(self.reader.readexactly(n))

    async def greeting(self, client_flags: int = 3) -> None:
        magic, opt_magic, flags = struct.unpack(">QQH", await self.read(18))
        assert (magic, opt_magic) == (nbd.NBDMAGIC, nbd.IHAVEOPT)
        self.handshake_flags = flags
        self.writer.write(struct.pack(">I", client_flags))

    def send_option(self, option: int, data: bytes = b"") -> None:
        self.writer.write(struct.pack(">QII", nbd.IHAVEOPT, option, len(data)) + data)

    async def option_reply(self) -> tuple[int, int, bytes]:
        magic, option, reply, length = nbd.OPTION_REPLY.unpack(
            await self.read(nbd.OPTION_REPLY.size)
        )
        assert magic == nbd.OPTION_REPLY_MAGIC
        return option, reply, await self.read(length)

    async def go(
        self, name: str = "", infos: tuple[int, ...] = (nbd.INFO_BLOCK_SIZE,)
    ) -> dict[int, bytes]:
        """NBD_OPT_GO; returns the info replies by type (raises on an error reply)."""
        encoded = name.encode()
        data = struct.pack(">I", len(encoded)) + encoded
        data += struct.pack(f">H{len(infos)}H", len(infos), *infos)
        self.send_option(nbd.OPT_GO, data)
        got: dict[int, bytes] = {}
        while True:
            option, reply, payload = await self.option_reply()
            assert option == nbd.OPT_GO
            if reply == nbd.REP_ACK:
                return got
            if reply != nbd.REP_INFO:
                raise OptionRefusedError(reply, payload.decode())
            (kind,) = struct.unpack_from(">H", payload)
            got[kind] = payload[2:]

    async def list_exports(self) -> list[tuple[str, str]]:
        """NBD_OPT_LIST: (name, description) of every NBD_REP_SERVER before the ACK."""
        self.send_option(nbd.OPT_LIST)
        found: list[tuple[str, str]] = []
        while True:
            option, reply, payload = await self.option_reply()
            assert option == nbd.OPT_LIST
            if reply == nbd.REP_ACK:
                assert payload == b""
                return found
            if reply != nbd.REP_SERVER:
                raise OptionRefusedError(reply, payload.decode())
            (length,) = struct.unpack_from(">I", payload)
            assert 4 + length <= len(payload)
            found.append((payload[4 : 4 + length].decode(), payload[4 + length :].decode()))

    async def connect_export(self) -> int:
        """Greeting and GO in one; returns the transmission flags."""
        await self.greeting()
        infos = await self.go()
        _size, flags = struct.unpack(">QH", infos[nbd.INFO_EXPORT])
        return int(flags)

    def request(
        self, kind: int, handle: int, offset: int = 0, length: int = 0, *, flags: int = 0,
        data: bytes = b"",
    ) -> None:  # fmt: skip
        self.writer.write(
            nbd.REQUEST.pack(nbd.REQUEST_MAGIC, flags, kind, handle, offset, length) + data
        )

    async def reply(self, read_length: int = 0) -> tuple[int, int, bytes]:
        """One simple reply: (handle, error, data); ``read_length`` for a READ's data."""
        magic, error, handle = nbd.SIMPLE_REPLY.unpack(await self.read(nbd.SIMPLE_REPLY.size))
        assert magic == nbd.SIMPLE_REPLY_MAGIC
        data = await self.read(read_length) if read_length and not error else b""
        return handle, error, data

    async def call(
        self, kind: int, offset: int = 0, length: int = 0, *, flags: int = 0, data: bytes = b""
    ) -> bytes:
        """One request and its reply; raises on an error reply."""
        self.request(kind, 7, offset, length, flags=flags, data=data)
        handle, error, data = await self.reply(length if kind == nbd.CMD_READ else 0)
        assert handle == 7
        if error:
            raise RequestFailedError(error)
        return data

    async def closed(self) -> bool:
        """True once the server closed the connection (bounded wait)."""
        return await bounded(self.reader.read(1)) == b""

    async def close(self) -> None:
        self.writer.close()
        with suppress(ConnectionError, TimeoutError):
            await bounded(self.writer.wait_closed(), 5)


class OptionRefusedError(Exception):
    def __init__(self, reply: int, message: str) -> None:
        super().__init__(f"option refused: {reply:#x} {message}")
        self.reply = reply
        self.message = message


class RequestFailedError(Exception):
    def __init__(self, error: int) -> None:
        super().__init__(f"request failed: errno {error}")
        self.error = error
