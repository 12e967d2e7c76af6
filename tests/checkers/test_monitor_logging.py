"""What the monitor and the device log, and at which level: each change once."""

from __future__ import annotations

import itertools
import logging

import pytest

from mpath.checkers.monitor import EventKind
from tests.checkers.test_monitor import cut, event, fakes, mend, open_device
from tests.vtime import run


def _lines(caplog: pytest.LogCaptureFixture, level: int, *words: str) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelno == level and all(w in r.getMessage() for w in words)
    ]


def test_a_failure_and_a_reinstatement_are_logged_once_each(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="mpath")

    async def body() -> None:
        transports = fakes()
        device, monitor = await open_device(transports)
        try:
            cut(transports[0])
            await event(monitor, "fake://p1", EventKind.FAILED)
            mend(transports[0])
            await event(monitor, "fake://p1", EventKind.REINSTATED)
        finally:
            await device.close()

    run(body)
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1, warnings
    assert warnings[0].startswith("path fake://p1 failed: checker tur:")
    infos = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert infos == ["path fake://p1 reinstated"]
    # Debug: every check's verdict, and the selector's plan each time it changed.
    assert _lines(caplog, logging.DEBUG, "path fake://p1: check tur: up in")
    assert _lines(caplog, logging.DEBUG, "path fake://p1: check tur: down in") or _lines(
        caplog, logging.DEBUG, "path fake://p1: check tur: timeout in"
    )
    plans = _lines(caplog, logging.DEBUG, "selector round-robin:")
    assert any("fake://p1 failed 0%" in p and "fake://p2 active 100%" in p for p in plans), plans
    assert any("fake://p1 active 50%" in p for p in plans), plans
    assert all(a != b for a, b in itertools.pairwise(plans)), plans  # only changes


def test_nothing_below_warning_is_logged_at_the_default_level(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="mpath")

    async def body() -> None:
        transports = fakes()
        device, monitor = await open_device(transports)
        try:
            await monitor.wait_until(lambda: monitor.watch(device.path_objects[0]).checks >= 2)
        finally:
            await device.close()

    run(body)
    assert caplog.records == []
