"""The classification table: canned sense in both formats -> what the filter does."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mpath.scsi.alua import AluaState
from mpath.scsi.classify import (
    SENSE_TABLE,
    STATUS_RULES,
    Disposition,
    Recheck,
    classify,
    explain,
    sense_rule,
)
from mpath.scsi.sense import SenseKey, decode_sense, encode_sense
from mpath.scsi.status import ScsiStatus
from tests.scsi.canned import (
    SENSE_INVALID_FIELD_IN_CDB,
    SENSE_INVALID_OPCODE,
    SENSE_LBA_OUT_OF_RANGE,
)

D = Disposition
K = SenseKey
CHECK = ScsiStatus.CHECK_CONDITION

# (case, sense key, ASC, ASCQ, expected disposition)
SENSE_CASES: list[tuple[str, SenseKey, int, int, Disposition]] = [
    # Unit attentions: the command was not executed; reissue on the same path.
    ("UA power on/reset", K.UNIT_ATTENTION, 0x29, 0x00, D.RETRY_SAME_PATH),
    ("UA I_T nexus loss", K.UNIT_ATTENTION, 0x29, 0x07, D.RETRY_SAME_PATH),
    ("UA mode parameters changed", K.UNIT_ATTENTION, 0x2A, 0x01, D.RETRY_SAME_PATH),
    ("UA ALUA state changed", K.UNIT_ATTENTION, 0x2A, 0x06, D.RETRY_SAME_PATH),
    ("UA capacity changed", K.UNIT_ATTENTION, 0x2A, 0x09, D.RETRY_SAME_PATH),
    ("UA inquiry data changed", K.UNIT_ATTENTION, 0x3F, 0x03, D.RETRY_SAME_PATH),
    ("UA reported luns changed", K.UNIT_ATTENTION, 0x3F, 0x0E, D.RETRY_SAME_PATH),
    ("UA commands cleared", K.UNIT_ATTENTION, 0x2F, 0x00, D.RETRY_SAME_PATH),
    ("UA ALUA transition", K.UNIT_ATTENTION, 0x04, 0x0A, D.RETRY_OTHER_PATH),
    # NOT READY: becoming ready is passing; ALUA standby/unavailable are path errors.
    ("becoming ready", K.NOT_READY, 0x04, 0x01, D.RETRY_SAME_PATH),
    ("format in progress", K.NOT_READY, 0x04, 0x04, D.RETRY_SAME_PATH),
    ("ALUA transitioning", K.NOT_READY, 0x04, 0x0A, D.RETRY_OTHER_PATH),
    ("ALUA standby", K.NOT_READY, 0x04, 0x0B, D.PATH_ERROR),
    ("ALUA unavailable", K.NOT_READY, 0x04, 0x0C, D.PATH_ERROR),
    ("passive path, init cmd required", K.NOT_READY, 0x04, 0x02, D.PATH_ERROR),
    ("passive path, manual intervention", K.NOT_READY, 0x04, 0x03, D.PATH_ERROR),
    ("LU offline", K.NOT_READY, 0x04, 0x12, D.PATH_ERROR),
    ("medium not present", K.NOT_READY, 0x3A, 0x00, D.PATH_ERROR),
    # ILLEGAL REQUEST: only "LU not supported" (unmapped on this port) fails over.
    ("LUN not supported", K.ILLEGAL_REQUEST, 0x25, 0x00, D.PATH_ERROR),
    ("invalid opcode", K.ILLEGAL_REQUEST, 0x20, 0x00, D.TARGET_ERROR),
    ("LBA out of range", K.ILLEGAL_REQUEST, 0x21, 0x00, D.TARGET_ERROR),
    ("invalid field in CDB", K.ILLEGAL_REQUEST, 0x24, 0x00, D.TARGET_ERROR),
    ("invalid field in param list", K.ILLEGAL_REQUEST, 0x26, 0x00, D.TARGET_ERROR),
    ("parameter list length error", K.ILLEGAL_REQUEST, 0x1A, 0x00, D.TARGET_ERROR),
    ("LUN 25/01 (not 25/00)", K.ILLEGAL_REQUEST, 0x25, 0x01, D.TARGET_ERROR),
    # Media and protection: the same on every path.
    ("unrecovered read error", K.MEDIUM_ERROR, 0x11, 0x00, D.TARGET_ERROR),
    ("write fault", K.MEDIUM_ERROR, 0x03, 0x00, D.TARGET_ERROR),
    ("write protected", K.DATA_PROTECT, 0x27, 0x00, D.TARGET_ERROR),
    ("thin pool exhausted", K.DATA_PROTECT, 0x27, 0x07, D.TARGET_ERROR),
    ("blank check", K.BLANK_CHECK, 0x00, 0x00, D.TARGET_ERROR),
    ("miscompare", K.MISCOMPARE, 0x1D, 0x00, D.TARGET_ERROR),
    ("copy aborted", K.COPY_ABORTED, 0x0D, 0x01, D.TARGET_ERROR),
    ("volume overflow", K.VOLUME_OVERFLOW, 0x00, 0x02, D.TARGET_ERROR),
    # HARDWARE ERROR: the target's fault, except a broken link inside it.
    ("internal target failure", K.HARDWARE_ERROR, 0x44, 0x00, D.TARGET_ERROR),
    ("LU communication failure", K.HARDWARE_ERROR, 0x08, 0x00, D.PATH_ERROR),
    # ABORTED COMMAND: transport failures fail over, DIF goes to the caller.
    ("iuCRC error", K.ABORTED_COMMAND, 0x47, 0x03, D.PATH_ERROR),
    ("SCSI parity error", K.ABORTED_COMMAND, 0x47, 0x00, D.PATH_ERROR),
    ("data phase error", K.ABORTED_COMMAND, 0x4B, 0x00, D.PATH_ERROR),
    ("ACK/NAK timeout", K.ABORTED_COMMAND, 0x4B, 0x03, D.PATH_ERROR),
    ("LU communication timeout", K.ABORTED_COMMAND, 0x08, 0x01, D.PATH_ERROR),
    ("invalid IU", K.ABORTED_COMMAND, 0x0E, 0x01, D.PATH_ERROR),
    ("DIF guard check failed", K.ABORTED_COMMAND, 0x10, 0x01, D.TARGET_ERROR),
    ("duration limit", K.ABORTED_COMMAND, 0x2E, 0x02, D.TARGET_ERROR),
    ("aborted, no reason", K.ABORTED_COMMAND, 0x00, 0x00, D.RETRY_SAME_PATH),
    ("overlapped commands", K.ABORTED_COMMAND, 0x4E, 0x00, D.RETRY_SAME_PATH),
    # Keys that mean the command went through, or say nothing.
    ("recovered error", K.RECOVERED_ERROR, 0x17, 0x01, D.OK),
    ("completed", K.COMPLETED, 0x00, 0x00, D.OK),
    ("no sense", K.NO_SENSE, 0x00, 0x00, D.RETRY_SAME_PATH),
    # Unknown meaning: fail over, as the kernel does.
    ("vendor specific key", K.VENDOR_SPECIFIC, 0x80, 0x01, D.PATH_ERROR),
    ("reserved key 0xc", K.RESERVED_C, 0x00, 0x00, D.PATH_ERROR),
]


def _both_formats() -> Iterator[object]:
    for case, key, asc, ascq, expected in SENSE_CASES:
        for descriptor in (False, True):
            fmt = "descriptor" if descriptor else "fixed"
            raw = encode_sense(key, asc, ascq, descriptor=descriptor)
            yield pytest.param(raw, expected, id=f"{case} [{key:x}/{asc:02x}/{ascq:02x} {fmt}]")


@pytest.mark.parametrize(("sense", "expected"), list(_both_formats()))
def test_check_condition_is_classified_by_the_sense_table(
    sense: bytes, expected: Disposition
) -> None:
    assert classify(CHECK, sense) is expected


@pytest.mark.parametrize(
    ("sense", "expected"),
    [
        (SENSE_INVALID_FIELD_IN_CDB, D.TARGET_ERROR),
        (SENSE_LBA_OUT_OF_RANGE, D.TARGET_ERROR),
        (SENSE_INVALID_OPCODE, D.TARGET_ERROR),
        # Hand-written, with descriptors and trailing bytes, not from encode_sense:
        (bytes.fromhex("7202040b0000000c000a800000000000000001ff0000"), D.PATH_ERROR),
        (bytes.fromhex("f00006000000000a00000000290000000000"), D.RETRY_SAME_PATH),
        (bytes.fromhex("700005000000000a00000000250000000000deadbeef"), D.PATH_ERROR),
    ],
    ids=["tgt-24-00", "tgt-21-00", "tgt-20-00", "desc-standby", "fixed-ua-valid", "fixed-25"],
)
def test_real_and_hand_written_sense_bytes(sense: bytes, expected: Disposition) -> None:
    assert classify(CHECK, sense) is expected


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (ScsiStatus.GOOD, D.OK),
        (ScsiStatus.CONDITION_MET, D.OK),
        (ScsiStatus.BUSY, D.RETRY_SAME_PATH),
        (ScsiStatus.TASK_SET_FULL, D.RETRY_SAME_PATH),
        (ScsiStatus.RESERVATION_CONFLICT, D.TARGET_ERROR),
        (ScsiStatus.ACA_ACTIVE, D.RETRY_SAME_PATH),
        (ScsiStatus.TASK_ABORTED, D.RETRY_SAME_PATH),
        (ScsiStatus.INTERMEDIATE, D.PATH_ERROR),
        (0x5A, D.PATH_ERROR),
    ],
    ids=lambda value: getattr(value, "name", str(value)),
)
def test_status_bytes_without_sense(status: int, expected: Disposition) -> None:
    assert classify(status) is expected
    # Sense data that came along anyway does not change a status-decided outcome.
    assert classify(status, encode_sense(K.MEDIUM_ERROR, 0x11, 0)) is expected


def test_command_terminated_reads_sense_like_check_condition() -> None:
    sense = encode_sense(K.NOT_READY, 0x04, 0x0B)
    assert classify(ScsiStatus.COMMAND_TERMINATED, sense) is D.PATH_ERROR


@pytest.mark.parametrize(
    "sense",
    [None, b"", b"\x00" * 18, b"\x7f\x00\x05", b"\x70\x00"],
    ids=["none", "empty", "zeros", "vendor-format", "too-short"],
)
def test_check_condition_without_usable_sense_is_a_path_error(sense: bytes | None) -> None:
    verdict = explain(CHECK, sense)
    assert verdict.disposition is D.PATH_ERROR
    assert verdict.sense is None
    assert "sense" in verdict.why


@pytest.mark.parametrize("descriptor", [False, True], ids=["fixed", "descriptor"])
def test_deferred_error_reissues_the_command_and_keeps_the_sense(descriptor: bool) -> None:
    raw = encode_sense(K.MEDIUM_ERROR, 0x0C, 0x00, descriptor=descriptor, deferred=True)
    verdict = explain(CHECK, raw)
    assert verdict.disposition is D.RETRY_SAME_PATH
    assert verdict.sense is not None
    assert verdict.sense.deferred
    assert "earlier command" in verdict.why


def test_a_decoded_sense_is_accepted_as_is() -> None:
    sense = decode_sense(encode_sense(K.ILLEGAL_REQUEST, 0x25, 0x00))
    assert sense is not None
    assert classify(CHECK, sense) is D.PATH_ERROR


@pytest.mark.parametrize(
    ("key", "asc", "ascq", "recheck"),
    [
        (K.UNIT_ATTENTION, 0x3F, 0x03, Recheck.IDENTITY),
        (K.UNIT_ATTENTION, 0x3F, 0x0E, Recheck.IDENTITY | Recheck.LUN_INVENTORY),
        (K.UNIT_ATTENTION, 0x2A, 0x09, Recheck.CAPACITY),
        (K.UNIT_ATTENTION, 0x2A, 0x06, Recheck.ALUA),
        (K.UNIT_ATTENTION, 0x29, 0x00, Recheck.ALUA),
        (K.NOT_READY, 0x04, 0x0B, Recheck.ALUA),
        (K.UNIT_ATTENTION, 0x2A, 0x01, Recheck.NONE),
        (K.MEDIUM_ERROR, 0x11, 0x00, Recheck.NONE),
    ],
)
def test_rows_name_the_follow_up_the_path_model_owes(
    key: SenseKey, asc: int, ascq: int, recheck: Recheck
) -> None:
    assert explain(CHECK, encode_sense(key, asc, ascq)).recheck == recheck


def test_explain_reports_the_deciding_row() -> None:
    verdict = explain(CHECK, encode_sense(K.ILLEGAL_REQUEST, 0x21, 0x00, descriptor=True))
    assert verdict.rule is not None
    assert verdict.rule.pattern == "05/21/xx"
    assert verdict.why == verdict.rule.why
    assert explain(ScsiStatus.BUSY).rule is None


class TestTheTableItself:
    def test_every_row_decides_the_sense_it_describes(self) -> None:
        # ANY positions are filled with a value no more specific row uses.
        for row in SENSE_TABLE:
            asc = 0x7F if row.asc is None else row.asc
            ascq = 0x7F if row.ascq is None else row.ascq
            sense = decode_sense(encode_sense(row.key, asc, ascq))
            assert sense is not None
            assert sense_rule(sense) is row, row.pattern

    def test_every_sense_key_has_a_catch_all_row(self) -> None:
        catch_alls = {row.key for row in SENSE_TABLE if row.asc is None and row.ascq is None}
        assert catch_alls == set(SenseKey)

    def test_rows_are_unique_and_explained(self) -> None:
        patterns = [row.pattern for row in SENSE_TABLE]
        assert len(patterns) == len(set(patterns))
        assert all(len(row.why) > 20 for row in SENSE_TABLE)

    def test_every_defined_status_has_a_rule(self) -> None:
        assert {rule.status for rule in STATUS_RULES} == set(ScsiStatus)


@given(status=st.integers(0, 0xFF), sense=st.binary(max_size=64))
def test_classify_never_raises(status: int, sense: bytes) -> None:
    assert isinstance(classify(status, sense), Disposition)


@given(
    key=st.sampled_from(list(SenseKey)),
    asc=st.integers(0, 0xFF),
    ascq=st.integers(0, 0xFF),
)
def test_both_sense_formats_classify_alike(key: SenseKey, asc: int, ascq: int) -> None:
    fixed = classify(CHECK, encode_sense(key, asc, ascq))
    descriptor = classify(CHECK, encode_sense(key, asc, ascq, descriptor=True))
    assert fixed is descriptor


@pytest.mark.parametrize(
    ("key", "ascq", "state"),
    [
        (0x02, 0x0A, AluaState.TRANSITIONING),
        (0x06, 0x0A, AluaState.TRANSITIONING),
        (0x02, 0x0B, AluaState.STANDBY),
        (0x02, 0x0C, AluaState.UNAVAILABLE),
    ],
)
def test_alua_sense_rows_name_the_state_they_reveal(key: int, ascq: int, state: int) -> None:
    verdict = explain(ScsiStatus.CHECK_CONDITION, encode_sense(key, 0x04, ascq))
    assert verdict.alua_state == state
    assert verdict.recheck & Recheck.ALUA


def test_access_state_changed_unit_attention_rechecks_alua_but_names_no_state() -> None:
    verdict = explain(ScsiStatus.CHECK_CONDITION, encode_sense(0x06, 0x2A, 0x06))
    assert verdict.alua_state is None and verdict.recheck & Recheck.ALUA
    assert verdict.disposition is Disposition.RETRY_SAME_PATH
