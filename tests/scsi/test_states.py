"""Path states and checker message codes."""

from __future__ import annotations

import json

from mpath.scsi.states import CheckerMsg, CheckerState


def test_states_are_multipath_tools_names_in_lower_case() -> None:
    assert [state.value for state in CheckerState] == [
        "up",
        "down",
        "ghost",
        "pending",
        "timeout",
        "shaky",
        "unchecked",
        "wild",
        "removed",
        "delayed",
    ]
    assert json.dumps({"state": CheckerState.GHOST}) == '{"state": "ghost"}'


def test_every_state_is_documented_at_the_enum() -> None:
    doc = CheckerState.__doc__ or ""
    for state in CheckerState:
        assert f"\n    {state.name}\n" in doc, state


def test_usable_means_up_or_ghost() -> None:
    assert {state for state in CheckerState if state.usable} == {
        CheckerState.UP,
        CheckerState.GHOST,
    }


def test_message_codes_follow_multipath_tools_numbering() -> None:
    assert int(CheckerMsg.DISCONNECTED) == 8
    assert int(CheckerMsg.TUR_RUNNING) == 100
    assert all(msg < 100 or msg.name.startswith("TUR_") for msg in CheckerMsg)


def test_every_message_code_has_text() -> None:
    for msg in CheckerMsg:
        assert isinstance(msg.text, str)
        assert msg.text or msg is CheckerMsg.NONE
