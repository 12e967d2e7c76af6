"""share: shares from transfer speeds measured at every completion (the default)."""

from __future__ import annotations

from collections import Counter
from unittest import mock

import pytest
from hypothesis import given, settings

from mpath.selectors import SelectorArgError, create_selector
from mpath.selectors import share as share_module
from mpath.selectors.share import FillShareSelector, ShareSelector
from tests.selectors.harness import FakeClock, make_driver, operations

MB = 10**6


def make(*paths: str, args: tuple[str, ...] = ()) -> tuple[ShareSelector[str], FakeClock]:
    clock = FakeClock()
    selector = ShareSelector[str](args, clock=clock)
    for path in paths:
        selector.add_path(path)
    selector.select(4096)  # opens the first measurement period at t=0
    return selector, clock


def transfer(selector: ShareSelector[str], clock: FakeClock, plan: dict[str, float]) -> None:
    """From now, each path in ``plan`` moves 1 MB that takes ``plan[path]`` seconds."""
    start = clock()
    for path in plan:
        selector.start_io(path, MB)
    for path, seconds in sorted(plan.items(), key=lambda item: item[1]):
        clock.now = start + seconds
        selector.end_io(path, MB, start)


def next_period(selector: ShareSelector[str], clock: FakeClock) -> str | None:
    """Move to the next 200 ms period; the select that opens it, returns its choice."""
    clock.advance(0.2)
    return selector.select(4096)


def test_unmeasured_paths_share_equally() -> None:
    selector, _ = make("a", "b", "c", "d")
    assert [selector.share(p) for p in "abcd"] == [0.25] * 4


def test_speeds_are_measured_over_busy_time_and_set_the_shares() -> None:
    selector, clock = make("a", "b")
    transfer(selector, clock, {"a": 0.010, "b": 0.040})  # 100 MB/s and 25 MB/s
    next_period(selector, clock)
    assert selector.speed("a") == pytest.approx(100 * MB)
    assert selector.speed("b") == pytest.approx(25 * MB)
    assert selector.share("a") == pytest.approx(0.8)
    assert selector.share("b") == pytest.approx(0.2)
    assert selector.status()["paths"][0]["speed_mbps"] == pytest.approx(100)


def test_queueing_on_a_path_does_not_understate_its_speed() -> None:
    selector, clock = make("a", "b")
    for _ in range(4):  # four 1 MB I/Os queued on a, served one after another at 100 MB/s
        selector.start_io("a", MB)
    selector.start_io("b", MB)
    for done in range(1, 5):
        clock.now = done * 0.010
        selector.end_io("a", MB, 0.0)  # the last one took 40 ms since its start
    clock.now = 0.040
    selector.end_io("b", MB, 0.0)
    next_period(selector, clock)
    assert selector.speed("a") == pytest.approx(100 * MB)
    assert selector.share("a") == pytest.approx(0.8)


def test_speeds_follow_each_completion_without_waiting_for_the_period() -> None:
    selector, clock = make("a", "b", args=("period_ms=500",))
    transfer(selector, clock, {"a": 0.010, "b": 0.040})
    clock.now = 0.3  # well inside the first period
    assert selector.share("a") == pytest.approx(0.8)
    assert selector.select(4096) == "a"


def test_new_samples_are_averaged_over_the_window_and_jumps_followed_faster() -> None:
    selector, clock = make("a", "b", args=("window_ms=20",))
    transfer(selector, clock, {"a": 0.010, "b": 0.010})
    assert selector.speed("a") == pytest.approx(100 * MB)
    # 80 MB/s is noise-sized (within 1.5x): weight age / (window + age), age 12.5 ms.
    transfer(selector, clock, {"a": 0.0125, "b": 0.010})
    expected = 100 + (80 - 100) * 0.0125 / (0.020 + 0.0125)
    assert selector.speed("a") == pytest.approx(expected * MB)
    # 25 MB/s is a change (over 1.5x off): a quarter of the window, age 40 ms.
    transfer(selector, clock, {"a": 0.040, "b": 0.010})
    expected += (25 - expected) * 0.040 / (0.005 + 0.040)
    assert selector.speed("a") == pytest.approx(expected * MB)
    for _ in range(8):
        transfer(selector, clock, {"a": 0.040, "b": 0.010})
    assert selector.speed("a") == pytest.approx(25 * MB, rel=0.01)


def test_back_to_back_completions_average_to_bytes_over_busy_time() -> None:
    selector, clock = make("a", args=("window_ms=20",))
    transfer(selector, clock, {"a": 0.010})
    for burst in range(50):  # completions in bursts of 4 every 40 ms: still 100 MB/s
        start = clock()
        for _ in range(4):
            selector.start_io("a", MB)
        clock.now = start + 0.040
        for _ in range(4):
            selector.end_io("a", MB, start)
        assert burst < 10 or selector.speed("a") == pytest.approx(100 * MB, rel=0.05)


def test_ios_are_spread_in_proportion_to_share() -> None:
    selector, clock = make("a", "b")
    transfer(selector, clock, {"a": 0.010, "b": 0.040})
    next_period(selector, clock)
    chosen: Counter[str] = Counter()
    for _ in range(100):  # nothing completes: queues build in proportion to share
        path = selector.select(MB)
        assert path is not None
        selector.start_io(path, MB)
        chosen[path] += 1
    # Balanced when (n_a + 1) / 0.8 == (n_b + 1) / 0.2, counting the incoming I/O.
    assert chosen["a"] == pytest.approx(80, abs=2)


def test_each_io_goes_where_its_own_size_completes_first() -> None:
    selector, clock = make("slow", "fast")
    transfer(selector, clock, {"slow": 0.020, "fast": 0.005})  # 50 and 200 MB/s
    clock.advance(0.199)
    selector.start_io("fast", 2 * MB)  # the fast path drains in 10 ms, the slow one at once
    clock.advance(0.001)
    selector.select(4096)  # a new period: the heap is keyed for 2 MB I/Os (the mean held)
    # For 2 MB the fast path comes first (20 ms against 40), but a small read finishes
    # first on the idle slow path (0.08 ms against 10 ms) ...
    assert selector.select(4096) == "slow"
    # ... and a 4 MB read on the fast one (30 ms there, 80 ms on the slow path).
    assert selector.select(4 * MB) == "fast"


@pytest.mark.parametrize("policy", ["share", "share fill=bdp"])
@pytest.mark.parametrize("paths", [3, 12])
@settings(max_examples=100, deadline=None)
@given(ops=operations)
def test_each_io_goes_where_it_completes_first_whatever_came_before(
    policy: str, paths: int, ops: list[tuple[str, int]]
) -> None:
    """select's path has the least (bytes held + n) / speed, for every size n.

    3 paths are compared one by one; 12 go through the heap search, exact here because
    its entry limit is lifted (with the limit it may settle for a nearly-as-good path).
    With fill=bdp the paths kept as below their window are exactly those holding less
    than it, and the least key is taken among them when there are any.
    """
    driver = make_driver(policy, paths)
    selector = driver.selector
    assert isinstance(selector, ShareSelector)
    fill = isinstance(selector, FillShareSelector)
    assert fill == (policy != "share")
    driver.apply(ops)
    driver.clock.advance(0.01)
    with mock.patch.object(share_module, "_SEARCH_LIMIT", 10**9):
        for nbytes in (512, 4096, 65536, 262144, 4 * MB):
            selector.select(nbytes)  # may open a period, which may queue probes
            while any(info.probe_pending for info in selector._infos.values()):
                selector.select(nbytes)  # an idle path's probe goes first, whatever its key
            usable = [info for info in selector._infos.values() if not info.failed]
            below = [info for info in usable if info.in_flight_bytes < info.window]
            if isinstance(selector, FillShareSelector):
                assert set(selector._below) == {info.path for info in below}
            else:
                assert not below  # the default keeps no window
            chosen = selector.select(nbytes)
            pool = below or usable
            if not pool:
                assert chosen is None
                continue
            best = min((info.in_flight_bytes + nbytes) * info.inverse for info in pool)
            mine = selector._infos[chosen]
            assert mine in pool
            assert (mine.in_flight_bytes + nbytes) * mine.inverse == pytest.approx(best, rel=1e-12)


def test_a_failed_paths_share_goes_to_the_others_at_once() -> None:
    selector, clock = make("a", "b", "c")
    transfer(selector, clock, {"a": 0.010, "b": 0.020, "c": 0.040})
    next_period(selector, clock)
    selector.fail_path("a")
    assert selector.share("a") == 0.0
    assert selector.share("b") + selector.share("c") == pytest.approx(1.0)
    assert selector.share("b") == pytest.approx(2 / 3)
    assert {selector.select(4096) for _ in range(3)} <= {"b", "c"}


def test_a_reinstated_path_starts_small_and_earns_its_share_back() -> None:
    selector, clock = make("a", "b", args=("window_ms=20",))
    transfer(selector, clock, {"a": 0.010, "b": 0.010})
    next_period(selector, clock)
    selector.fail_path("b")
    next_period(selector, clock)
    selector.reinstate_path("b")
    shares = [selector.share("b")]
    assert shares[0] == pytest.approx(0.05 / 1.05)
    for _ in range(15):  # 10 ms busy each: a third of the 20 ms window per sample
        transfer(selector, clock, {"a": 0.010, "b": 0.010})
        shares.append(selector.share("b"))
    assert shares == sorted(shares)
    assert shares[1] < 0.45
    assert shares[-1] == pytest.approx(0.5, abs=0.01)


def test_an_idle_path_is_probed_after_probe_ms() -> None:
    selector, clock = make("a", "b", args=("probe_ms=1000",))
    transfer(selector, clock, {"a": 0.010, "b": 0.200})
    for _ in range(4):
        assert next_period(selector, clock) == "a"  # b is slower and idle; a is idle too
        transfer(selector, clock, {"a": 0.001})
    assert next_period(selector, clock) == "b"  # b has been idle for 1 s now
    selector.start_io("b", 4096)
    assert selector.select(4096) == "a"  # one probe, then back to shares


def test_a_stalled_path_loses_share_before_anything_completes() -> None:
    selector, clock = make("a", "b")
    transfer(selector, clock, {"a": 0.010, "b": 0.010})
    next_period(selector, clock)
    selector.start_io("b", MB)  # it will never finish
    for _ in range(5):
        transfer(selector, clock, {"a": 0.010})
        next_period(selector, clock)
    assert selector.share("b") < 0.05


def test_a_stalled_command_without_data_bounds_nothing() -> None:
    """A hung SYNCHRONIZE CACHE holds no bytes: the stall bound (bytes held over time
    held) would make the path's speed 0, and its inverse a division by zero."""
    selector, clock = make("a", "b")
    transfer(selector, clock, {"a": 0.010, "b": 0.010})
    next_period(selector, clock)
    selector.start_io("b", 0)  # never finishes
    for _ in range(5):
        transfer(selector, clock, {"a": 0.010})
        next_period(selector, clock)
    assert 0 < selector.share("b") < 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("period_ms=0",), "share ps: invalid period_ms '0'"),
        (("window_ms=0",), "share ps: invalid window_ms '0'"),
        (("smoothing=50",), "share ps: invalid argument 'smoothing=50'"),
        (("probe_share=x",), "share ps: invalid probe_share 'x'"),
        (("period=5",), "share ps: invalid argument 'period=5'"),
        (("200",), "share ps: invalid argument '200'"),
    ],
)
def test_bad_selector_arguments(args: tuple[str, ...], message: str) -> None:
    with pytest.raises(SelectorArgError, match=f"^{message}"):
        ShareSelector[str](args)


def test_status_names_the_period() -> None:
    selector, _ = make("a", args=("period_ms=100", "probe_ms=500"))
    status = selector.status()
    assert (status["period_ms"], status["probe_ms"], status["window_ms"]) == (100, 500, 100)


def test_a_path_holding_only_a_zero_byte_command_keeps_its_speed() -> None:
    """A flush (SYNCHRONIZE CACHE, 0 bytes) outstanding for a whole period used to set
    the path's speed to 0 bytes / waited and divide by it (found by the torture run)."""
    selector, clock = make("a", "b")
    transfer(selector, clock, {"a": 0.010, "b": 0.040})
    next_period(selector, clock)
    selector.start_io("a", 0)  # the flush: in flight, moves no data
    clock.advance(1.0)
    assert selector.select(4096) in ("a", "b")
    assert selector.speed("a") == pytest.approx(100 * MB)


# -- fill=bdp: fill every path to its bandwidth-delay product first -----------------------


def test_fill_is_strict_and_only_bdp_builds_the_variant() -> None:
    assert type(ShareSelector[str](())) is ShareSelector
    assert type(ShareSelector[str](("fill=completion",))) is ShareSelector
    variant = create_selector("share", ["window_ms=50", "fill=bdp"])
    assert isinstance(variant, FillShareSelector)
    assert variant.status()["fill"] == "bdp"
    assert ShareSelector[str](()).status()["fill"] == "completion"
    with pytest.raises(SelectorArgError, match=r"^share ps: invalid fill 'fastest'"):
        ShareSelector[str](("fill=fastest",))
    with pytest.raises(SelectorArgError, match=r"^share ps: argument 'fill' given twice"):
        ShareSelector[str](("fill=bdp", "fill=bdp"))


def near_and_far(*args: str) -> tuple[ShareSelector[str], FakeClock]:
    """Two paths of 100 MB/s, 1 MB I/Os: ``near`` with 1 ms of base latency, kept
    saturated (an I/O started every 10 ms, each completing 11 ms after its start, so
    each but the first queues behind the one before), and ``far`` with 50 ms, holding
    four I/Os spaced 15 ms apart (never queued, but each sees others complete: 66.7
    MB/s delivered). Only the first I/O on each path meets no other completion."""
    clock = FakeClock()
    selector = ShareSelector[str](args, clock=clock)
    selector.add_path("near")
    selector.add_path("far")
    selector.select(MB)
    events: list[tuple[float, bool, str, float]] = []  # (when, is a start, path, started)
    for number in range(30):
        events += [
            (number * 0.010, True, "near", 0.0),
            (0.011 + number * 0.010, False, "near", number * 0.010),
        ]
    for number in range(16):
        events += [
            (number * 0.015, True, "far", 0.0),
            (0.060 + number * 0.015, False, "far", number * 0.015),
        ]
    for when, start, path, started in sorted(events, key=lambda event: (event[0], event[1])):
        clock.now = when
        if start:
            selector.start_io(path, MB)
        else:
            selector.end_io(path, MB, started)
    clock.now = 0.4
    return selector, clock


def fill(selector: ShareSelector[str], count: int) -> list[str]:
    """``count`` I/Os of 1 MB selected and started, none completing."""
    chosen = []
    for _ in range(count):
        path = selector.select(MB)
        assert path is not None
        selector.start_io(path, MB)
        chosen.append(path)
    return chosen


def test_fill_bdp_measures_the_latency_of_ios_that_queued_behind_nothing() -> None:
    selector, clock = near_and_far("fill=bdp")
    assert isinstance(selector, FillShareSelector)
    paths = {entry["path"]: entry for entry in selector.status()["paths"]}
    # Only each path's first I/O met no other completion: 11 and 60 ms. The queued
    # near I/Os (21 ms from start to end) and the overlapping far ones count nothing.
    assert paths["near"]["rtt_ms"] == pytest.approx(11.0)
    assert paths["far"]["rtt_ms"] == pytest.approx(60.0)
    for name in ("near", "far"):
        window = 1.25 * selector.speed(name) * paths[name]["rtt_ms"] / 1000
        assert paths[name]["window_bytes"] == round(window)
    # A lone I/O with a lower latency replaces the estimate; a higher one moves it by
    # age / (10 windows + age): here 1 s after the last sample, by half the gap.
    clock.now = 1.0
    selector.start_io("far", MB)
    clock.now = 1.040
    selector.end_io("far", MB, 1.0)
    assert selector.status()["paths"][1]["rtt_ms"] == pytest.approx(40.0)
    clock.now = 2.040
    selector.start_io("far", MB)
    clock.now = 2.120
    selector.end_io("far", MB, 2.040)
    assert selector.status()["paths"][1]["rtt_ms"] == pytest.approx(40 + (80 - 40) * 1.08 / 2.08)


def test_fill_bdp_puts_ios_on_the_far_path_up_to_its_window() -> None:
    default, _ = near_and_far()
    variant, _ = near_and_far("fill=bdp")
    windows = {entry["path"]: entry["window_bytes"] for entry in variant.status()["paths"]}
    assert windows["near"] == pytest.approx(1.37 * MB, rel=0.01)  # 1.25 * 99.6 MB/s * 11 ms
    assert windows["far"] == pytest.approx(4.76 * MB, rel=0.01)  # 1.25 * 63.5 MB/s * 60 ms
    # By earliest completion alone the near path takes 5 of 8 (its key counts only
    # what it holds over its speed, not the far path's idle 50 ms) ...
    assert Counter(fill(default, 8)) == {"near": 5, "far": 3}
    # ... with fill=bdp, the near path stops at its window (2 MB >= 1.37 MB) and the
    # far one takes the rest up to its own (5 MB >= 4.76 MB); with both full, the
    # eighth goes by earliest completion again (near: 3 MB / 99.6 MB/s = 30 ms,
    # far: 6 MB / 63.5 MB/s = 94 ms).
    assert fill(variant, 8) == ["near", "far", "near", "far", "far", "far", "far", "near"]


def test_fill_bdp_chooses_as_the_default_once_every_path_holds_its_window() -> None:
    default, default_clock = near_and_far()
    variant, variant_clock = near_and_far("fill=bdp")
    assert isinstance(variant, FillShareSelector)
    in_flight: list[tuple[str, float]] = []
    for path in ["near", "far"] * 20:  # both paths well over their windows
        for selector in (default, variant):
            selector.start_io(path, MB)
        in_flight.append((path, 0.4))
    now = 0.4
    for _ in range(200):  # the oldest completes, a new I/O is chosen: a queue depth of 40
        now += 0.005
        default_clock.now = variant_clock.now = now
        path, started = in_flight.pop(0)
        for selector in (default, variant):
            selector.end_io(path, MB, started)
        assert not variant._below, "a path dropped below its window: not the case tested"
        chosen = default.select(MB)
        assert chosen is not None
        assert variant.select(MB) == chosen
        for selector in (default, variant):
            selector.start_io(chosen, MB)
        in_flight.append((chosen, now))
