"""The stall watchdog asks a silent path's TCP connection (``LinkAware`` transports).

When every path is silent the device pings each one (NOP-Out) once nothing it sent
waits for an acknowledgement, and reads the connection's state: acknowledged pings
mean the LUN is slow (kept until ``lun_stall_timeout``), retransmission timeouts mean
the network is down (failed at ``io_timeout_max``). Virtual time, fake transports.
"""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from mpath.errors import NoPathError
from mpath.filter import DeviceSettings
from mpath.transports.tcp import LinkState
from tests import vtime
from tests.filter.fakes import BLOCK, FakeLun, FakeTransport
from tests.filter.test_device import open_device
from tests.vtime import bounded, run

SETTINGS = DeviceSettings(
    policy="round-robin",
    io_timeout_min=0.05,
    io_timeout_max=1.0,
    lun_stall_timeout=4.0,
    reconnect_interval=0.02,
    no_path_retry=0.0,
)


class LinkedTransport(FakeTransport):
    """A fake path over a TCP connection whose network carries, is cut, or loses the
    pings before they leave this host (``network``: "up", "down", "local")."""

    def __init__(self, url: str, lun: FakeLun) -> None:
        super().__init__(url, lun)
        self.network = "up"
        self.pings: list[float] = []
        self.bytes_acked = 1

    def link(self) -> LinkState | None:
        if not self.connected:
            return None
        if self.network == "down" and self.pings:
            return LinkState(unacked=1, timeouts=2, bytes_acked=self.bytes_acked)
        return LinkState(unacked=0, timeouts=0, bytes_acked=self.bytes_acked)

    async def nop(self) -> None:
        self.pings.append(vtime.clock())
        if self.network == "up":
            self.bytes_acked += 48  # the target's kernel acknowledges the NOP-Out
        await vtime.elapse(3600)  # a stalled target answers no NOP-In either


def _linked(lun: FakeLun) -> list[LinkedTransport]:
    return [LinkedTransport(f"fake://path{i}", lun) for i in (1, 2)]


@pytest.mark.parametrize(
    ("network", "fails_after", "why"),
    [
        ("up", SETTINGS.lun_stall_timeout, "its network carries"),
        ("down", SETTINGS.io_timeout_max, "its network acknowledges nothing"),
        # A ping that never left this host (its link down, a full buffer) is no word
        # from the target: the LUN's limit decides (no stall history: the floor).
        ("local", SETTINGS.io_timeout_max, "the LUN's stall limit is"),
    ],
)
def test_every_path_silent_is_judged_by_what_its_network_says(
    network: str, fails_after: float, why: str
) -> None:
    async def body() -> None:
        lun = FakeLun()
        first, second = _linked(lun)
        settings = dataclasses.replace(SETTINGS)
        async with await open_device([first, second], settings) as device:
            await device.write(0, b"a" * BLOCK)
            for path in (first, second):
                path.hang = path.refuse_login = True
                path.network = network
            started = vtime.clock()
            with pytest.raises(NoPathError, match=why):
                await bounded(device.write(0, b"w" * BLOCK), 10.0)
            took = vtime.clock() - started
            assert fails_after < took <= fails_after + 0.5, took
            # Pinged once it passed its own limit, then once a second while silent.
            assert first.pings[0] - started < settings.io_timeout_max
            pings = 1 if network == "down" else int(took - first.pings[0] + started) + 1
            assert len(first.pings) == len(second.pings) == pings
            assert device.stall_judge.carried_stalls == (1 if network == "up" else 0)

    run(body)


def test_a_network_that_dies_after_carrying_is_failed_as_down() -> None:
    # The LUN was slow (its kernel acknowledged), then the switch went: the next ping
    # goes unacknowledged, and the paths get io_timeout_max, not lun_stall_timeout.
    async def body() -> None:
        lun = FakeLun()
        first, second = _linked(lun)
        async with await open_device([first, second], SETTINGS) as device:
            await device.write(0, b"a" * BLOCK)
            for path in (first, second):
                path.hang = path.refuse_login = True
            started = vtime.clock()
            write = asyncio.ensure_future(bounded(device.write(0, b"w" * BLOCK), 10.0))
            await vtime.elapse(SETTINGS.io_timeout_max + 0.5)  # past the floor: carried
            assert not write.done()
            assert device.stall_judge.carried_stalls == 1
            for path in (first, second):
                path.network = "down"
            with pytest.raises(NoPathError, match="its network acknowledges nothing"):
                await write
            # At the next ping (within a second), not at lun_stall_timeout.
            took = vtime.clock() - started
            assert took <= SETTINGS.io_timeout_max + 0.5 + 1.0 + 0.2, took

    run(body)
