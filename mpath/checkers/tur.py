"""``tur``: TEST UNIT READY, read through multipath-tools' tur_check table (the default).

The answer is mapped by :func:`mpath.scsi.checker_table.checker_state` (docs/scsi.md):
GOOD and RESERVATION CONFLICT are ``up``; ALUA standby is ``ghost``; an ALUA
transition is ``pending``; an unmapped LUN is ``down`` with ``disconnected``; a unit
attention is consumed by the command that receives it, so the TUR is sent again at
once, at most :data:`~mpath.scsi.checker_table.TUR_ATTEMPTS` times in all.
"""

from __future__ import annotations

from typing import ClassVar

from mpath.checkers.base import Checker, Probe
from mpath.scsi import cdb
from mpath.scsi.checker_table import TUR_ATTEMPTS, checker_state, final_verdict
from mpath.scsi.states import CheckerMsg
from mpath.transports.base import Transport

_TEST_UNIT_READY = cdb.test_unit_ready()


async def probe_with_sense_table(transport: Transport, command: bytes, data_in: int) -> Probe:
    """Send ``command`` and read its answer with the TUR table, reissuing on unit attention.

    Shared by ``tur`` and ``readsector0``: a READ meets the same unit attentions and
    ALUA states as a TEST UNIT READY, and should be read the same way.
    """
    for attempt in range(1, TUR_ATTEMPTS + 1):
        result = await transport.execute(command, data_in_length=data_in)
        verdict = final_verdict(checker_state(result.status, result.sense), attempt)
        if not verdict.retry:
            return Probe(verdict.state, verdict.msgid)
    raise AssertionError("final_verdict ends the retries at TUR_ATTEMPTS")  # pragma: no cover


class TurChecker(Checker):
    """TEST UNIT READY on the path's session: no data moved, the cheapest probe."""

    name = "tur"
    timeout_msgid: ClassVar[CheckerMsg] = CheckerMsg.TUR_TIMEOUT

    async def _probe(self, transport: Transport) -> Probe:
        return await probe_with_sense_table(transport, _TEST_UNIT_READY, 0)
