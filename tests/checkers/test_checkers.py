"""Each checker's reading of a path, over fake transports (real paths: test_rig.py)."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mpath.checkers import CHECKER_NAMES, UnknownCheckerError, create_checker
from mpath.checkers.base import CheckResult
from mpath.checkers.directio import DeviceNode, DirectioChecker, read_block0
from mpath.checkers.nop import NopChecker
from mpath.errors import UsageError
from mpath.scsi.checker_table import TUR_ATTEMPTS
from mpath.scsi.states import CheckerMsg, CheckerState
from mpath.transports.base import PathDisconnectedError, ScsiResult, ScsiStatus
from tests.filter.fakes import FakeLun, FakeTransport, check_condition


def check(name: str, transport: object, timeout: float = 0.2) -> CheckResult:
    async def body() -> CheckResult:
        return await asyncio.wait_for(create_checker(name, timeout).check(transport), 5)  # type: ignore[arg-type]

    return asyncio.run(body())


async def _connected(url: str = "fake://p1") -> FakeTransport:
    transport = FakeTransport(url, FakeLun())
    await transport.connect()
    return transport


def connected() -> FakeTransport:
    return asyncio.run(_connected())


def test_registry_names_and_errors() -> None:
    assert CHECKER_NAMES == ("tur", "readsector0", "directio", "nop")
    with pytest.raises(UnknownCheckerError, match="choose from tur, readsector0"):
        create_checker("emc_clariion")
    with pytest.raises(UsageError, match="timeout"):
        create_checker("tur", 0)


def test_tur_on_a_healthy_path_is_up_and_sends_one_test_unit_ready() -> None:
    transport = connected()
    result = check("tur", transport)
    assert (result.state, result.msgid) == (CheckerState.UP, CheckerMsg.UP)
    assert transport.events == ["execute 0x00"]
    assert result.latency_ms >= 0
    assert result.describe() == {
        "state": "up",
        "message": "path up",
        "latency_ms": round(result.latency_ms, 3),
    }


@pytest.mark.parametrize(
    ("answer", "state", "msgid"),
    [
        (ScsiResult(ScsiStatus.RESERVATION_CONFLICT), CheckerState.UP, CheckerMsg.UP),
        (check_condition(0x02, 0x04, 0x0B), CheckerState.GHOST, CheckerMsg.GHOST),
        (check_condition(0x02, 0x04, 0x0A), CheckerState.PENDING, CheckerMsg.TUR_TRANSITIONING),
        (check_condition(0x05, 0x25, 0x00), CheckerState.DOWN, CheckerMsg.DISCONNECTED),
        (check_condition(0x03, 0x11, 0x00), CheckerState.DOWN, CheckerMsg.DOWN),
        (ScsiResult(ScsiStatus.BUSY), CheckerState.DOWN, CheckerMsg.DOWN),
    ],
)
def test_tur_reads_answers_with_the_sense_table(
    answer: ScsiResult, state: CheckerState, msgid: CheckerMsg
) -> None:
    transport = connected()
    transport.injected.append(answer)
    result = check("tur", transport)
    assert (result.state, result.msgid) == (state, msgid)


def test_tur_reissues_after_a_unit_attention() -> None:
    transport = connected()
    transport.injected.extend([check_condition(0x06, 0x29, 0x00)] * 2)
    result = check("tur", transport)
    assert result.state is CheckerState.UP
    assert transport.executed == 3


def test_tur_gives_up_on_endless_unit_attentions() -> None:
    transport = connected()
    transport.injected.extend([check_condition(0x06, 0x2A, 0x09)] * (TUR_ATTEMPTS + 2))
    result = check("tur", transport)
    assert (result.state, result.msgid) == (CheckerState.DOWN, CheckerMsg.DOWN)
    assert transport.executed == TUR_ATTEMPTS


def test_a_hung_path_gives_timeout_within_the_timeout() -> None:
    transport = connected()
    transport.hang = True
    started = time.monotonic()
    result = check("tur", transport, timeout=0.1)
    elapsed = time.monotonic() - started
    assert (result.state, result.msgid) == (CheckerState.TIMEOUT, CheckerMsg.TUR_TIMEOUT)
    assert result.message == "TUR timed out: no answer within 0.1 s"
    assert 0.1 <= elapsed < 0.5
    assert 100 <= result.latency_ms < 500


def test_a_lost_session_is_down_with_the_transport_reason() -> None:
    transport = FakeTransport("fake://p1", FakeLun())  # never logged in
    result = check("tur", transport)
    assert (result.state, result.msgid) == (CheckerState.DOWN, CheckerMsg.DOWN)
    assert "fake://p1: not logged in" in result.message


def test_readsector0_reads_block_zero_and_uses_the_same_table() -> None:
    transport = connected()
    assert check("readsector0", transport).state is CheckerState.UP
    assert transport.events == ["execute 0x88"]  # READ (16)
    transport.injected.append(check_condition(0x02, 0x04, 0x0B))
    assert check("readsector0", transport).state is CheckerState.GHOST
    transport.hang = True
    result = check("readsector0", transport, timeout=0.05)
    assert (result.state, result.msgid) == (CheckerState.TIMEOUT, CheckerMsg.NONE)
    assert result.message == "no answer within 0.05 s"


def test_nop_on_a_transport_without_nop_is_wild_and_says_what_is_missing() -> None:
    result = check("nop", connected())
    assert (result.state, result.msgid) == (CheckerState.WILD, CheckerMsg.UNSUPPORTED)
    assert "FakeTransport has no nop()" in result.message


class NopTransport(FakeTransport):
    """A fake with the NOP-Out the checker asks for."""

    nops = 0
    nop_hangs = False

    async def nop(self) -> None:
        if not self.connected:
            raise PathDisconnectedError(self.url, "not logged in")
        self.nops += 1
        if self.nop_hangs:
            await asyncio.Event().wait()


def test_nop_uses_the_transports_nop() -> None:
    async def body() -> tuple[CheckResult, CheckResult, CheckResult]:
        transport = NopTransport("fake://p1", FakeLun())
        checker = NopChecker(0.05)
        down = await checker.check(transport)
        await transport.connect()
        up = await checker.check(transport)
        transport.nop_hangs = True
        hung = await checker.check(transport)
        assert transport.nops == 2
        return down, up, hung

    down, up, hung = asyncio.run(body())
    assert down.state is CheckerState.DOWN
    assert (up.state, up.msgid) == (CheckerState.UP, CheckerMsg.UP)
    assert hung.state is CheckerState.TIMEOUT


def test_directio_refuses_what_is_not_a_device_node() -> None:
    result = check("directio", connected())
    assert (result.state, result.msgid) == (CheckerState.WILD, CheckerMsg.UNSUPPORTED)


def test_directio_on_a_missing_node_is_removed(tmp_path: Path) -> None:
    result = check("directio", DeviceNode("/dev/mpath-no-such-node"))
    assert (result.state, result.msgid) == (CheckerState.REMOVED, CheckerMsg.NO_FD)


def test_device_node_carries_no_scsi_commands() -> None:
    node = DeviceNode("/dev/null")
    assert node.connected and node.max_commands is None and node.url == "/dev/null"
    assert check("tur", node).state is CheckerState.DOWN


@pytest.fixture
def loop_device(tmp_path: Path) -> Iterator[str]:
    """A loop device over a small file (root and losetup needed)."""
    if os.geteuid() != 0 or shutil.which("losetup") is None:
        pytest.skip("directio on a real block device needs root and losetup (a loop device)")
    backing = tmp_path / "disk.img"
    backing.write_bytes(b"\xab" * 4096 + bytes(1024 * 1024))
    made = subprocess.run(
        ["losetup", "--find", "--show", str(backing)], capture_output=True, text=True
    )
    if made.returncode != 0:
        pytest.skip(f"no loop device here: {made.stderr.strip()}")
    node = made.stdout.strip()
    try:
        yield node
    finally:
        subprocess.run(["losetup", "--detach", node], check=False)


def test_directio_reads_block_zero_of_a_loop_device_with_o_direct(loop_device: str) -> None:
    # A loop device is a block device: it always takes O_DIRECT (the loop driver does
    # buffered I/O on the backing file unless told otherwise), so "unchecked" is a bug.
    probe = read_block0(loop_device)
    assert (probe.state, probe.detail) == (CheckerState.UP, "")
    result = check("directio", DeviceNode(loop_device), timeout=2.0)
    assert (result.state, result.msgid) == (CheckerState.UP, CheckerMsg.UP)


def test_directio_does_not_stack_reads_on_a_blocked_node() -> None:
    async def body() -> list[CheckResult]:
        checker = DirectioChecker(0.05)
        blocked: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        checker._reads["/dev/sdz"] = blocked  # type: ignore[assignment]
        results = [await checker.check(DeviceNode("/dev/sdz")) for _ in range(2)]
        blocked.cancel()
        return results

    for result in asyncio.run(body()):
        assert result.state is CheckerState.TIMEOUT
        assert "previous read is still blocked" in result.message
