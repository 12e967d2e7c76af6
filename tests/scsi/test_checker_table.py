"""The TUR checker's table, row for row as multipath-tools' tur_check."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mpath.scsi.checker_table import (
    TUR_ATTEMPTS,
    CheckerVerdict,
    checker_state,
    final_verdict,
)
from mpath.scsi.sense import SenseKey, encode_sense
from mpath.scsi.states import CheckerMsg, CheckerState
from mpath.scsi.status import ScsiStatus

K = SenseKey
CHECK = ScsiStatus.CHECK_CONDITION

SENSE_CASES = [
    ("UA reset", K.UNIT_ATTENTION, 0x29, 0x00, CheckerState.PENDING, CheckerMsg.TUR_UNIT_ATTENTION),
    (
        "UA luns changed",
        K.UNIT_ATTENTION,
        0x3F,
        0x0E,
        CheckerState.PENDING,
        CheckerMsg.TUR_UNIT_ATTENTION,
    ),
    ("ALUA standby", K.NOT_READY, 0x04, 0x0B, CheckerState.GHOST, CheckerMsg.GHOST),
    (
        "ALUA transition",
        K.NOT_READY,
        0x04,
        0x0A,
        CheckerState.PENDING,
        CheckerMsg.TUR_TRANSITIONING,
    ),
    ("LUN unmapped", K.ILLEGAL_REQUEST, 0x25, 0x00, CheckerState.DOWN, CheckerMsg.DISCONNECTED),
    ("becoming ready", K.NOT_READY, 0x04, 0x01, CheckerState.DOWN, CheckerMsg.DOWN),
    ("ALUA unavailable", K.NOT_READY, 0x04, 0x0C, CheckerState.DOWN, CheckerMsg.DOWN),
    ("invalid field", K.ILLEGAL_REQUEST, 0x24, 0x00, CheckerState.DOWN, CheckerMsg.DOWN),
    ("medium error", K.MEDIUM_ERROR, 0x11, 0x00, CheckerState.DOWN, CheckerMsg.DOWN),
    ("aborted", K.ABORTED_COMMAND, 0x47, 0x03, CheckerState.DOWN, CheckerMsg.DOWN),
]


@pytest.mark.parametrize("descriptor", [False, True], ids=["fixed", "descriptor"])
@pytest.mark.parametrize(
    ("key", "asc", "ascq", "state", "msgid"),
    [pytest.param(*case[1:], id=case[0]) for case in SENSE_CASES],
)
def test_tur_sense_table(
    descriptor: bool,
    key: SenseKey,
    asc: int,
    ascq: int,
    state: CheckerState,
    msgid: CheckerMsg,
) -> None:
    sense = encode_sense(key, asc, ascq, descriptor=descriptor)
    assert checker_state(CHECK, sense) == (state, msgid)


@pytest.mark.parametrize(
    ("status", "state", "msgid"),
    [
        (ScsiStatus.GOOD, CheckerState.UP, CheckerMsg.UP),
        (ScsiStatus.CONDITION_MET, CheckerState.UP, CheckerMsg.UP),
        (ScsiStatus.RESERVATION_CONFLICT, CheckerState.UP, CheckerMsg.UP),
        (ScsiStatus.BUSY, CheckerState.DOWN, CheckerMsg.DOWN),
        (ScsiStatus.TASK_SET_FULL, CheckerState.DOWN, CheckerMsg.DOWN),
        (ScsiStatus.TASK_ABORTED, CheckerState.DOWN, CheckerMsg.DOWN),
        (0x99, CheckerState.DOWN, CheckerMsg.DOWN),
    ],
    ids=lambda value: getattr(value, "name", str(value)),
)
def test_tur_status_without_sense(status: int, state: CheckerState, msgid: CheckerMsg) -> None:
    assert checker_state(status) == (state, msgid)


@pytest.mark.parametrize("sense", [None, b"", b"\x00" * 18, b"\x70"], ids=str)
def test_check_condition_without_usable_sense_is_down(sense: bytes | None) -> None:
    assert checker_state(CHECK, sense) == (CheckerState.DOWN, CheckerMsg.DOWN)


def test_verdict_unpacks_as_a_pair() -> None:
    state, msgid = checker_state(ScsiStatus.GOOD)
    assert (state, msgid) == (CheckerState.UP, CheckerMsg.UP)


def test_unit_attention_is_retried_until_the_budget_is_spent() -> None:
    ua = encode_sense(K.UNIT_ATTENTION, 0x29, 0x00)
    verdicts = [final_verdict(checker_state(CHECK, ua), attempt) for attempt in range(1, 6)]
    assert [v.retry for v in verdicts] == [True] * (TUR_ATTEMPTS - 1) + [False]
    assert verdicts[-1] == CheckerVerdict(CheckerState.DOWN, CheckerMsg.DOWN)


def test_final_verdict_leaves_real_answers_alone() -> None:
    ghost = checker_state(CHECK, encode_sense(K.NOT_READY, 0x04, 0x0B))
    assert final_verdict(ghost, TUR_ATTEMPTS) is ghost
    assert not ghost.retry


@given(status=st.integers(0, 0xFF), sense=st.binary(max_size=64))
def test_checker_state_never_raises(status: int, sense: bytes) -> None:
    verdict = checker_state(status, sense)
    assert isinstance(verdict.state, CheckerState)
    assert isinstance(verdict.msgid, CheckerMsg)
