"""The simulator: the model's behaviour, determinism, failures, and the must-show split."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mpath.errors import UsageError
from mpath.selectors import SELECTOR_NAMES
from mpath.sim import EventKind, PathEvent, Scenario, SimPath, Worker, simulate

KIB = 1024
MIB = 1024 * KIB
HETEROGENEOUS = (SimPath(50), SimPath(200))
LOAD_BALANCING = [name for name in SELECTOR_NAMES if name not in ("failover", "weighted")]


def run(paths: tuple[SimPath, ...] = HETEROGENEOUS, **kwargs: object) -> Scenario:
    return Scenario(paths=paths, **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("policy", ["share", "service-time", "queue-length"])
def test_adaptive_policies_reach_95_percent_of_50_plus_200(policy: str) -> None:
    result = simulate(run(policy=policy, qd=32, bs=256 * KIB, ios=6000))
    assert result.sum_mbps == 250
    assert result.efficiency >= 0.95
    assert result.paths[1].share == pytest.approx(0.8, abs=0.03)


def test_round_robin_is_held_near_twice_the_slow_path() -> None:
    result = simulate(run(policy="round-robin", qd=32, bs=256 * KIB, ios=6000))
    assert result.mb_per_s == pytest.approx(100, rel=0.03)
    assert [path.share for path in result.paths] == [0.5, 0.5]


def test_share_balances_latency_where_queue_length_does_not() -> None:
    share = simulate(run(policy="share", ios=6000))
    queue = simulate(run(policy="queue-length", ios=6000))
    # Same throughput; queue-length parks as many I/Os on the slow path as on the fast.
    assert share.latency_ms.p99 < 0.6 * queue.latency_ms.p99


def test_one_path_at_one_io_moves_size_over_transfer_plus_latency() -> None:
    result = simulate(
        run(
            paths=(SimPath(100, latency_ms=1.0),),
            policy="round-robin",
            qd=1,
            bs=100_000,
            ios=100,
            jitter=0.0,
        )
    )
    # 100 kB at 100 MB/s = 1 ms transfer + 1 ms latency = 2 ms per I/O -> 50 MB/s
    assert result.mb_per_s == pytest.approx(50)
    assert result.latency_ms.p50 == pytest.approx(2.0)
    assert result.latency_ms.max == pytest.approx(2.0)


def test_latency_overlaps_when_a_path_holds_several_commands() -> None:
    result = simulate(
        run(
            paths=(SimPath(100, latency_ms=1.0),),
            policy="round-robin",
            qd=8,
            bs=100_000,
            ios=2000,
            jitter=0.0,
        )
    )
    assert result.mb_per_s == pytest.approx(100, rel=0.01)


def test_a_run_is_deterministic_for_a_seed() -> None:
    first = simulate(run(policy="share", ios=3000, seed=7))
    again = simulate(run(policy="share", ios=3000, seed=7))
    other = simulate(run(policy="share", ios=3000, seed=8))
    assert first == again
    assert first.elapsed != other.elapsed


@pytest.mark.parametrize("policy", [*LOAD_BALANCING, "weighted"])
@settings(max_examples=5, deadline=None)
@given(count=st.integers(2, 6), seed=st.integers(0, 1000))
def test_equal_paths_split_fairly(policy: str, count: int, seed: int) -> None:
    result = simulate(
        run(
            paths=(SimPath(100),) * count,
            policy=policy,
            qd=4 * count,
            ios=400 * count,
            bs=64 * KIB,
            seed=seed,
        )
    )
    for path in result.paths:
        assert path.share == pytest.approx(1 / count, abs=0.03)
    assert result.efficiency >= 0.9


def test_failover_sends_everything_down_one_path() -> None:
    result = simulate(run(paths=(SimPath(100),) * 3, policy="failover", ios=500))
    assert [path.ios for path in result.paths] == [500, 0, 0]


@pytest.mark.parametrize("policy", SELECTOR_NAMES)
def test_a_failure_loses_no_io_and_the_path_comes_back(policy: str) -> None:
    events = (PathEvent(1.0, 0, EventKind.FAIL), PathEvent(2.0, 0, EventKind.RECOVER))
    result = simulate(run(paths=(SimPath(100),) * 2, policy=policy, ios=1500, events=events))
    assert result.ios == 1500
    assert result.unfinished == 0
    assert result.retries > 0
    assert all(path.state == "active" for path in result.paths)


def test_io_on_a_failed_path_is_retried_on_another() -> None:
    events = (PathEvent(1.0, 1, EventKind.FAIL),)
    result = simulate(
        run(paths=(SimPath(100),) * 2, policy="round-robin", ios=1000, events=events, jitter=0.0)
    )
    assert result.retries == 16  # half of qd 32 was on path 2
    assert result.paths[1].state == "failed"
    assert result.paths[0].ios + result.paths[1].ios == 1000


def test_with_every_path_failed_the_rest_stays_unfinished() -> None:
    events = (PathEvent(0.5, 0, EventKind.FAIL),)
    result = simulate(
        run(paths=(SimPath(100),), policy="share", ios=1000, events=events, trace_interval=0.1)
    )
    assert result.unfinished > 0
    assert result.ios + result.unfinished == 1000


def test_share_follows_a_path_cut_to_a_quarter_within_two_seconds() -> None:
    events = (PathEvent(4.0, 1, EventKind.RATE, mbps=50.0),)
    result = simulate(
        run(
            paths=(SimPath(200), SimPath(200)),
            policy="share",
            ios=9000,
            events=events,
            trace_interval=0.25,
        )
    )
    before = [point for point in result.trace if point.time <= 4.0]
    after = [point for point in result.trace if point.time >= 6.0]
    assert before[-1].shares[1] == pytest.approx(0.5, abs=0.02)
    assert after and all(point.shares[1] == pytest.approx(0.2, abs=0.03) for point in after)
    assert all(sum(point.mbps) == pytest.approx(250, rel=0.03) for point in after)


def test_share_notices_a_path_that_became_fast_again_at_light_load() -> None:
    events = (PathEvent(3.0, 0, EventKind.RATE, mbps=400.0),)
    result = simulate(run(policy="share", qd=1, ios=6000, events=events, trace_interval=0.5))
    early = next(point for point in result.trace if point.time == pytest.approx(2.0))
    late = result.trace[-1]
    assert early.mbps[0] < 5  # only probes go to the slow path
    assert late.mbps[0] > 300  # after a probe found it fast, it carries the load


def test_quota_with_weights_matching_speeds_fills_both_paths() -> None:
    equal = simulate(run(policy="quota", ios=4000))
    weighted = simulate(
        run(paths=(SimPath(50, args=("1",)), SimPath(200, args=("4",))), policy="quota", ios=4000)
    )
    assert equal.mb_per_s == pytest.approx(100, rel=0.05)
    assert weighted.efficiency >= 0.95


def test_a_trace_samples_throughput_and_shares() -> None:
    result = simulate(run(policy="share", ios=3000, trace_interval=0.5))
    assert [point.time for point in result.trace[:3]] == [0.5, 1.0, 1.5]
    assert all(len(point.mbps) == 2 and len(point.shares) == 2 for point in result.trace)
    assert result.trace[-1].time <= result.elapsed


def test_json_document_has_the_contract_keys() -> None:
    document = simulate(run(policy="share", ios=500)).to_json()
    assert {"policy", "mb_per_s", "sum_mbps", "efficiency", "latency_ms", "paths"} <= set(document)
    assert {"p50", "p99", "max"} <= set(document["latency_ms"])
    assert all({"mbps", "bytes", "share"} <= set(path) for path in document["paths"])


@pytest.mark.slow
def test_sixty_four_paths_and_a_million_ios_complete() -> None:
    paths = tuple(SimPath(50 + 5 * i) for i in range(64))
    result = simulate(Scenario(paths=paths, policy="share", qd=256, bs=64 * KIB, ios=1_000_000))
    assert result.ios == 1_000_000
    assert result.efficiency >= 0.95


def test_two_workers_share_the_paths_and_report_latency_per_size() -> None:
    workers = (Worker(4 * KIB, 16, "4 KiB"), Worker(1024 * KIB, 16, "1 MiB"))
    result = simulate(run(policy="share", ios=4000, workers=workers))
    small, large = result.workers
    assert (small.label, small.bs, large.label, large.bs) == ("4 KiB", 4 * KIB, "1 MiB", MIB)
    assert small.ios + large.ios == result.ios == 4000
    assert result.bytes == small.ios * 4 * KIB + large.ios * MIB
    assert sum(path.bytes for path in result.paths) == result.bytes
    assert result.efficiency >= 0.95
    # FIFO paths: a 4 KiB read queued behind 1 MiB reads waits about as long as they do.
    assert small.latency_ms.p50 == pytest.approx(large.latency_ms.p50, rel=0.2)


def test_one_worker_is_the_scenarios_own_size_and_depth() -> None:
    result = simulate(run(policy="share", qd=8, bs=64 * KIB, ios=500))
    (only,) = result.workers
    assert (only.bs, only.ios, only.bytes) == (64 * KIB, 500, 500 * 64 * KIB)
    assert only.latency_ms == result.latency_ms


def test_the_lun_cap_defaults_to_the_total_queue_depth() -> None:
    workers = (Worker(4 * KIB, 3), Worker(64 * KIB, 5))
    result = simulate(run(policy="quota", ios=200, workers=workers))
    assert result.ios == 200  # quota's budgets come from a cap of 8: nothing starves
    assert Scenario(paths=HETEROGENEOUS, workers=workers).total_qd == 8


def test_a_worker_needs_a_size_and_a_depth() -> None:
    with pytest.raises(UsageError, match="queue depth 0"):
        Worker(4096, 0)
    with pytest.raises(UsageError, match="block size 0"):
        Worker(0, 1)


def test_share_follows_a_path_flipping_speed_faster_than_historical_service_time() -> None:
    flips = tuple(
        PathEvent(2.0 * (n + 1), 1, EventKind.RATE, mbps=(25.0, 200.0)[n % 2]) for n in range(10)
    )
    paths = (SimPath(100), SimPath(200))
    share = simulate(run(paths=paths, policy="share", ios=12_000, events=flips))
    history = simulate(run(paths=paths, policy="historical-service-time", ios=12_000, events=flips))
    assert share.mb_per_s >= 0.99 * history.mb_per_s
    assert share.latency_ms.p99 < history.latency_ms.p99
