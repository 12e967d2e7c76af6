"""The TUR path checker's reading of a TEST UNIT READY answer: one small table.

This follows multipath-tools' ``tur_check`` (libmultipath/checkers/tur.c) row for row,
so a path mpath calls "ghost" is one multipathd would call ghost too:

==============================  ===========  =========================================
answer                          state        message
==============================  ===========  =========================================
GOOD (or CONDITION MET)         UP           :attr:`CheckerMsg.UP`
RESERVATION CONFLICT            UP           :attr:`CheckerMsg.UP` (path works; LU
                                             reserved by another initiator)
UNIT ATTENTION (any ASC)        PENDING      :attr:`CheckerMsg.TUR_UNIT_ATTENTION`:
                                             reissue the TUR now, at most
                                             :data:`TUR_ATTEMPTS` times in all, then DOWN
NOT READY 04/0b                 GHOST        :attr:`CheckerMsg.GHOST` (ALUA standby)
NOT READY 04/0a                 PENDING      :attr:`CheckerMsg.TUR_TRANSITIONING`
ILLEGAL REQUEST 25/00           DOWN         :attr:`CheckerMsg.DISCONNECTED` (LUN
                                             unmapped; multipath's DISCONNECTED)
anything else                   DOWN         :attr:`CheckerMsg.DOWN`
==============================  ===========  =========================================

"Anything else" includes BUSY and TASK SET FULL (tur.c reads every non-GOOD status
except RESERVATION CONFLICT as an error) and CHECK CONDITION without usable sense.
Transport failures and timeouts never reach this table: the checker reports those as
DOWN / TIMEOUT itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, NamedTuple

from mpath.scsi.sense import Sense, SenseKey, decode_sense
from mpath.scsi.states import CheckerMsg, CheckerState
from mpath.scsi.status import ScsiStatus

TUR_ATTEMPTS: Final = 5
"""TEST UNIT READYs sent in all while the answers are UNIT ATTENTION (tur.c's
``retry_tur``); the last one still being a unit attention makes the path DOWN."""


class CheckerVerdict(NamedTuple):
    """A checker's conclusion: the path state and the message code explaining it."""

    state: CheckerState
    msgid: CheckerMsg

    @property
    def retry(self) -> bool:
        """True when the TUR must be reissued at once (a unit attention was consumed)."""
        return self.msgid is CheckerMsg.TUR_UNIT_ATTENTION


@dataclass(frozen=True, slots=True)
class TurRule:
    """One row of :data:`TUR_SENSE_TABLE`; ``asc``/``ascq`` of None match any value."""

    key: SenseKey
    asc: int | None
    ascq: int | None
    verdict: CheckerVerdict
    why: str


UP: Final = CheckerVerdict(CheckerState.UP, CheckerMsg.UP)
DOWN: Final = CheckerVerdict(CheckerState.DOWN, CheckerMsg.DOWN)
RETRY: Final = CheckerVerdict(CheckerState.PENDING, CheckerMsg.TUR_UNIT_ATTENTION)

TUR_SENSE_TABLE: Final[tuple[TurRule, ...]] = (
    TurRule(
        SenseKey.UNIT_ATTENTION,
        None,
        None,
        RETRY,
        "a unit attention is consumed by the command that receives it: ask again",
    ),
    TurRule(
        SenseKey.NOT_READY,
        0x04,
        0x0B,
        CheckerVerdict(CheckerState.GHOST, CheckerMsg.GHOST),
        "LOGICAL UNIT NOT ACCESSIBLE, TARGET PORT IN STANDBY STATE",
    ),
    TurRule(
        SenseKey.NOT_READY,
        0x04,
        0x0A,
        CheckerVerdict(CheckerState.PENDING, CheckerMsg.TUR_TRANSITIONING),
        "LOGICAL UNIT NOT ACCESSIBLE, ASYMMETRIC ACCESS STATE TRANSITION",
    ),
    TurRule(
        SenseKey.ILLEGAL_REQUEST,
        0x25,
        0x00,
        CheckerVerdict(CheckerState.DOWN, CheckerMsg.DISCONNECTED),
        "LOGICAL UNIT NOT SUPPORTED: the LUN is not mapped on this path",
    ),
)

_UP_STATUSES: Final = frozenset(
    {int(ScsiStatus.GOOD), int(ScsiStatus.CONDITION_MET), int(ScsiStatus.RESERVATION_CONFLICT)}
)
_SENSE_STATUSES: Final = frozenset(
    {int(ScsiStatus.CHECK_CONDITION), int(ScsiStatus.COMMAND_TERMINATED)}
)


def _matches(rule: TurRule, sense: Sense) -> bool:
    return (
        rule.key == sense.key
        and (rule.asc is None or rule.asc == sense.asc)
        and (rule.ascq is None or rule.ascq == sense.ascq)
    )


def checker_state(
    status: int, sense: bytes | bytearray | memoryview | Sense | None = None
) -> CheckerVerdict:
    """The TUR checker's verdict on one TEST UNIT READY answer (see the module table).

    A verdict with :attr:`CheckerVerdict.retry` set asks the checker to send the TUR
    again, up to :data:`TUR_ATTEMPTS` in all; use :func:`final_verdict` to apply that
    limit. Never raises, whatever the bytes.
    """
    if status in _UP_STATUSES:
        return UP
    if status not in _SENSE_STATUSES:
        return DOWN
    decoded = sense if isinstance(sense, Sense) else decode_sense(sense or b"")
    if decoded is None:
        return DOWN
    for rule in TUR_SENSE_TABLE:
        if _matches(rule, decoded):
            return rule.verdict
    return DOWN


def final_verdict(verdict: CheckerVerdict, attempt: int) -> CheckerVerdict:
    """Apply the unit-attention budget: after attempt ``TUR_ATTEMPTS`` a retry is DOWN.

    ``attempt`` counts from 1 (the first TUR). Any other verdict passes unchanged.
    """
    if verdict.retry and attempt >= TUR_ATTEMPTS:
        return DOWN
    return verdict
