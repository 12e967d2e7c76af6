"""Per-path command latency, counted into fixed buckets on every completion.

The smoothed latency (:attr:`mpath.filter.path.Path.latency`) says what a path costs
now; a histogram says how often it was slow, which a mean hides (a path that answers
in 1 ms but stalls for 2 s once a minute). The buckets are fixed, so that counting
costs one bisect into a small tuple and two additions per command, with nothing
allocated: the I/O path of an NBD export is CPU-bound. They reach from 0.5 ms (a
LAN round trip) to 10 s (past any I/O timeout); what the metrics endpoint exports as
``mpath_path_command_latency_seconds`` (docs/daemon.md).
"""

from __future__ import annotations

from bisect import bisect_left

#: Upper bounds of the buckets in seconds (Prometheus' ``le``: a latency equal to a
#: bound counts in that bucket); one more bucket counts what is above the last.
LATENCY_BUCKETS: tuple[float, ...] = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip


class LatencyHistogram:
    """Counts of command latencies per bucket of :data:`LATENCY_BUCKETS`, and their sum."""

    __slots__ = ("counts", "sum")

    def __init__(self) -> None:
        #: Per bucket, not cumulative; the last counts latencies above every bound.
        self.counts = [0] * (len(LATENCY_BUCKETS) + 1)
        self.sum = 0.0

    def observe(self, seconds: float) -> None:
        self.counts[bisect_left(LATENCY_BUCKETS, seconds)] += 1
        self.sum += seconds

    @property
    def count(self) -> int:
        return sum(self.counts)

    def cumulative(self) -> list[tuple[float, int]]:
        """(bound, commands at or below it) per bucket, ending with (inf, all of them):
        the shape of a Prometheus histogram."""
        pairs = []
        total = 0
        for bound, count in zip((*LATENCY_BUCKETS, float("inf")), self.counts, strict=True):
            total += count
            pairs.append((bound, total))
        return pairs
