"""The device on an ALUA LU, over fake ports in virtual time (the real LIO rig:
tests/lab/test_alua.py).

Each fake path is its own target port group; the fake LUN answers REPORT TARGET PORT
GROUPS from its table and refuses media access as a real port in that state would
(04/0b standby, 04/0c unavailable, 04/0a transitioning).
"""

from __future__ import annotations

import dataclasses

import pytest

from mpath.errors import NoPathError
from mpath.filter import DeviceSettings, MultipathDevice
from mpath.filter.device import ALUA_TRANSITION_POLL
from mpath.scsi.alua import AluaState
from tests import vtime
from tests.filter.fakes import BLOCK, FakeLun, FakeTransport
from tests.vtime import elapse, run

AO = AluaState.ACTIVE_OPTIMIZED
ANO = AluaState.ACTIVE_NON_OPTIMIZED
SETTINGS = DeviceSettings(
    policy="round-robin", io_timeout_min=0.05, reconnect_interval=0.02, alua_poll_interval=0.5
)


def alua_paths(lun: FakeLun, count: int = 2) -> list[FakeTransport]:
    return [FakeTransport(f"fake://path{i + 1}", lun, group=i + 1) for i in range(count)]


async def open_device(
    transports: list[FakeTransport], settings: DeviceSettings = SETTINGS
) -> MultipathDevice:
    return await MultipathDevice.open(transports, settings, clock=vtime.loop().time)


async def write_some(device: MultipathDevice, count: int = 6, fill: bytes = b"a") -> None:
    for i in range(count):
        await device.write(i * BLOCK, fill * BLOCK)


def states(lun: FakeLun) -> dict[int, int]:
    """The fake LU's ALUA table (group -> state), to change a group's state."""
    assert lun.alua is not None
    return lun.alua


def ios(device: MultipathDevice) -> list[int]:
    return [p["ios"] for p in device.paths]


def test_states_and_groups_are_read_at_open_and_shown_per_path() -> None:
    async def body() -> None:
        lun = FakeLun(alua={1: AluaState.STANDBY, 2: AO})
        async with await open_device(alua_paths(lun)) as device:
            assert device.alua
            shown = [(p["alua_group"], p["alua_state"], p["state"]) for p in device.paths]
            assert shown == [(1, "standby", "active"), (2, "active-optimized", "active")]

    run(body)


def test_a_lun_without_alua_uses_every_path_and_shows_no_state() -> None:
    async def body() -> None:
        lun = FakeLun()
        async with await open_device(alua_paths(lun)) as device:
            await write_some(device, 4)
            assert not device.alua
            assert [p["alua_state"] for p in device.paths] == [None, None]
            assert ios(device) == [2, 2]

    run(body)


def test_standby_path_gets_no_io_and_is_not_failed() -> None:
    async def body() -> None:
        lun = FakeLun(alua={1: AluaState.STANDBY, 2: AO})
        first, second = alua_paths(lun)
        async with await open_device([first, second]) as device:
            await write_some(device)
            assert ios(device) == [0, 6]
            assert first.connected and device.paths[0]["state"] == "active"
            assert device.stats.failovers == device.stats.errors == 0

    run(body)


def test_non_optimized_only_carries_io_when_no_optimized_path_is_usable() -> None:
    async def body() -> None:
        lun = FakeLun(alua={1: ANO, 2: AO})
        first, second = alua_paths(lun)
        async with await open_device([first, second]) as device:
            await write_some(device, 4)
            assert ios(device) == [0, 4]
            second.disconnect()  # the optimized path dies: the non-optimized one takes over
            await write_some(device, 4, b"b")
            assert ios(device)[0] == 4
            assert lun.data[: 4 * BLOCK] == b"b" * 4 * BLOCK
            assert device.stats.errors == 0

    run(body)


def test_group_going_unavailable_between_polls_fails_over_without_errors() -> None:
    async def body() -> None:
        lun = FakeLun(alua={1: AO, 2: AO})
        async with await open_device(alua_paths(lun)) as device:
            await write_some(device, 4)
            assert ios(device) == [2, 2]
            states(lun)[1] = AluaState.UNAVAILABLE  # the device learns it from 04/0c
            del lun.log[:]
            await write_some(device, 6, b"u")
            # One write met the 04/0c on path 1 (not executed) and went to path 2.
            assert lun.log == ["fake://path2 write"] * 6
            assert ios(device) == [3, 8]
            assert device.paths[0]["alua_state"] == "unavailable"
            assert lun.data[: 6 * BLOCK] == b"u" * 6 * BLOCK
            assert (device.stats.errors, device.stats.failovers) == (0, 0)

    run(body)


def test_transition_on_the_only_optimized_path_waits_and_retries_without_errors() -> None:
    async def body() -> None:
        lun = FakeLun(alua={1: AO, 2: AluaState.STANDBY})
        # no_path_retry is far shorter than the transition: the wait must not count.
        settings = dataclasses.replace(SETTINGS, no_path_retry=0.5)
        async with await open_device(alua_paths(lun), settings) as device:
            states(lun)[1] = AluaState.TRANSITIONING
            started = vtime.loop().time()
            write = vtime.loop().create_task(device.write(0, b"t" * BLOCK))
            await elapse(3.0)
            assert not write.done()
            assert device.paths[0]["alua_state"] == "transitioning"
            states(lun)[1] = AO
            await write
            waited = vtime.loop().time() - started
            assert 3.0 - 1e-9 <= waited <= 3.0 + 2 * ALUA_TRANSITION_POLL
            assert lun.data[:BLOCK] == b"t" * BLOCK
            assert device.stats.errors == device.stats.failovers == 0
            assert device.stats.retries >= 1
            assert [p["state"] for p in device.paths] == ["active", "active"]

    run(body)


def test_a_transition_that_never_ends_counts_as_standby_after_the_timeout() -> None:
    async def body() -> None:
        lun = FakeLun(alua={1: AluaState.TRANSITIONING, 2: AluaState.STANDBY})
        settings = dataclasses.replace(SETTINGS, no_path_retry=1.0, alua_transition_timeout=4.0)
        async with await open_device(alua_paths(lun), settings) as device:
            started = vtime.loop().time()
            with pytest.raises(NoPathError):
                await device.read(0, BLOCK)
            # The transition timeout, then no_path_retry (one poll of slack each).
            waited = vtime.loop().time() - started
            assert 5.0 - 1e-9 <= waited <= 5.0 + 2 * ALUA_TRANSITION_POLL

    run(body)


def test_path_returning_to_optimized_is_used_again_after_one_poll() -> None:
    async def body() -> None:
        lun = FakeLun(alua={1: AluaState.STANDBY, 2: AO})
        async with await open_device(alua_paths(lun)) as device:
            await write_some(device, 2)
            assert ios(device) == [0, 2]
            states(lun)[1] = AO
            await elapse(SETTINGS.alua_poll_interval + 0.01)
            assert device.paths[0]["alua_state"] == "active-optimized"
            await write_some(device, 4)
            assert ios(device) == [2, 4]

    run(body)
