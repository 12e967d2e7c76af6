"""The stall watchdog asks a silent path's TCP connection (``LinkAware`` transports).

When every path is silent the device pings each one (NOP-Out) once nothing it sent
waits for an acknowledgement, and reads the connection's state: acknowledged pings
mean the LUN is slow (kept until ``lun_stall_timeout``), retransmission timeouts mean
the network is down (failed at ``io_timeout_max``). Virtual time, fake transports.
"""

from __future__ import annotations

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
    """A fake path over a TCP connection whose network either carries or is down."""

    def __init__(self, url: str, lun: FakeLun) -> None:
        super().__init__(url, lun)
        self.network_up = True
        self.pings: list[float] = []

    def link(self) -> LinkState | None:
        if not self.connected:
            return None
        last_sent = self.pings[-1] if self.pings else 0.0
        since_sent = vtime.clock() - last_sent
        if self.network_up or not self.pings:
            return LinkState(unacked=0, timeouts=0, since_sent=since_sent)
        return LinkState(unacked=1, timeouts=2, since_sent=since_sent)

    async def nop(self) -> None:
        self.pings.append(vtime.clock())
        await vtime.elapse(3600)  # a stalled target answers no NOP-In either


def _linked(lun: FakeLun) -> list[LinkedTransport]:
    return [LinkedTransport(f"fake://path{i}", lun) for i in (1, 2)]


@pytest.mark.parametrize(
    ("network_up", "fails_after", "why"),
    [
        (True, SETTINGS.lun_stall_timeout, "its network carries"),
        (False, SETTINGS.io_timeout_max, "its network acknowledges nothing"),
    ],
)
def test_every_path_silent_is_judged_by_what_its_network_says(
    network_up: bool, fails_after: float, why: str
) -> None:
    async def body() -> None:
        lun = FakeLun()
        first, second = _linked(lun)
        settings = dataclasses.replace(SETTINGS)
        async with await open_device([first, second], settings) as device:
            await device.write(0, b"a" * BLOCK)
            for path in (first, second):
                path.hang = path.refuse_login = True
                path.network_up = network_up
            started = vtime.clock()
            with pytest.raises(NoPathError, match=why):
                await bounded(device.write(0, b"w" * BLOCK), 10.0)
            took = vtime.clock() - started
            assert fails_after < took <= fails_after + 0.5, took
            # One ping per path for the one silence, sent once it passed its limit.
            assert len(first.pings) == len(second.pings) == 1
            assert first.pings[0] - started < settings.io_timeout_max
            assert device.stall_judge.carried_stalls == (1 if network_up else 0)

    run(body)
