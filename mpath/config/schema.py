"""The device settings a configuration file may set: names, types, ranges, defaults.

One :class:`SettingSpec` per field of :class:`~mpath.settings.DeviceSettings`.
The built-in defaults are read from ``DeviceSettings`` itself, so the file, the
documentation (docs/config.md, checked by a test) and the filter layer cannot drift
apart. Every converter is strict: a TOML boolean is not a number, a float is not an
integer, a value outside its range is refused with the range in the message. Ranges
are wide enough for any real setup and narrow enough to catch a unit mistake (a
timeout in milliseconds written where seconds are meant).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mpath.errors import UsageError
from mpath.scsi.reservations import parse_reservation_key
from mpath.selectors import SELECTOR_NAMES
from mpath.settings import FENCE_METHODS, UNFENCEABLE_WRITES, DeviceSettings
from mpath.units import parse_size


class SettingValueError(ValueError):
    """A value of the wrong type or out of range; the message says which and why."""


Converter = Callable[[object], Any]


def type_name(value: object) -> str:
    """How an error message names a TOML value's type ("an integer", "a table")."""
    return {
        bool: "a boolean",
        int: "an integer",
        float: "a number",
        str: "a string",
        list: "an array",
        dict: "a table",
    }.get(type(value), type(value).__name__)


def _number(value: object, low: float, high: float, *, low_open: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise SettingValueError(f"expected a number, got {type_name(value)}")
    number = float(value)
    if not math.isfinite(number):
        raise SettingValueError(f"expected a finite number, got {value!r}")
    too_low = number <= low if low_open else number < low
    if too_low or number > high:
        bracket = "(" if low_open else "["
        raise SettingValueError(f"{value!r} is out of range {bracket}{low:g}, {high:g}]")
    return number


def _integer(value: object, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise SettingValueError(f"expected an integer, got {type_name(value)}")
    if not low <= value <= high:
        raise SettingValueError(f"{value!r} is out of range [{low}, {high}]")
    return value


def _policy(value: object) -> str:
    if not isinstance(value, str):
        raise SettingValueError(f"expected a policy name (a string), got {type_name(value)}")
    if value not in SELECTOR_NAMES:
        raise SettingValueError(
            f"unknown policy {value!r} (choose from {', '.join(SELECTOR_NAMES)})"
        )
    return value


def _policy_args(value: object) -> tuple[str, ...]:
    if isinstance(value, str):
        return tuple(value.split())
    if not isinstance(value, list):
        raise SettingValueError(f"expected an array of strings, got {type_name(value)}")
    args: list[str] = []
    for index, item in enumerate(value):
        if isinstance(item, bool) or not isinstance(item, str | int):
            raise SettingValueError(
                f"item {index + 1}: expected a string or an integer, got {type_name(item)}"
            )
        args.append(str(item))
    return tuple(args)


MAX_COMMANDS_LIMIT = 65535


def _max_commands(value: object) -> int | None:
    if value == "auto":
        return None
    if isinstance(value, str):
        raise SettingValueError(f'expected an integer or "auto", got {value!r}')
    return _integer(value, 1, MAX_COMMANDS_LIMIT)


NO_PATH_RETRY_LIMIT = 3600.0


def _no_path_retry(value: object) -> float:
    if value == "fail":
        return 0.0
    if value == "queue":
        raise SettingValueError(
            '"queue" (wait for ever) is not offered: a bounded wait is what keeps '
            "processes out of D state; give a number of seconds"
        )
    if isinstance(value, str):
        raise SettingValueError(f'expected a number of seconds or "fail", got {value!r}')
    return _number(value, 0.0, NO_PATH_RETRY_LIMIT)


def _reservation_key(value: object) -> int | None:
    if value == "none":
        return None
    if not isinstance(value, str):
        raise SettingValueError(
            f'expected a hex string such as "0x6d70617468000000", got {type_name(value)}'
        )
    try:
        return parse_reservation_key(value)
    except UsageError as exc:
        raise SettingValueError(str(exc)) from None


def _fence_method(value: object) -> str:
    if not isinstance(value, str) or value not in FENCE_METHODS:
        raise SettingValueError(f"expected one of {', '.join(FENCE_METHODS)}, got {value!r}")
    return value


def _unfenceable_writes(value: object) -> str:
    if not isinstance(value, str) or value not in UNFENCEABLE_WRITES:
        raise SettingValueError(f"expected one of {', '.join(UNFENCEABLE_WRITES)}, got {value!r}")
    return value


MAX_IO_BYTES_LIMIT = 256 * 1024 * 1024


def _max_io_bytes(value: object) -> int:
    if isinstance(value, str):
        try:
            size = parse_size(value)
        except UsageError as exc:
            raise SettingValueError(str(exc)) from None
    elif isinstance(value, bool) or not isinstance(value, int):
        raise SettingValueError(f'expected bytes (an integer or "1M"), got {type_name(value)}')
    else:
        size = value
    if not 512 <= size <= MAX_IO_BYTES_LIMIT or size % 512:
        raise SettingValueError(
            f"{value!r} is out of range: a multiple of 512 from 512 to 256M bytes"
        )
    return size


@dataclass(frozen=True, slots=True)
class SettingSpec:
    """One configurable device setting.

    ``kind`` is how the documentation names its TOML type, ``convert`` turns a TOML
    value into the ``DeviceSettings`` value (raising :class:`SettingValueError`), and
    ``meaning`` is the one-line description docs/config.md and ``config show`` use.
    """

    name: str
    kind: str
    convert: Converter
    meaning: str

    @property
    def default(self) -> Any:
        """The built-in default: the ``DeviceSettings`` field's own default."""
        return _FIELD_DEFAULTS[self.name]


#: DeviceSettings fields that are per path, not per device, so not file settings.
PER_PATH_FIELDS = frozenset({"priorities", "path_args"})

_FIELD_DEFAULTS: dict[str, Any] = {
    field.name: field.default
    for field in dataclasses.fields(DeviceSettings)
    if field.name not in PER_PATH_FIELDS
}

SETTINGS: dict[str, SettingSpec] = {
    spec.name: spec
    for spec in (
        SettingSpec(
            "policy",
            "string",
            _policy,
            "path selection policy: " + ", ".join(SELECTOR_NAMES),
        ),
        SettingSpec(
            "policy_args",
            "array of strings",
            _policy_args,
            "the policy's selector arguments (docs/selectors.md); only with policy in "
            "the same section",
        ),
        SettingSpec(
            "max_commands",
            'integer 1..65535 or "auto"',
            _max_commands,
            "the LUN's cap on outstanding commands across all paths; auto = the "
            "smallest command window the paths report, else 64",
        ),
        SettingSpec(
            "no_path_retry",
            'seconds 0..3600 or "fail"',
            _no_path_retry,
            "how long I/O waits for a path when every path has failed, then fails; "
            '"fail" = 0 (never "queue" for ever)',
        ),
        SettingSpec(
            "io_timeout_min",
            "seconds (0, 600]",
            lambda v: _number(v, 0.0, 600.0, low_open=True),
            "shortest no-progress time after which a busy path counts as failed",
        ),
        SettingSpec(
            "io_timeout_factor",
            "number 1..1000",
            lambda v: _number(v, 1.0, 1000.0),
            "a busy path fails after this many times its smoothed command latency "
            "without a completion (clamped to io_timeout_min..io_timeout_max)",
        ),
        SettingSpec(
            "io_timeout_max",
            "seconds (0, 600]",
            lambda v: _number(v, 0.0, 600.0, low_open=True),
            "longest no-progress time before a busy path counts as failed",
        ),
        SettingSpec(
            "lun_stall_timeout",
            "seconds (0, 3600]",
            lambda v: _number(v, 0.0, 3600.0, low_open=True),
            "longest time every path may be silent at once (the LUN stalled, not its "
            "paths) before they are failed anyway",
        ),
        SettingSpec(
            "same_path_retries",
            "integer 0..100",
            lambda v: _integer(v, 0, 100),
            "retries on the same path after UNIT ATTENTION, BUSY or TASK SET FULL "
            "before the path counts as failed",
        ),
        SettingSpec(
            "reconnect_interval",
            "seconds (0, 3600]",
            lambda v: _number(v, 0.0, 3600.0, low_open=True),
            "how often a failed path's session is tried again",
        ),
        SettingSpec(
            "slow_command_timeout",
            "seconds (0, 3600]",
            lambda v: _number(v, 0.0, 3600.0, low_open=True),
            "how long a path with only cache flushes or passthrough commands in flight "
            "may go without a completion before it counts as failed",
        ),
        SettingSpec(
            "fence_timeout",
            "seconds [0, 3600]",
            lambda v: _number(v, 0.0, 3600.0),
            "how long a write whose path failed while it was in flight waits for that "
            "path to be fenced before it fails instead of being reissued",
        ),
        SettingSpec(
            "reservation_key",
            'hex string "0x..." (low two bytes 0000) or "none"',
            _reservation_key,
            "fence failed paths with SCSI persistent reservations: each path registers "
            "this key plus a counter and its number and the device holds a Write "
            "Exclusive - Registrants Only reservation (docs/filter.md, Stale writes and fencing)",
        ),
        SettingSpec(
            "fence_method",
            "string: " + ", ".join(FENCE_METHODS),
            _fence_method,
            "how a failed path is fenced: auto = session reinstatement through a portal "
            "of its own target portal group, else the reservation (with reservation_key)",
        ),
        SettingSpec(
            "unfenceable_writes",
            "string: " + ", ".join(UNFENCEABLE_WRITES),
            _unfenceable_writes,
            "a write in flight on a failed path that no method can fence (its portal "
            "group has no other portal and no reservation_key is set): reissue = at "
            "once, with a warning (the original may still land); fail = an error "
            "after fence_timeout",
        ),
        SettingSpec(
            "max_io_bytes",
            'bytes 512..256M (integer or "1M")',
            _max_io_bytes,
            "largest single command; bigger requests are split (the LUN's Block "
            "Limits page may lower it)",
        ),
        SettingSpec(
            "alua_poll_interval",
            "seconds (0, 3600]",
            lambda v: _number(v, 0.0, 3600.0, low_open=True),
            "on an ALUA LU, how often REPORT TARGET PORT GROUPS is read when no answer "
            "says the access states changed (how soon a port back from standby or "
            "unavailable is used again)",
        ),
        SettingSpec(
            "alua_transition_timeout",
            "seconds [0, 3600]",
            lambda v: _number(v, 0.0, 3600.0),
            "how long I/O waits for ports in ALUA transitioning when no other port can "
            "carry it (no_path_retry does not run meanwhile); then they count as standby",
        ),
    )
}
"""Every configurable setting, in the order ``config show`` prints them."""

assert set(SETTINGS) == set(_FIELD_DEFAULTS), "a DeviceSettings field has no SettingSpec"


def default_for_display(name: str) -> object:
    """The built-in default as the file would spell it (None as "auto")."""
    value = SETTINGS[name].default
    if name == "max_commands" and value is None:
        return "auto"
    if name == "reservation_key" and value is None:
        return "none"
    if name == "policy_args":
        return list(value)
    return value
