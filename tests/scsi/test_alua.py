"""REPORT TARGET PORT GROUPS parsing and the alua priority."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mpath.scsi.alua import (
    AluaState,
    TargetPortGroup,
    alua_priority,
    parse_target_port_groups,
)
from mpath.scsi.errors import ScsiDataError, ScsiTruncatedError

# Two groups: group 1 active/optimized with ports 1 and 2; group 2 standby, preferred,
# with port 3. Descriptor: state byte, supported states, group (2), reserved, status,
# vendor, port count; then 4 bytes per port (relative port in bytes 2..3).
GROUPS = bytes.fromhex("00df000100000002000000010000000282df00020002000100000003")


def test_length_only_format() -> None:
    raw = len(GROUPS).to_bytes(4, "big") + GROUPS
    answer = parse_target_port_groups(raw)
    assert answer.implicit_transition_time is None
    assert answer.groups == (
        TargetPortGroup(1, AluaState.ACTIVE_OPTIMIZED, False, 0xDF, 0, (1, 2)),
        TargetPortGroup(2, AluaState.STANDBY, True, 0xDF, 2, (3,)),
    )
    assert answer.group(2) == answer.groups[1]
    assert answer.group(9) is None


def test_extended_header_format() -> None:
    raw = (len(GROUPS) + 4).to_bytes(4, "big") + bytes([0x10, 60, 0, 0]) + GROUPS
    answer = parse_target_port_groups(raw)
    assert answer.implicit_transition_time == 60
    assert [g.group for g in answer.groups] == [1, 2]


def test_truncated_answer_says_how_much_to_ask_for() -> None:
    raw = len(GROUPS).to_bytes(4, "big") + GROUPS
    with pytest.raises(ScsiTruncatedError) as caught:
        parse_target_port_groups(raw[:20])
    assert caught.value.needed == len(raw)


@pytest.mark.parametrize(
    "raw",
    [
        b"\x00\x00",
        bytes.fromhex("0000000400df0001"),  # descriptor cut after 4 bytes
        bytes.fromhex("0000000800df000100000003"),  # claims 3 ports, has none
    ],
    ids=["short-header", "descriptor-cut", "ports-cut"],
)
def test_malformed_answers(raw: bytes) -> None:
    with pytest.raises(ScsiDataError):
        parse_target_port_groups(raw)


@pytest.mark.parametrize(
    ("state", "preferred", "exclusive", "priority"),
    [
        (AluaState.ACTIVE_OPTIMIZED, False, False, 50),
        (AluaState.ACTIVE_OPTIMIZED, True, False, 50),
        (AluaState.ACTIVE_OPTIMIZED, True, True, 130),
        (AluaState.ACTIVE_NON_OPTIMIZED, False, False, 10),
        (AluaState.ACTIVE_NON_OPTIMIZED, True, False, 90),
        (AluaState.LBA_DEPENDENT, False, False, 5),
        (AluaState.STANDBY, False, False, 1),
        (AluaState.STANDBY, True, False, 81),
        (AluaState.UNAVAILABLE, False, False, 0),
        (AluaState.TRANSITIONING, False, False, 0),
    ],
)
def test_priority_matches_multipath_tools_alua_prioritizer(
    state: AluaState, preferred: bool, exclusive: bool, priority: int
) -> None:
    assert alua_priority(state, preferred=preferred, exclusive_pref=exclusive) == priority


@given(st.binary(max_size=80))
def test_arbitrary_bytes_parse_or_raise_a_data_error(raw: bytes) -> None:
    with contextlib.suppress(ScsiDataError):
        parse_target_port_groups(raw)


def test_state_names_are_the_rigs_and_reserved_values_are_named_as_such() -> None:
    from mpath.scsi.alua import state_name

    assert state_name(AluaState.ACTIVE_NON_OPTIMIZED) == "active-nonoptimized"
    assert state_name(AluaState.TRANSITIONING) == "transitioning"
    assert state_name(0x5) == "reserved-0x5"
    assert state_name(None) is None


def test_io_tier_ranks_optimized_first_and_refuses_states_without_media_access() -> None:
    from mpath.scsi.alua import io_tier

    assert io_tier(AluaState.ACTIVE_OPTIMIZED) == io_tier(AluaState.LBA_DEPENDENT) == 0
    assert io_tier(AluaState.ACTIVE_NON_OPTIMIZED) == 1
    assert io_tier(None) == 0
    for state in (AluaState.STANDBY, AluaState.UNAVAILABLE, AluaState.OFFLINE,
                  AluaState.TRANSITIONING):  # fmt: skip
        assert io_tier(state) is None


def test_lio_extended_answer_that_leaves_out_its_header_from_the_length_is_read() -> None:
    """LIO counts RETURN DATA LENGTH without the extended header's 4 bytes and sends
    that much: the last group's last port is missing, its number and state are not."""
    groups = bytes([0x00, 0x8F, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1]) + bytes(
        [0x02, 0x8F, 0, 2, 0, 0, 0, 1, 0, 0, 0, 2]
    )
    answer = (len(groups)).to_bytes(4, "big") + bytes([0x10, 0, 0, 0]) + groups
    parsed = parse_target_port_groups(answer[: 4 + len(groups)])
    assert [(g.group, g.state, g.relative_ports) for g in parsed.groups] == [
        (1, AluaState.ACTIVE_OPTIMIZED, (1,)),
        (2, AluaState.STANDBY, ()),
    ]
    # The same shortfall in the length-only format, or a larger one, stays an error.
    with pytest.raises(ScsiDataError):
        parse_target_port_groups((len(groups) - 4).to_bytes(4, "big") + groups[:-4])
    with pytest.raises(ScsiDataError):
        parse_target_port_groups(
            (len(groups) - 4).to_bytes(4, "big") + bytes([0x10, 0, 0, 0]) + groups[:-8]
        )
