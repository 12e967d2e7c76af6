"""The policy matrix's pure parts: scenarios, the verdict, the report (no rig, no timing)."""

from __future__ import annotations

import itertools

import pytest

from benchmarks.policies_matrix import (
    CASES,
    FLIP_EVERY,
    POLICIES,
    Row,
    flip_events,
    percentiles,
    render,
    run_order,
    sim_rows,
    sim_scenario,
    verdict,
)
from mpath.sim import EventKind

CASE = {case.name: case for case in CASES}


def row(policy: str, mbps: float, p99: float, **sizes: float) -> Row:
    latency = {"all": (1.0, p99, 2 * p99)}
    latency.update({label: (1.0, value, 2 * value) for label, value in sizes.items()})
    return Row(policy, mbps, mbps / 250, (0.5, 0.5), latency)


def test_the_matrix_has_the_scenarios_of_the_issue() -> None:
    assert [case.name for case in CASES] == [
        "2p-read", "2p-write", "4p-random", "mixed", "latency", "latency-qd8", "flip",
    ]  # fmt: skip
    assert CASE["2p-read"].sum_mbps == 250
    assert CASE["4p-random"].sum_mbps == 187.5
    assert [stream.label for stream in CASE["mixed"].streams] == ["4 KiB", "1 MiB"]
    assert not CASE["2p-write"].sim and not CASE["latency"].rig


def test_a_flipping_path_counts_at_its_mean_speed_and_flips_every_interval() -> None:
    flip = CASE["flip"]
    assert flip.sum_mbps == 100 + (200 + 25) / 2
    events = flip_events(flip, 7.0)
    assert [(event.at, event.mbps) for event in events] == [
        (FLIP_EVERY, 25.0), (2 * FLIP_EVERY, 200.0), (3 * FLIP_EVERY, 25.0),
    ]  # fmt: skip
    assert {event.kind for event in events} == {EventKind.RATE}
    assert flip_events(CASE["2p-read"], 7.0) == ()


def test_sim_scenarios_run_long_enough_and_keep_per_path_latency() -> None:
    scenario = sim_scenario(CASE["latency"], "share")
    assert [path.latency_ms for path in scenario.paths] == [0.1, 5.1]
    assert scenario.ios * 64 * 1024 / 200e6 >= 15  # about 16 simulated seconds
    assert scenario.total_qd == 32


def test_verdict_compares_p99_only_among_the_policies_at_full_speed() -> None:
    rows = [row("share", 240, 40), row("historical-service-time", 242, 39), row("rr", 100, 5)]
    judged = verdict(rows)
    assert judged.best_mb_per_s == ("historical-service-time", 242)
    assert judged.best_p99 == {"all": ("historical-service-time", 39)}
    assert judged.throughput_gap == pytest.approx(2 / 242)
    assert judged.p99_gaps["all"] == pytest.approx(1 / 39)
    assert judged.leads  # within 3 % on both


def test_verdict_fails_a_policy_more_than_3_percent_behind() -> None:
    assert not verdict([row("share", 240, 45), row("other", 241, 40)]).leads
    assert not verdict([row("share", 200, 40), row("other", 241, 45)]).leads


def test_verdict_judges_each_size_separately_with_two_workers() -> None:
    rows = [
        row("share", 250, 70, **{"4 KiB": 70, "1 MiB": 70}),
        row("other", 250, 72, **{"4 KiB": 60, "1 MiB": 75}),
    ]
    judged = verdict(rows)
    assert set(judged.p99_gaps) == {"4 KiB", "1 MiB"}
    assert judged.p99_gaps["4 KiB"] == pytest.approx(70 / 60 - 1)
    assert judged.p99_gaps["1 MiB"] == 0
    assert not judged.leads


def test_percentiles_are_nearest_rank_in_milliseconds() -> None:
    assert percentiles([i / 1000 for i in range(1, 101)]) == (51.0, 100.0, 100.0)
    assert percentiles([]) == (0.0, 0.0, 0.0)


def test_the_report_has_the_summary_and_every_row() -> None:
    case = CASE["2p-read"]
    rows = sim_rows(case, ("share", "round-robin"))
    text = render([(case, "sim", rows)], 3.0)
    assert "| 2p-read | sim | 250.0 vs 250.0 (share, +0.0%)" in text
    assert "| **share** | **250.0** | 100.0% |" in text
    assert "| round-robin | 100.0 | 40.0% |" in text


def test_each_round_runs_every_policy_once_with_other_neighbours() -> None:
    policies = ["a", "b", "c", "d"]
    first, second = run_order(policies, 0), run_order(policies, 1)
    assert first == policies
    assert sorted(second) == policies
    follows = {b: a for a, b in itertools.pairwise(first)}
    assert all(follows.get(b) != a for a, b in itertools.pairwise(second))


def test_the_fill_variant_runs_with_its_argument_and_is_judged_against_the_others() -> None:
    assert "share fill=bdp" in POLICIES
    scenario = sim_scenario(CASE["latency-qd8"], "share fill=bdp")
    assert (scenario.policy, scenario.policy_args) == ("share", ("fill=bdp",))
    rows = [row("share", 100, 5.4), row("share fill=bdp", 168, 5.8), row("round-robin", 161, 5.8)]
    # Each share is compared with the other policies, not with the other share.
    assert verdict(rows).best_mb_per_s == ("round-robin", 161)
    assert not verdict(rows).leads
    judged = verdict(rows, "share fill=bdp")
    assert judged.best_mb_per_s == ("share fill=bdp", 168)
    assert judged.best_p99 == {"all": ("share fill=bdp", 5.8)}
    assert judged.leads


def test_the_report_gives_the_variant_its_own_summary() -> None:
    case = CASE["latency-qd8"]
    rows = sim_rows(case, ("share", "share fill=bdp", "round-robin"))
    by_policy = {row.policy: row for row in rows}
    # The variant moves more than round-robin here, the default far less.
    assert by_policy["share fill=bdp"].mb_per_s > by_policy["round-robin"].mb_per_s
    assert by_policy["share"].mb_per_s < 0.7 * by_policy["round-robin"].mb_per_s
    text = render([(case, "sim", rows)], 3.0)
    assert "### Where `share fill=bdp` stands" in text
    assert "| latency-qd8 | sim | 100.2 vs 161.0 (round-robin, -37.8%)" in text
    assert "| **share fill=bdp** |" in text
