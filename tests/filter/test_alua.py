"""Which paths carry I/O on an ALUA LU (mpath.filter.alua): plain values, no I/O."""

from __future__ import annotations

import pytest

from mpath.filter.alua import carriers, transition_pending
from mpath.scsi.alua import AluaState

AO = AluaState.ACTIVE_OPTIMIZED
ANO = AluaState.ACTIVE_NON_OPTIMIZED
SB = AluaState.STANDBY
UN = AluaState.UNAVAILABLE
TR = AluaState.TRANSITIONING
OFF = AluaState.OFFLINE
LBA = AluaState.LBA_DEPENDENT


@pytest.mark.parametrize(
    ("states", "expected"),
    [
        ([AO, ANO], {1}),
        ([ANO, ANO], {1, 2}),
        ([SB, ANO], {2}),
        ([UN, SB], set()),
        ([TR, ANO], {2}),
        ([OFF, AO, LBA], {2, 3}),
        ([None, None], {1, 2}),  # no ALUA: every path
        ([0x5, AO], {2}),  # a reserved state carries nothing
    ],
)
def test_best_usable_state_carries_io(states: list[int | None], expected: set[int]) -> None:
    assert carriers((i + 1, True, s) for i, s in enumerate(states)) == expected


def test_a_failed_path_never_carries_io_and_non_optimized_takes_over() -> None:
    assert carriers([(1, False, AO), (2, True, ANO), (3, True, SB)]) == {2}
    assert carriers([(1, False, AO), (2, False, ANO)]) == set()


def test_transition_is_pending_only_on_a_usable_path_and_within_the_timeout() -> None:
    assert transition_pending([(True, TR, 10.0)], now=12.0, timeout=5.0)
    assert not transition_pending([(True, TR, 10.0)], now=15.0, timeout=5.0)
    assert not transition_pending([(False, TR, 10.0)], now=11.0, timeout=5.0)
    assert not transition_pending([(True, SB, 10.0), (True, AO, 0.0)], now=11.0, timeout=5.0)
