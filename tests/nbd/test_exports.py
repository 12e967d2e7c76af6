"""Many named exports behind one server: the option phase (LIST, INFO, GO, EXPORT_NAME)
driven byte by byte, exports added and removed while clients are connected, and
nbdinfo --list as a real client. Devices are MultipathDevices over fake paths."""

from __future__ import annotations

import asyncio
import errno
import json
import shutil
import struct
from collections.abc import Awaitable, Callable

import pytest

from mpath.errors import UsageError
from mpath.filter import MultipathDevice
from mpath.nbd import ListenAddress, NbdServer, ServeSettings
from mpath.nbd import protocol as nbd
from tests.filter.fakes import FakeLun, FakeTransport
from tests.nbd.client import (
    FAST,
    OptionRefusedError,
    RawClient,
    bounded,
    fake_exports,
    until,
)
from tests.nbd.test_clients import run_tool


def run(body: Callable[[], Awaitable[None]]) -> None:
    async def bounded_body() -> None:
        await bounded(body(), 30)

    asyncio.run(bounded_body())


def info_request(name: str, *infos: int) -> bytes:
    encoded = name.encode()
    return struct.pack(">I", len(encoded)) + encoded + struct.pack(f">H{len(infos)}H",
                                                                    len(infos), *infos)  # fmt: skip


@pytest.mark.parametrize("names", [(), ("mpatha",), ("db", "mpathb")])
def test_list_answers_one_server_reply_per_export_then_ack(
    sock: str, names: tuple[str, ...]
) -> None:
    async def body() -> None:
        async with fake_exports(sock, names):
            client = await RawClient.connect(sock)
            await client.greeting()
            assert await client.list_exports() == [(n, f"LUN {n}") for n in names]
            # LIST keeps the handshake going: it can be asked again, then ABORT.
            assert [n for n, _ in await client.list_exports()] == list(names)
            client.send_option(nbd.OPT_ABORT)
            assert (await client.option_reply())[1] == nbd.REP_ACK
            await client.close()

    run(body)


def test_go_enters_the_named_export_and_serves_only_its_device(sock: str) -> None:
    async def body() -> None:
        async with fake_exports(sock, ("a", "b"), blocks=4096) as (_server, devices):
            client = await RawClient.connect(sock)
            await client.greeting()
            infos = await client.go("b", infos=(nbd.INFO_NAME, nbd.INFO_DESCRIPTION))
            assert infos[nbd.INFO_NAME] == b"b"
            assert infos[nbd.INFO_DESCRIPTION] == b"LUN b"
            assert struct.unpack(">QH", infos[nbd.INFO_EXPORT])[0] == 4096 * 512
            await client.call(nbd.CMD_WRITE, 0, 512, data=b"b" * 512)
            await client.call(nbd.CMD_FLUSH)
            assert await client.call(nbd.CMD_READ, 0, 512) == b"b" * 512
            await client.close()
            assert devices["b"][1].data[:512] == b"b" * 512
            assert devices["a"][1].data[:512] == bytes(512)
            assert devices["a"][0].calls == []  # the other export saw nothing at all
            assert devices["b"][0].calls[0] == ("write", 0, 512, False)

    run(body)


def test_go_and_info_for_an_unknown_name_are_refused_and_the_handshake_goes_on(
    sock: str,
) -> None:
    async def body() -> None:
        async with fake_exports(sock, ("a", "b")) as (server, _devices):
            client = await RawClient.connect(sock)
            await client.greeting()
            for name in ("nope", ""):  # no default export on a server of named ones
                with pytest.raises(OptionRefusedError) as refused:
                    await client.go(name)
                assert refused.value.reply == nbd.REP_ERR_UNKNOWN
                assert refused.value.message == f"no export named {name!r} (exports: 'a', 'b')"
            client.send_option(nbd.OPT_INFO, info_request("zzz"))
            option, reply, message = await client.option_reply()
            assert (option, reply) == (nbd.OPT_INFO, nbd.REP_ERR_UNKNOWN)
            assert b"zzz" in message
            client.send_option(nbd.OPT_INFO, info_request("a", nbd.INFO_NAME))
            replies = [await client.option_reply() for _ in range(4)]
            assert [r[1] for r in replies] == [nbd.REP_INFO] * 3 + [nbd.REP_ACK]
            export = server.exports.get("a")
            assert export is not None and not export.clients  # INFO chose nothing
            await client.go("a")
            assert await client.call(nbd.CMD_READ, 0, 8) == bytes(8)
            await client.close()

    run(body)


def test_meta_context_for_an_unknown_export_is_refused(sock: str) -> None:
    async def body() -> None:
        async with fake_exports(sock, ("a",)):
            client = await RawClient.connect(sock)
            await client.greeting()
            client.send_option(nbd.OPT_STRUCTURED_REPLY)
            assert (await client.option_reply())[1] == nbd.REP_ACK
            query = nbd.META_BASE_ALLOCATION.encode()
            for name, expected in ((b"x", nbd.REP_ERR_UNKNOWN), (b"a", nbd.REP_ACK)):
                data = struct.pack(">I", len(name)) + name + struct.pack(">II", 1, len(query))
                client.send_option(nbd.OPT_LIST_META_CONTEXT, data + query)
                assert (await client.option_reply())[1] == expected  # fakes map nothing
            await client.close()

    run(body)


@pytest.mark.parametrize("name", ["a", "nope"])
def test_export_name_option_enters_a_known_export_and_closes_on_an_unknown_one(
    sock: str, name: str
) -> None:
    """NBD_OPT_EXPORT_NAME has no error reply: an unknown name ends the session."""

    async def body() -> None:
        async with fake_exports(sock, ("a", "b")) as (server, _devices):
            client = await RawClient.connect(sock)
            await client.greeting()
            client.send_option(nbd.OPT_EXPORT_NAME, name.encode())
            if name == "nope":
                assert await client.closed()
                assert server.stats.connections == 1
            else:
                size, flags = struct.unpack(">QH", await client.read(10))
                assert size == 2048 * 512 and flags & nbd.TFLAG_SEND_FLUSH
                assert await client.call(nbd.CMD_READ, 0, 4) == bytes(4)
                assert server.exports.get("a") is not None
            await client.close()

    run(body)


def test_exports_are_added_while_the_server_runs_and_names_are_unique(sock: str) -> None:
    async def body() -> None:
        async with fake_exports(sock, ("a",)) as (server, devices):
            client = await RawClient.connect(sock)
            await client.greeting()
            assert [n for n, _ in await client.list_exports()] == ["a"]
            late = devices["a"][0]
            with pytest.raises(UsageError, match="'a' already exists"):
                server.add("a", late)
            server.add("late", late, ServeSettings(description="added later"))
            assert await client.list_exports() == [("a", "LUN a"), ("late", "added later")]
            await client.go("late")
            assert await client.call(nbd.CMD_READ, 0, 4) == bytes(4)
            await client.close()

    run(body)


def test_a_removed_export_refuses_new_clients_at_once_and_drains_its_own(sock: str) -> None:
    async def body() -> None:
        async with fake_exports(sock, ("a", "b")) as (server, devices):
            device_a, lun_a = devices["a"]
            device_b, lun_b = devices["b"]
            gate = asyncio.Event()
            device_a.hold[8192] = gate
            on_a = await RawClient.connect(sock)
            await on_a.greeting()
            await on_a.go("a")
            on_b = await RawClient.connect(sock)
            await on_b.greeting()
            await on_b.go("b")
            on_a.request(nbd.CMD_WRITE, 1, 8192, 512, data=b"s" * 512)
            await device_a.wait_for_calls(1)

            removing = asyncio.ensure_future(server.remove("a"))
            await until(lambda: "a" not in server.exports)
            # New clients: "a" is neither listed nor found, at once.
            newcomer = await RawClient.connect(sock)
            await newcomer.greeting()
            assert await newcomer.list_exports() == [("b", "LUN b")]
            with pytest.raises(OptionRefusedError) as refused:
                await newcomer.go("a")
            assert refused.value.reply == nbd.REP_ERR_UNKNOWN
            # The connected client's new requests are refused; its write in flight is not.
            on_a.request(nbd.CMD_WRITE, 2, 0, 512, data=b"late" * 128)
            assert await on_a.reply() == (2, errno.ESHUTDOWN, b"")
            assert not removing.done()
            gate.set()
            assert await on_a.reply() == (1, 0, b"")  # finished, acknowledged
            assert await bounded(removing) is True
            assert await on_a.closed()
            assert lun_a.data[8192:8704] == b"s" * 512
            assert lun_a.data[0:512] == bytes(512)  # the refused write never reached it
            assert device_a.calls[-1][0] == "flush"
            # The other export and its client carry on untouched.
            await on_b.call(nbd.CMD_WRITE, 512, 512, data=b"b" * 512)
            assert await on_b.call(nbd.CMD_READ, 512, 512) == b"b" * 512
            assert lun_b.data[512:1024] == b"b" * 512
            assert not any(call[0] == "flush" for call in device_b.calls)
            with pytest.raises(UsageError, match="no NBD export named 'a'"):
                await server.remove("a")
            # The name can be served again (a map reopened by a reload).
            server.add("a", device_a)
            await newcomer.go("a")
            assert await newcomer.call(nbd.CMD_READ, 8192, 512) == b"s" * 512
            for client in (on_a, on_b, newcomer):
                await client.close()

    run(body)


def test_one_server_listens_on_a_unix_socket_and_loopback_tcp(sock: str) -> None:
    async def body() -> None:
        lun = FakeLun(blocks=64)
        device = await MultipathDevice.open([FakeTransport("fake://t/1", lun)], FAST)
        server = NbdServer()
        try:
            await server.start(
                ListenAddress.parse(f"unix:{sock}"), ListenAddress.parse("tcp:127.0.0.1:0")
            )
            server.add("m", device)
            unix_uri, tcp_uri = server.uris_for("m")
            assert unix_uri == f"nbd+unix:///m?socket={sock}"
            assert tcp_uri == f"nbd://127.0.0.1:{server.listeners[1].port}/m"
            reader, writer = await bounded(
                asyncio.open_connection("127.0.0.1", server.listeners[1].port)
            )
            client = RawClient(reader, writer)
            await client.greeting()
            assert [n for n, _ in await client.list_exports()] == ["m"]
            await client.close()
        finally:
            await bounded(server.shutdown())
            await device.close()

    run(body)


@pytest.mark.skipif(shutil.which("nbdinfo") is None, reason="nbdinfo not installed (make setup)")
def test_nbdinfo_list_shows_every_export_with_its_description(sock: str) -> None:
    async def body() -> None:
        async with fake_exports(sock, ("db", "mpathb"), blocks=4096):
            code, out, err = await run_tool(
                "nbdinfo", "--list", "--json", f"nbd+unix:///?socket={sock}"
            )
            assert code == 0, err
            exports = json.loads(out)["exports"]
            assert [(e["export-name"], e["description"]) for e in exports] == [
                ("db", "LUN db"),
                ("mpathb", "LUN mpathb"),
            ]
            assert all(e["export-size"] == 4096 * 512 for e in exports)

    run(body)
