"""What a command's outcome means for multipath: one table, read by :func:`classify`.

The filter layer must decide, for every command that did not end GOOD, whether the
*path* failed (fail over, reissue on another path), the *target* refused the request
(return the error to the caller: resending it elsewhere gives the same answer), or the
condition is passing (reissue on the same path a bounded number of times).

All of that knowledge is in two data structures, the way multipath-tools keeps its sense
mapping in one function and the kernel in ``scsi_check_sense``:

* :data:`STATUS_RULES`: one row per SCSI status byte;
* :data:`SENSE_TABLE`: rows of (sense key, ASC, ASCQ or ANY) -> disposition, each with
  the reason for it. The most specific row wins (exact ASCQ, then any ASCQ of that
  ASC, then the key's catch-all row, which every key has).

The rows follow the Linux kernel (``scsi_check_sense``, ``scsi_dh_alua``'s
``alua_check_sense``, and dm-mpath's split between path errors and target errors,
``blk_path_error``), adjusted where mpath's promise differs; docs/scsi.md lists the
table and where it departs from the kernel.

Some rows also carry a :class:`Recheck`: an event the path model should act on after
reissuing the command (re-read the ALUA states, the capacity, or, when the target says
its INQUIRY data or LUN inventory changed, re-verify the LU's identity before trusting
the path with more writes).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum, Flag, auto
from typing import Final

from mpath.scsi.alua import AluaState
from mpath.scsi.sense import Sense, SenseKey, decode_sense
from mpath.scsi.status import ScsiStatus, status_name

ANY: Final = None
"""Wildcard for ASC or ASCQ in a table row."""


class Disposition(Enum):
    """What the filter layer does with a completed command.

    OK
        The command succeeded (GOOD, CONDITION MET, or sense data that only reports a
        recovered error or completion).
    PATH_ERROR
        This path cannot carry the command: mark the path failed (notify the filter
        layer) and reissue the command on another path.
    TARGET_ERROR
        The LU refused or failed the request itself (bad medium, illegal request,
        write protect, reservation conflict...): every path would answer the same, so
        return the error to the caller and keep the path.
    RETRY_SAME_PATH
        A passing condition (unit attention, busy, task set full, becoming ready):
        reissue on the same path, a bounded number of times. When the budget is spent,
        treat the command as a PATH_ERROR (what the kernel does when its retries run
        out), so no condition can stall I/O for ever.
    RETRY_OTHER_PATH
        This path is temporarily unable (ALUA state transition) but not broken: reissue
        on another path without failing this one; with no other path, retry here after
        a short delay, as for RETRY_SAME_PATH.
    """

    OK = "ok"
    PATH_ERROR = "path-error"
    TARGET_ERROR = "target-error"
    RETRY_SAME_PATH = "retry-same-path"
    RETRY_OTHER_PATH = "retry-other-path"


class Recheck(Flag):
    """Follow-up work a sense code asks of the path model (besides the disposition)."""

    NONE = 0
    ALUA = auto()
    """Access states may have changed: re-read them (REPORT TARGET PORT GROUPS)."""
    CAPACITY = auto()
    """The LU's capacity changed: re-read READ CAPACITY (16)."""
    IDENTITY = auto()
    """The LU behind this path may not be the same one: re-verify VPD 0x83 before
    sending it more writes."""
    LUN_INVENTORY = auto()
    """The target's LUN mapping changed: rescan (REPORT LUNS)."""


@dataclass(frozen=True, slots=True)
class SenseRule:
    """One row of :data:`SENSE_TABLE`; ``asc``/``ascq`` of None match any value."""

    key: SenseKey
    asc: int | None
    ascq: int | None
    disposition: Disposition
    why: str
    recheck: Recheck = Recheck.NONE
    #: The ALUA access state the answer reveals for this path's target port group
    #: (04/0a transitioning, 04/0b standby, 04/0c unavailable), else None.
    alua_state: AluaState | None = None

    @property
    def pattern(self) -> str:
        """The row's match as ``"05/25/00"``, with ``xx`` for ANY."""
        asc = "xx" if self.asc is None else f"{self.asc:02x}"
        ascq = "xx" if self.ascq is None else f"{self.ascq:02x}"
        return f"{self.key:02x}/{asc}/{ascq}"


@dataclass(frozen=True, slots=True)
class StatusRule:
    """One row of :data:`STATUS_RULES`; a None disposition means "decide by sense"."""

    status: ScsiStatus
    disposition: Disposition | None
    why: str


@dataclass(frozen=True, slots=True)
class Verdict:
    """A classification with its reasons: for logs, stats and the path model."""

    disposition: Disposition
    why: str
    status: int
    sense: Sense | None = None
    rule: SenseRule | None = None

    @property
    def recheck(self) -> Recheck:
        return Recheck.NONE if self.rule is None else self.rule.recheck

    @property
    def alua_state(self) -> AluaState | None:
        """The ALUA state this answer reveals for the path's port group (or None)."""
        return None if self.rule is None else self.rule.alua_state


_D = Disposition
_K = SenseKey


def _rule(
    key: SenseKey,
    asc: int | None,
    ascq: int | None,
    disposition: Disposition,
    why: str,
    recheck: Recheck = Recheck.NONE,
    alua_state: AluaState | None = None,
) -> SenseRule:
    return SenseRule(key, asc, ascq, disposition, why, recheck, alua_state)


# fmt: off
SENSE_TABLE: Final[tuple[SenseRule, ...]] = (
    # --- NO SENSE / RECOVERED ERROR / COMPLETED: the command itself went through.
    _rule(_K.NO_SENSE, ANY, ANY, _D.RETRY_SAME_PATH,
          "CHECK CONDITION without a reason: the outcome is unknown, so reissue it"),
    _rule(_K.RECOVERED_ERROR, ANY, ANY, _D.OK,
          "completed; the target recovered an error by itself (kernel: soft error)"),
    _rule(_K.COMPLETED, ANY, ANY, _D.OK,
          "completed; the sense data only carries information"),

    # --- NOT READY: mostly this port cannot reach the LU now.
    _rule(_K.NOT_READY, 0x04, 0x01, _D.RETRY_SAME_PATH,
          "LU is in the process of becoming ready: wait and reissue"),
    _rule(_K.NOT_READY, 0x04, 0x04, _D.RETRY_SAME_PATH,
          "format in progress: the LU will be ready again (kernel: delayed retry)"),
    _rule(_K.NOT_READY, 0x04, 0x05, _D.RETRY_SAME_PATH,
          "rebuild in progress: a passing state of the LU, not of this path"),
    _rule(_K.NOT_READY, 0x04, 0x06, _D.RETRY_SAME_PATH,
          "recalculation in progress: a passing state of the LU"),
    _rule(_K.NOT_READY, 0x04, 0x07, _D.RETRY_SAME_PATH,
          "operation in progress: a passing state of the LU"),
    _rule(_K.NOT_READY, 0x04, 0x08, _D.RETRY_SAME_PATH,
          "long write in progress: a passing state of the LU"),
    _rule(_K.NOT_READY, 0x04, 0x09, _D.RETRY_SAME_PATH,
          "self-test in progress: a passing state of the LU"),
    _rule(_K.NOT_READY, 0x04, 0x0A, _D.RETRY_OTHER_PATH,
          "ALUA state transition: this port settles soon; use another path meanwhile "
          "but do not fail this one (multipath-tools: pending)", Recheck.ALUA,
          AluaState.TRANSITIONING),
    _rule(_K.NOT_READY, 0x04, 0x0B, _D.PATH_ERROR,
          "ALUA standby: this target port cannot serve media access (multipath-tools: "
          "ghost)", Recheck.ALUA, AluaState.STANDBY),
    _rule(_K.NOT_READY, 0x04, 0x0C, _D.PATH_ERROR,
          "ALUA unavailable: this target port cannot serve the LU", Recheck.ALUA,
          AluaState.UNAVAILABLE),
    _rule(_K.NOT_READY, 0x04, 0x14, _D.RETRY_SAME_PATH,
          "space allocation in progress (thin provisioning): a passing state of the LU"),
    _rule(_K.NOT_READY, ANY, ANY, _D.PATH_ERROR,
          "any other NOT READY (e.g. 04/02 and 04/03 on the passive port of an "
          "active/passive array): the LU cannot be reached through this path now"),

    # --- MEDIUM ERROR: the data itself is bad; every path reads the same blocks.
    _rule(_K.MEDIUM_ERROR, ANY, ANY, _D.TARGET_ERROR,
          "unrecovered medium error: the same blocks fail on every path"),

    # --- HARDWARE ERROR: the target's hardware, except links inside it.
    _rule(_K.HARDWARE_ERROR, 0x08, ANY, _D.PATH_ERROR,
          "logical unit communication failure: the link from this port to the LU failed"),
    _rule(_K.HARDWARE_ERROR, 0x47, ANY, _D.PATH_ERROR,
          "SCSI parity/CRC error: data corrupted in transit on this path"),
    _rule(_K.HARDWARE_ERROR, ANY, ANY, _D.TARGET_ERROR,
          "hardware fault in the target: the kernel marks it a target failure, no "
          "failover"),

    # --- ILLEGAL REQUEST: the command is refused, except an LU unmapped on this port.
    _rule(_K.ILLEGAL_REQUEST, 0x25, 0x00, _D.PATH_ERROR,
          "LOGICAL UNIT NOT SUPPORTED: the LU is not mapped through this port; others "
          "may still reach it (multipath-tools: disconnected)"),
    _rule(_K.ILLEGAL_REQUEST, 0x20, ANY, _D.TARGET_ERROR,
          "invalid command operation code: no path will accept it"),
    _rule(_K.ILLEGAL_REQUEST, 0x21, ANY, _D.TARGET_ERROR,
          "LBA out of range: the request is wrong whichever path carries it"),
    _rule(_K.ILLEGAL_REQUEST, 0x24, ANY, _D.TARGET_ERROR,
          "invalid field in CDB: the request is wrong whichever path carries it"),
    _rule(_K.ILLEGAL_REQUEST, 0x26, ANY, _D.TARGET_ERROR,
          "invalid field in parameter list: the request is wrong on every path"),
    _rule(_K.ILLEGAL_REQUEST, ANY, ANY, _D.TARGET_ERROR,
          "any other ILLEGAL REQUEST: the command itself is refused"),

    # --- UNIT ATTENTION: reported once per I_T nexus; the command was not executed.
    _rule(_K.UNIT_ATTENTION, 0x04, 0x0A, _D.RETRY_OTHER_PATH,
          "ALUA state transition reported as unit attention: as NOT READY 04/0a",
          Recheck.ALUA, AluaState.TRANSITIONING),
    _rule(_K.UNIT_ATTENTION, 0x28, ANY, _D.RETRY_SAME_PATH,
          "not-ready-to-ready change, medium may have changed: reissue, then verify "
          "the LU", Recheck.IDENTITY | Recheck.CAPACITY),
    _rule(_K.UNIT_ATTENTION, 0x29, ANY, _D.RETRY_SAME_PATH,
          "power on, reset or I_T nexus loss: reissue; a reset may hide an ALUA "
          "transition", Recheck.ALUA),
    _rule(_K.UNIT_ATTENTION, 0x2A, 0x06, _D.RETRY_SAME_PATH,
          "asymmetric access state changed: reissue and re-read the ALUA states",
          Recheck.ALUA),
    _rule(_K.UNIT_ATTENTION, 0x2A, 0x07, _D.RETRY_SAME_PATH,
          "implicit asymmetric access state transition failed: reissue and re-read "
          "the ALUA states", Recheck.ALUA),
    _rule(_K.UNIT_ATTENTION, 0x2A, 0x09, _D.RETRY_SAME_PATH,
          "capacity data has changed: reissue and re-read the capacity",
          Recheck.CAPACITY),
    _rule(_K.UNIT_ATTENTION, 0x2A, ANY, _D.RETRY_SAME_PATH,
          "parameters changed (mode, log, reservations, ...): reissue"),
    _rule(_K.UNIT_ATTENTION, 0x3F, 0x03, _D.RETRY_SAME_PATH,
          "INQUIRY data has changed: reissue, but re-verify the LU's identity before "
          "trusting this path with writes", Recheck.IDENTITY),
    _rule(_K.UNIT_ATTENTION, 0x3F, 0x0E, _D.RETRY_SAME_PATH,
          "reported LUNs data has changed: the LUN number may now name another LU; "
          "rescan and re-verify identity", Recheck.LUN_INVENTORY | Recheck.IDENTITY),
    _rule(_K.UNIT_ATTENTION, ANY, ANY, _D.RETRY_SAME_PATH,
          "any other unit attention: the command was not executed; reissue"),

    # --- DATA PROTECT and the other "answer, not failure" keys.
    _rule(_K.DATA_PROTECT, ANY, ANY, _D.TARGET_ERROR,
          "write protected, access denied or thin pool exhausted (27/07): the same on "
          "every path"),
    _rule(_K.BLANK_CHECK, ANY, ANY, _D.TARGET_ERROR,
          "blank medium where data was expected: a property of the LU"),
    _rule(_K.COPY_ABORTED, ANY, ANY, _D.TARGET_ERROR,
          "a copy command (EXTENDED COPY) failed: returned to its caller"),
    _rule(_K.VOLUME_OVERFLOW, ANY, ANY, _D.TARGET_ERROR,
          "end of partition reached: a property of the LU"),
    _rule(_K.MISCOMPARE, ANY, ANY, _D.TARGET_ERROR,
          "VERIFY / COMPARE AND WRITE found different data: an answer, not a failure"),

    # --- ABORTED COMMAND: the transport's failures fail over; the rest is retried.
    _rule(_K.ABORTED_COMMAND, 0x08, ANY, _D.PATH_ERROR,
          "logical unit communication failure/timeout: the route to the LU failed"),
    _rule(_K.ABORTED_COMMAND, 0x0E, ANY, _D.PATH_ERROR,
          "invalid information unit: the transport garbled the command on this path"),
    _rule(_K.ABORTED_COMMAND, 0x10, ANY, _D.TARGET_ERROR,
          "protection information (DIF) check failed: an integrity error for the "
          "caller (kernel: BLK_STS_PROTECTION, no failover)"),
    _rule(_K.ABORTED_COMMAND, 0x2E, ANY, _D.TARGET_ERROR,
          "command duration limit expired: the command's own time limit, not the path "
          "(the kernel does not retry it)"),
    _rule(_K.ABORTED_COMMAND, 0x47, ANY, _D.PATH_ERROR,
          "parity / iuCRC / protocol service CRC error: data corrupted in transit"),
    _rule(_K.ABORTED_COMMAND, 0x4B, ANY, _D.PATH_ERROR,
          "data phase error, ACK/NAK timeout, data offset error: this path's transport "
          "failed"),
    _rule(_K.ABORTED_COMMAND, ANY, ANY, _D.RETRY_SAME_PATH,
          "aborted for another reason (overlapped commands, internal target failure): "
          "reissue; the kernel retries, then fails the path"),

    # --- Keys whose meaning is unknown: fail over, as the kernel does by default.
    _rule(_K.VENDOR_SPECIFIC, ANY, ANY, _D.PATH_ERROR,
          "vendor-specific key: meaning unknown, so treated as a path failure like any "
          "unrecognised error (kernel default)"),
    _rule(_K.RESERVED_C, ANY, ANY, _D.PATH_ERROR,
          "obsolete/reserved key: meaning unknown, treated as a path failure"),
)
# fmt: on


STATUS_RULES: Final[tuple[StatusRule, ...]] = (
    StatusRule(ScsiStatus.GOOD, _D.OK, "the command succeeded"),
    StatusRule(ScsiStatus.CONDITION_MET, _D.OK, "the command succeeded (PRE-FETCH)"),
    StatusRule(ScsiStatus.CHECK_CONDITION, None, "decided by the sense data"),
    StatusRule(ScsiStatus.COMMAND_TERMINATED, None, "obsolete CHECK CONDITION twin: by sense data"),
    StatusRule(ScsiStatus.BUSY, _D.RETRY_SAME_PATH, "LU busy: reissue after a short delay"),
    StatusRule(
        ScsiStatus.TASK_SET_FULL,
        _D.RETRY_SAME_PATH,
        "the LU's queue is full: reissue, and send fewer commands at once",
    ),
    StatusRule(
        ScsiStatus.RESERVATION_CONFLICT,
        _D.TARGET_ERROR,
        "another initiator holds a reservation: the same on every path of this host "
        "(kernel: BLK_STS_NEXUS, no failover)",
    ),
    StatusRule(
        ScsiStatus.ACA_ACTIVE, _D.RETRY_SAME_PATH, "an ACA condition is being cleared: reissue"
    ),
    StatusRule(
        ScsiStatus.TASK_ABORTED,
        _D.RETRY_SAME_PATH,
        "aborted by another initiator's task management: not executed, reissue",
    ),
    StatusRule(
        ScsiStatus.INTERMEDIATE,
        _D.PATH_ERROR,
        "linked commands are never sent: a target answering this is misbehaving",
    ),
    StatusRule(
        ScsiStatus.INTERMEDIATE_CONDITION_MET,
        _D.PATH_ERROR,
        "linked commands are never sent: a target answering this is misbehaving",
    ),
)

_UNKNOWN_STATUS_WHY = "status byte SAM does not define: the target or transport misbehaves"
_NO_SENSE_WHY = "CHECK CONDITION without usable sense data: the target misbehaves on this path"
_DEFERRED_WHY = (
    "deferred error: it belongs to an earlier command (a cached write that failed); this "
    "command was not executed, so reissue it (the sense is kept for reporting)"
)

_SENSE_INDEX: Final[dict[tuple[SenseKey, int | None, int | None], SenseRule]] = {}
for _row in SENSE_TABLE:
    if _row.asc is None and _row.ascq is not None:
        raise AssertionError(f"sense rule {_row.pattern}: ASCQ given without ASC")
    if (_row.key, _row.asc, _row.ascq) in _SENSE_INDEX:
        raise AssertionError(f"sense rule {_row.pattern} appears twice")
    _SENSE_INDEX[(_row.key, _row.asc, _row.ascq)] = _row
for _key in SenseKey:
    if (_key, None, None) not in _SENSE_INDEX:
        raise AssertionError(f"sense key {_key.name} has no catch-all row")

_STATUS_INDEX: Final[dict[int, StatusRule]] = {int(row.status): row for row in STATUS_RULES}
_GOOD: Final = int(ScsiStatus.GOOD)


def sense_rule(sense: Sense) -> SenseRule:
    """The row of :data:`SENSE_TABLE` that decides ``sense`` (the most specific match)."""
    index = _SENSE_INDEX
    key = sense.key
    return (
        index.get((key, sense.asc, sense.ascq))
        or index.get((key, sense.asc, None))
        or index[(key, None, None)]
    )


def classify(
    status: int, sense: bytes | bytearray | memoryview | Sense | None = None
) -> Disposition:
    """What to do with a command that ended with ``status`` (and ``sense`` data).

    GOOD is answered at once (this runs on every completion). Never raises, whatever
    the bytes.
    """
    if status == _GOOD:
        return Disposition.OK
    return explain(status, sense).disposition


def explain(status: int, sense: bytes | bytearray | memoryview | Sense | None = None) -> Verdict:
    """:func:`classify` with its reasons: the rule that decided, and the decoded sense."""
    status_rule = _STATUS_INDEX.get(status)
    if status_rule is None:
        return Verdict(
            Disposition.PATH_ERROR, f"{status_name(status)}: {_UNKNOWN_STATUS_WHY}", status
        )
    if status_rule.disposition is not None:
        return Verdict(status_rule.disposition, status_rule.why, status)
    decoded = sense if isinstance(sense, Sense) else decode_sense(sense or b"")
    if decoded is None:
        return Verdict(Disposition.PATH_ERROR, _NO_SENSE_WHY, status)
    if decoded.deferred:
        return Verdict(Disposition.RETRY_SAME_PATH, _DEFERRED_WHY, status, decoded)
    rule = sense_rule(decoded)
    return Verdict(rule.disposition, rule.why, status, decoded, rule)


def render_markdown_table() -> str:
    """:data:`SENSE_TABLE` as a Markdown table (docs/scsi.md embeds this output)."""
    lines = [
        "| key/ASC/ASCQ | sense key | disposition | recheck | why |",
        "|---|---|---|---|---|",
    ]
    for row in SENSE_TABLE:
        recheck = "" if row.recheck is Recheck.NONE else str(row.recheck.name).lower()
        recheck = recheck.replace("|", ", ")
        lines.append(
            f"| `{row.pattern}` | {row.key.label} | {row.disposition.value} | {recheck} "
            f"| {row.why} |"
        )
    return "\n".join(lines) + "\n"
