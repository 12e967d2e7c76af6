"""The per-path latency histogram: bucket edges, cumulative counts."""

from __future__ import annotations

import itertools

from mpath.filter.latency import LATENCY_BUCKETS, LatencyHistogram


def test_a_latency_equal_to_a_bound_counts_in_that_bucket_and_above_all_in_the_last() -> None:
    histogram = LatencyHistogram()
    for seconds in (0.0, 0.0005, 0.0006, 0.001, 9.9, 10.0, 10.5, 300.0):
        histogram.observe(seconds)
    assert histogram.counts[0] == 2  # 0 and exactly 0.5 ms: le="0.0005"
    assert histogram.counts[1] == 2  # 0.6 ms and exactly 1 ms
    assert histogram.counts[len(LATENCY_BUCKETS) - 1] == 2  # 9.9 s and exactly 10 s
    assert histogram.counts[-1] == 2  # above the last bound
    assert histogram.count == 8
    assert abs(histogram.sum - 330.4021) < 1e-9


def test_cumulative_counts_end_with_every_command_at_infinity() -> None:
    histogram = LatencyHistogram()
    for seconds in (0.002, 0.002, 0.2, 20.0):
        histogram.observe(seconds)
    pairs = histogram.cumulative()
    assert [bound for bound, _ in pairs] == [*LATENCY_BUCKETS, float("inf")]
    assert dict(pairs)[0.001] == 0
    assert dict(pairs)[0.0025] == 2
    assert dict(pairs)[0.25] == 3
    assert dict(pairs)[10.0] == 3
    assert pairs[-1] == (float("inf"), 4)
    assert all(a[1] <= b[1] for a, b in itertools.pairwise(pairs))


def test_bounds_are_increasing_from_half_a_millisecond_to_ten_seconds() -> None:
    assert LATENCY_BUCKETS[0] == 0.0005 and LATENCY_BUCKETS[-1] == 10.0
    assert list(LATENCY_BUCKETS) == sorted(set(LATENCY_BUCKETS))
