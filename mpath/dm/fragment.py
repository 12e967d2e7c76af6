"""The ``multipath.conf`` fragment ``mpath dm-config`` prints, built from measurements.

Pure text generation: every input is given (paths, their kernel names, their
measurements), nothing is read or measured here, so the output is testable line by
line and multipath-tools' parser can be run on it (mpath/dm/parser_check.py).

Two styles, because multipath.conf can express only part of what was measured:

* ``weightedpath``: multipath-tools' weightedpath prioritizer gives each path a fixed
  priority chosen by a regular expression on its name (``prio_args "devname ^sdb$ 30
  ^sdc$ 100"``; syntax from libmultipath/prioritizers/weightedpath.c and
  multipath.conf(5)). With ``path_grouping_policy "group_by_prio"`` paths of equal
  priority share a group, the highest group carries the I/O, the others stand by.
  ``detect_prio "no"`` (devices section; multipath-tools ignores it in multipaths)
  stops multipathd replacing weightedpath by alua/sysfs on ALUA targets (tgt and LIO
  are).
* ``service-time``: all paths in one group (``multibus``) under the kernel's
  ``service-time`` selector. The kernel takes a per-path ``relative_throughput``
  (dm-ps-service-time.c: path args ``[repeat_count [relative_throughput]]``), but
  multipathd writes exactly one argument per path into the table (``assemble_map``
  in libmultipath/dmparser.c: ``" %s %d", dev_t, minio``), and no multipath.conf
  keyword changes that. So the fragment configures what it can and carries the
  measured relative throughputs, and the table arguments they call for, as comments.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from mpath.dm.prio import Health, PrioInput, get_prio, relative_throughput, tier
from mpath.dm.store import Measurement
from mpath.errors import UsageError


class Style(StrEnum):
    WEIGHTEDPATH = "weightedpath"
    SERVICE_TIME = "service-time"


class Match(StrEnum):
    """How weightedpath names a path (the first word of ``prio_args``)."""

    DEVNAME = "devname"
    HBTL = "hbtl"


@dataclass(frozen=True, slots=True)
class FragmentPath:
    """One path: as the user named it, as the kernel names it, and what was measured."""

    path: str
    measurement: Measurement
    kernel_name: str | None = None
    hbtl: str | None = None
    devnum: str | None = None


@dataclass(frozen=True, slots=True)
class PathRow:
    """One path's line in the fragment's table and in the JSON output."""

    path: str
    device: str | None
    hbtl: str | None
    devnum: str | None
    health: str
    mb_per_s: float | None
    latency_ms: float | None
    priority: int
    relative_throughput: int
    source: str


@dataclass(frozen=True, slots=True)
class Fragment:
    text: str
    rows: list[PathRow]
    settings: dict[str, str]
    """The multipaths-entry keywords written (name -> value), for JSON and tests."""


_ERE_SPECIAL = re.compile(r"([.\[\]()*+?{}|^$\\])")


def ere_literal(text: str) -> str:
    """``text`` as a POSIX extended regular expression matching exactly it.

    Characters multipath.conf's tokenizer treats specially inside quotes (the quote
    itself) become ``.``; nothing in a kernel name or INQUIRY field needs more.
    """
    escaped = _ERE_SPECIAL.sub(r"\\\1", text)
    return escaped.replace('"', ".")


def _quoted(value: str) -> str:
    if '"' in value or "\n" in value:
        raise UsageError(f"cannot write {value!r} into multipath.conf")
    return f'"{value}"'


def path_rows(paths: Sequence[FragmentPath], step: int) -> list[PathRow]:
    """Priorities (on mpath prio's scale, rounded to ``step``) and relative throughputs."""
    up = [p.measurement for p in paths if p.measurement.health is Health.UP]
    best_mb = max((m.mb_per_s for m in up if m.mb_per_s), default=None)
    best_latency = min((m.latency_ms for m in up if m.latency_ms), default=None)
    rows = []
    for p in paths:
        m = p.measurement
        priority = get_prio(
            PrioInput(
                health=m.health,
                mb_per_s=m.mb_per_s,
                best_mb_per_s=best_mb,
                latency_ms=m.latency_ms,
                best_latency_ms=best_latency,
                error_ratio=m.error_ratio,
            )
        )
        throughput = relative_throughput(m.mb_per_s, best_mb) if m.health is Health.UP else 0
        rows.append(
            PathRow(
                path=p.path,
                device=p.kernel_name,
                hbtl=p.hbtl,
                devnum=p.devnum,
                health=m.health.value,
                mb_per_s=m.mb_per_s,
                latency_ms=m.latency_ms,
                priority=tier(priority, step),
                relative_throughput=throughput,
                source=m.source,
            )
        )
    return rows


def _table(rows: list[PathRow], style: Style) -> list[str]:
    last = "priority" if style is Style.WEIGHTEDPATH else "relative throughput"
    header = ("path", "device", "MB/s", last)
    body = [
        (
            row.path,
            row.device or row.hbtl or "?",
            f"{row.mb_per_s:.1f}" if row.mb_per_s is not None else row.health,
            str(row.priority if style is Style.WEIGHTEDPATH else row.relative_throughput),
        )
        for row in rows
    ]
    widths = [max(len(r[i]) for r in (header, *body)) for i in range(4)]
    return [
        "#   " + "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(r)).rstrip()
        for r in (header, *body)
    ]


def weightedpath_args(rows: list[PathRow], match: Match) -> str:
    """``prio_args`` for weightedpath: ``"devname ^sdb$ 30 ^sdc$ 100"``.

    Expressions are anchored (weightedpath searches, so ``sdb`` alone would also
    match ``sdba``). Paths with priority 0 are left out: weightedpath gives an
    unmatched path 0 by itself. Every other path must have the name ``match`` needs.
    """
    words = [match.value]
    missing = []
    for row in rows:
        name = row.device if match is Match.DEVNAME else row.hbtl
        if row.priority == 0:
            continue
        if not name:
            missing.append(row.path)
            continue
        words += [f"^{ere_literal(name)}$", str(row.priority)]
    if missing:
        raise missing_names_error(missing, match)
    return " ".join(words)


def missing_names_error(missing: Sequence[str], match: Match) -> UsageError:
    """weightedpath cannot name these paths: what to do about it."""
    what = "kernel device name (sdX)" if match is Match.DEVNAME else "SCSI address (H:C:T:L)"
    return UsageError(
        f"weightedpath needs each path's {what}, unknown for: {', '.join(missing)}. "
        "Log in with open-iscsi so sysfs shows the session, give the path as /dev/sdX, "
        "or name it with --kernel-name PATH=NAME"
    )


def render(
    *,
    style: Style,
    wwid: str,
    paths: Sequence[FragmentPath],
    vendor: str | None = None,
    product: str | None = None,
    alias: str | None = None,
    match: Match = Match.DEVNAME,
    step: int = 10,
    header: Sequence[str] = (),
) -> Fragment:
    """The fragment text for one LUN (see the module docstring for what each line does)."""
    if not paths:
        raise UsageError("no paths to describe")
    rows = path_rows(paths, step)
    lines = [f"# {line}" if line else "#" for line in header]
    described = ", ".join(
        f"{label} {value}" for label, value in (("vendor", vendor), ("product", product)) if value
    )
    lines.append(f"# LUN {wwid}" + (f" ({described})" if described else "") + ":")
    lines += _table(rows, style)
    settings: dict[str, str] = {"wwid": wwid}
    if alias:
        settings["alias"] = alias
    if style is Style.WEIGHTEDPATH:
        lines += [
            "#",
            f"# Priority = 100 x MB/s / the fastest path's, in steps of {step} (the scale of",
            "# 'mpath prio'); 0 = failed or unknown when measured. group_by_prio puts paths",
            "# of equal priority in one group: the highest group carries the I/O, balanced",
            "# inside it by service-time; lower groups stand by. weightedpath matches kernel",
            "# names, which can change at reboot or re-login: run 'mpath dm-config' again then.",
        ]
        settings.update(
            {
                "path_grouping_policy": "group_by_prio",
                "path_selector": "service-time 0",
                "prio": "weightedpath",
                "prio_args": weightedpath_args(rows, match),
                "failback": "immediate",
            }
        )
    else:
        table = " ".join(
            f"{row.devnum or row.device or f'path{i + 1}'} 1 {row.relative_throughput}"
            for i, row in enumerate(rows)
        )
        lines += [
            "#",
            "# multipath.conf cannot carry these relative throughputs: multipathd writes one",
            "# argument per path (the repeat count) into the kernel table, so service-time",
            "# runs with relative throughput 1 on every path and balances by bytes in flight",
            "# (which already favours a faster path: it drains sooner). The kernel table",
            "# path-group arguments the measurements call for would be:",
            f"#   service-time 0 {len(rows)} 2 {table}",
            "# (dmsetup could load them by hand; multipathd rewrites the table on reload).",
        ]
        settings.update({"path_grouping_policy": "multibus", "path_selector": "service-time 0"})
    if style is Style.WEIGHTEDPATH:
        if vendor or product:
            lines += ["devices {", "\tdevice {"]
            if vendor:
                lines.append(f"\t\tvendor {_quoted('^' + ere_literal(vendor) + '$')}")
            if product:
                lines.append(f"\t\tproduct {_quoted('^' + ere_literal(product) + '$')}")
            lines += [
                "\t\t# detect_prio would replace weightedpath by alua/sysfs on ALUA targets",
                '\t\tdetect_prio "no"',
                "\t}",
                "}",
            ]
        else:
            lines += [
                '# vendor/product unknown: set detect_prio "no" in this LUN\'s devices entry,',
                "# else an ALUA target's alua/sysfs prioritizer replaces weightedpath.",
            ]
    lines += ["multipaths {", "\tmultipath {"]
    lines += [f"\t\t{key} {_quoted(value)}" for key, value in settings.items()]
    lines += ["\t}", "}"]
    return Fragment("\n".join(lines) + "\n", rows, settings)
