"""The checker contract: one check of one path, a state and a message code, bounded in time.

A checker is multipath-tools' ``libcheck_check`` in asyncio form: given a path's
transport it sends one probe (TEST UNIT READY, a READ of block 0, a NOP-Out, an
O_DIRECT read) and says what the path looks like *now*, as a
:class:`~mpath.scsi.states.CheckerState` and a :class:`~mpath.scsi.states.CheckerMsg`
code (the wording lives with the codes, so tests compare codes, not text).

Every check is bounded by the checker's ``timeout``: a path that does not answer
gives ``timeout``, never a hung worker. The probe runs inside ``asyncio.timeout``
(the cheap form of ``asyncio.wait_for``: one timer, no extra task, which matters at
thousands of checks a second). After a timeout the session the probe used must be
treated as unusable: the command may still be queued in it. The caller (the monitor)
tears it down.

Transport failures (session lost, not logged in) are ``down`` with the transport's
own explanation as the detail; they never escape :meth:`Checker.check`.
"""

from __future__ import annotations

import asyncio
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar, NamedTuple

from mpath.errors import UsageError
from mpath.scsi.states import CheckerMsg, CheckerState
from mpath.transports.base import Transport, TransportError

DEFAULT_CHECK_TIMEOUT = 2.0
"""Seconds one check may take. A healthy iSCSI path answers a TEST UNIT READY in well
under a millisecond on a LAN; two seconds leave room for a busy target while still
finding a black-holed path (packets dropped, no RST) a hundred times sooner than
TCP's own retransmission timers would. multipath-tools uses the SCSI command timeout
(30 s by default) here, which is what users complain about."""


@dataclass(frozen=True, slots=True)
class CheckResult:
    """What one check found: the state, why (a code plus optional detail), how long.

    ``detail`` carries what only this check knows (the transport's error text, the
    timeout that expired); :attr:`message` joins it to the code's wording.
    """

    state: CheckerState
    msgid: CheckerMsg
    latency_ms: float
    detail: str = ""

    @property
    def message(self) -> str:
        text = self.msgid.text
        if not self.detail:
            return text
        return f"{text}: {self.detail}" if text else self.detail

    def describe(self) -> dict[str, object]:
        """JSON-able form (``mpath check``'s per-path keys, less ``url``/``checker``)."""
        return {
            "state": self.state.value,
            "message": self.message,
            "latency_ms": round(self.latency_ms, 3),
        }


class Probe(NamedTuple):
    """A probe's conclusion before timing is added: state, code, detail."""

    state: CheckerState
    msgid: CheckerMsg
    detail: str = ""


class Checker(ABC):
    """One way of checking a path. Subclasses implement :meth:`_probe` only.

    ``timeout`` bounds the whole check (retries included). Instances hold no per-path
    state, so one checker serves every path of a monitor.
    """

    name: ClassVar[str]
    #: The message code reported with ``timeout`` (the TUR checker has its own).
    timeout_msgid: ClassVar[CheckerMsg] = CheckerMsg.NONE

    def __init__(self, timeout: float = DEFAULT_CHECK_TIMEOUT) -> None:
        if not timeout > 0:
            raise UsageError(f"checker timeout must be above 0 seconds, not {timeout!r}")
        self.timeout = timeout

    async def check(self, transport: Transport) -> CheckResult:
        """Check the path behind ``transport`` once; never raises for a path problem."""
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self.timeout):
                probe = await self._probe(transport)
        except TimeoutError:
            probe = Probe(
                CheckerState.TIMEOUT,
                self.timeout_msgid,
                f"no answer within {self.timeout:g} s",
            )
        except TransportError as exc:
            probe = Probe(CheckerState.DOWN, CheckerMsg.DOWN, str(exc))
        latency_ms = (time.perf_counter() - started) * 1000.0
        return CheckResult(probe.state, probe.msgid, latency_ms, probe.detail)

    @abstractmethod
    async def _probe(self, transport: Transport) -> Probe:
        """Send the probe and read the answer; may raise TransportError."""
