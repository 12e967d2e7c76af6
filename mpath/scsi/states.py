"""Path states and checker message codes: the vocabulary every checker reports in.

The states are multipath-tools' (``checkers.h``), documented once here so that every
checker, the path-state machine and the CLI mean the same thing by each word. Values
are the lower-case names, which is also how they appear in JSON output.

Checkers report a :class:`CheckerMsg` *code* next to the state, never free text, so
tests compare codes and the wording lives in one table (:attr:`CheckerMsg.text`).
"""

from __future__ import annotations

from enum import IntEnum, StrEnum


class CheckerState(StrEnum):
    """What a path checker concluded about one path.

    Not to be confused with the filter layer's :class:`mpath.filter.path.PathState`
    (``active``/``failed``: whether the device sends I/O down the path): the monitor
    turns these verdicts, after damping and failback, into that decision.

    UP
        The path carries I/O. Every checker reports it; the TUR checker also reports it
        for RESERVATION CONFLICT (another initiator holds a reservation, but the path
        itself works).
    DOWN
        Do not send I/O down this path: the command could not be delivered, or the
        target answered with an error that means this path cannot serve the LU (check
        condition, LUN not mapped on this port, ...). multipath-tools' transient
        DISCONNECTED (LUN unmapped at the target) is reported as DOWN with message
        :attr:`CheckerMsg.DISCONNECTED`; it is never a state of its own.
    GHOST
        A passive/standby path (ALUA standby, or active/passive arrays): it answers TUR,
        INQUIRY and READ CAPACITY but fails media access. Usable only after the array
        fails over to it; it belongs in a lower-priority group, not in the failed set.
    PENDING
        The answer is not known yet: a check is in flight, or the target reported an
        ALUA state transition (NOT READY 04/0a) that will settle into UP or GHOST.
    TIMEOUT
        The check command got no answer within the checker's timeout (a hung path:
        packets dropped with no RST, a target that stopped responding).
    SHAKY
        Up, but not for normal operations (multipath-tools' emc_clariion); a selector
        should prefer any UP path over it.
    UNCHECKED
        No check has completed yet (a new path), or the checker could not run (for
        directio: the device could not be opened with O_DIRECT).
    WILD
        The checker cannot work on this path at all (wrong checker for the device, no
        file descriptor, a transport without the needed command).
    REMOVED
        The device behind the path is gone from the system (block device removed,
        session torn down on purpose).
    DELAYED
        Not a checker result: the path-state machine holds a recovered path out
        (flap damping) until it has stayed up long enough to be reinstated.
    """

    UP = "up"
    DOWN = "down"
    GHOST = "ghost"
    PENDING = "pending"
    TIMEOUT = "timeout"
    SHAKY = "shaky"
    UNCHECKED = "unchecked"
    WILD = "wild"
    REMOVED = "removed"
    DELAYED = "delayed"

    @property
    def usable(self) -> bool:
        """UP or GHOST: a valid member of its priority group, as multipathd counts paths.

        GHOST paths count so that a standby group is not mistaken for a dead one; the
        filter layer still sends I/O only to the paths of the group it selected.
        """
        return self in (CheckerState.UP, CheckerState.GHOST)


class CheckerMsg(IntEnum):
    """Why a checker returned its state: a code, with the wording kept in one table.

    Codes below 100 are generic (any checker may use them, numbered as multipath-tools'
    ``CHECKER_MSGID_*``); codes from 100 belong to the TUR checker (as in ``tur.c``).
    """

    NONE = 0
    DISABLED = 1
    NO_FD = 2
    INVALID = 3
    UP = 4
    DOWN = 5
    GHOST = 6
    UNSUPPORTED = 7
    DISCONNECTED = 8

    TUR_RUNNING = 100
    TUR_TIMEOUT = 101
    TUR_FAILED = 102
    TUR_TRANSITIONING = 103
    TUR_UNIT_ATTENTION = 104

    @property
    def text(self) -> str:
        """A short phrase for logs and ``mpath check`` output."""
        return _CHECKER_MSG_TEXT[self]


_CHECKER_MSG_TEXT: dict[CheckerMsg, str] = {
    CheckerMsg.NONE: "",
    CheckerMsg.DISABLED: "checker disabled",
    CheckerMsg.NO_FD: "no usable file descriptor",
    CheckerMsg.INVALID: "checker invalid",
    CheckerMsg.UP: "path up",
    CheckerMsg.DOWN: "path down",
    CheckerMsg.GHOST: "path ghost (standby)",
    CheckerMsg.UNSUPPORTED: "checker not supported on this device",
    CheckerMsg.DISCONNECTED: "LUN not mapped on this path",
    CheckerMsg.TUR_RUNNING: "TUR still running",
    CheckerMsg.TUR_TIMEOUT: "TUR timed out",
    CheckerMsg.TUR_FAILED: "TUR checker failed to initialize",
    CheckerMsg.TUR_TRANSITIONING: "path is transitioning (ALUA)",
    CheckerMsg.TUR_UNIT_ATTENTION: "unit attention: check again",
}
