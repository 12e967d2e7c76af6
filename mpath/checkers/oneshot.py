"""One check of each of several paths, as ``mpath check`` runs it (no device, no monitor).

Each iSCSI path gets its own session: log in, one check, close. Block-device paths
(``/dev/...``) are read through their node by ``directio``. All paths are checked at
once, so one dead path costs its own timeout, not everyone's. A path that cannot log
in is reported ``down`` with the login error; nothing is raised for a path problem.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import stat
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mpath.checkers import create_checker
from mpath.checkers.base import Checker, CheckResult
from mpath.checkers.directio import DeviceNode
from mpath.checkers.settings import DEFAULT_LOGIN_TIMEOUT
from mpath.errors import UsageError
from mpath.scsi.states import CheckerMsg, CheckerState
from mpath.transports import open_transport
from mpath.transports.base import Transport, TransportError

if TYPE_CHECKING:
    from mpath.config import Config

#: States that mean the path answered; anything else makes ``mpath check`` exit 1.
ANSWERED = frozenset({CheckerState.UP, CheckerState.GHOST, CheckerState.PENDING})


@dataclass(frozen=True, slots=True)
class PathCheck:
    """The outcome for one path, in ``mpath check``'s JSON shape."""

    url: str
    checker: str
    result: CheckResult

    def describe(self) -> dict[str, Any]:
        return {"url": self.url, "checker": self.checker, **self.result.describe()}


def open_path(
    url: str,
    checker: str,
    login_timeout: float = DEFAULT_LOGIN_TIMEOUT,
    config: Config | None = None,
) -> Transport:
    """The transport to check ``url`` with; bad URLs and mismatches raise UsageError.

    ``config`` gives the iSCSI logins their CHAP credentials (``[[chap]]``).
    """
    if url.startswith("/dev/"):
        try:
            is_block = stat.S_ISBLK(os.stat(url).st_mode)
        except OSError as exc:
            raise UsageError(f"{url}: {exc.strerror}") from None
        if not is_block:
            raise UsageError(f"{url}: not a block device")
        if checker == "directio":
            return DeviceNode(url)
        return open_transport(url)
    if checker == "directio":
        raise UsageError(f"{url}: directio reads block devices; give a /dev/... node")
    return open_transport(url, config=config, login_timeout=login_timeout)


async def _check_one(transport: Transport, checker: Checker) -> PathCheck:
    started = time.perf_counter()
    try:
        await transport.connect()
    except TransportError as exc:
        latency = (time.perf_counter() - started) * 1000.0
        result = CheckResult(CheckerState.DOWN, CheckerMsg.DOWN, latency, str(exc))
        return PathCheck(transport.url, checker.name, result)
    try:
        return PathCheck(transport.url, checker.name, await checker.check(transport))
    finally:
        with contextlib.suppress(Exception):
            await transport.close()


async def check_paths(
    urls: list[str],
    checker: str = "tur",
    timeout: float = 2.0,
    login_timeout: float = DEFAULT_LOGIN_TIMEOUT,
    config: Config | None = None,
) -> list[PathCheck]:
    """Check every path once, concurrently; results in the order given.

    ``config`` gives iSCSI logins their CHAP credentials (``[[chap]]``).
    """
    probe = create_checker(checker, timeout)
    transports = [open_path(url, checker, login_timeout, config) for url in urls]
    return list(await asyncio.gather(*(_check_one(t, probe) for t in transports)))
