"""The priority scale ``mpath prio`` prints: a pure function of one path's measurement.

dm-multipath compares priorities only with each other (a path group's priority is the
average of its paths'; the highest group carries the I/O), so the scale only has to
order paths of one LUN sensibly. mpath's scale:

* **0**: the path failed, is unknown, or cannot be judged (no such device, unparsable
  name, stale or no data about its health). multipath-tools' weightedpath prioritizer
  also uses 0 for "no match", so 0 always means "last resort".
* **1..100**: the path is up. 100 is the fastest known path of the same LUN; a slower
  path gets ``100 x its throughput / the fastest's`` (by measured MB/s). When only
  latencies are known, ``100 x the best latency / its latency``. A path that is up but
  has no speed measurement gets 1: usable, but below every measured path.
* Health lowers the score: the fraction of I/Os that failed during the measurement
  scales it down (a path that failed 30% of its I/Os keeps 70% of its score), never
  below 1 while the path is up.

Everything here is pure (no I/O, no clock), like multipath-tools' ``getprio()``; the
caller gathers the measurements (mpath/dm/source.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

PRIO_FAILED = 0
PRIO_MIN = 1
PRIO_MAX = 100


class Health(StrEnum):
    """What is known of a path's health right now."""

    UP = "up"
    FAILED = "failed"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class PrioInput:
    """What :func:`get_prio` judges: one path, and the best of its LUN's paths.

    ``mb_per_s`` / ``latency_ms`` are this path's measured throughput and mean command
    latency (None when not measured); ``best_mb_per_s`` / ``best_latency_ms`` the best
    values among the LUN's healthy paths *including this one* (None when unknown).
    ``error_ratio`` is the share of failed I/Os in the measurement (0..1).
    """

    health: Health
    mb_per_s: float | None = None
    best_mb_per_s: float | None = None
    latency_ms: float | None = None
    best_latency_ms: float | None = None
    error_ratio: float = 0.0


def _positive(value: float | None) -> bool:
    return value is not None and math.isfinite(value) and value > 0


def _round(value: float) -> int:
    """Round half up (not to even): 12.5 -> 13, so equal inputs give stable steps."""
    return math.floor(value + 0.5)


def get_prio(measurement: PrioInput | None) -> int:
    """The priority of one path on mpath's 0..100 scale (see the module docstring).

    >>> get_prio(PrioInput(Health.UP, mb_per_s=50, best_mb_per_s=200))
    25
    >>> get_prio(PrioInput(Health.UP, mb_per_s=200, best_mb_per_s=200, error_ratio=0.3))
    70
    >>> get_prio(PrioInput(Health.FAILED, mb_per_s=200, best_mb_per_s=200))
    0
    >>> get_prio(None)
    0
    """
    if measurement is None or measurement.health is not Health.UP:
        return PRIO_FAILED
    m = measurement
    if _positive(m.mb_per_s):
        assert m.mb_per_s is not None
        best = m.best_mb_per_s if _positive(m.best_mb_per_s) else m.mb_per_s
        assert best is not None
        score = PRIO_MAX * m.mb_per_s / max(best, m.mb_per_s)
    elif _positive(m.latency_ms):
        assert m.latency_ms is not None
        best = m.best_latency_ms if _positive(m.best_latency_ms) else m.latency_ms
        assert best is not None
        score = PRIO_MAX * min(best, m.latency_ms) / m.latency_ms
    else:
        return PRIO_MIN
    ratio = m.error_ratio if math.isfinite(m.error_ratio) else 1.0
    score *= 1.0 - min(max(ratio, 0.0), 1.0)
    return min(PRIO_MAX, max(PRIO_MIN, _round(score)))


def relative_throughput(mb_per_s: float | None, best_mb_per_s: float | None) -> int:
    """dm-service-time's per-path ``relative_throughput`` (1..100; 0 = use last).

    The kernel compares paths by ``in-flight bytes / relative_throughput``, so the value
    is the path's share of the fastest path's speed, scaled to 100. An unmeasured path
    gets 1 (the kernel's own default); a path measured at 0 MB/s gets 0, which the
    kernel uses only when no other path is usable.
    """
    if mb_per_s is None or not math.isfinite(mb_per_s) or mb_per_s < 0:
        return 1
    if mb_per_s == 0:
        return 0
    best = best_mb_per_s if _positive(best_mb_per_s) else mb_per_s
    assert best is not None
    return min(PRIO_MAX, max(1, _round(PRIO_MAX * mb_per_s / max(best, mb_per_s))))


def tier(priority: int, step: int) -> int:
    """``priority`` rounded to a multiple of ``step`` (at least 1; 0 stays 0).

    multipath's ``group_by_prio`` puts paths in one group only when their priorities
    are *equal*, so two paths measured at 97 and 100 would end up in separate groups
    and the slower one would stand by. Rounding to steps keeps nearly equal paths
    together while clearly slower ones still get their own, lower group.

    >>> [tier(p, 10) for p in (100, 97, 94, 25, 4, 0)]
    [100, 100, 90, 30, 1, 0]
    """
    if step < 1:
        raise ValueError("step must be at least 1")
    if priority <= 0:
        return 0
    return min(PRIO_MAX, max(PRIO_MIN, _round(priority / step) * step))
