"""share: shares from transfer speeds measured at every completion (the default)."""

from __future__ import annotations

from collections import Counter
from unittest import mock

import pytest
from hypothesis import given, settings

from mpath.selectors import SelectorArgError
from mpath.selectors import share as share_module
from mpath.selectors.share import ShareSelector
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


@pytest.mark.parametrize("paths", [3, 12])
@settings(max_examples=100, deadline=None)
@given(ops=operations)
def test_each_io_goes_where_it_completes_first_whatever_came_before(
    paths: int, ops: list[tuple[str, int]]
) -> None:
    """select's path has the least (bytes held + n) / speed, for every size n.

    3 paths are compared one by one; 12 go through the heap search, exact here because
    its entry limit is lifted (with the limit it may settle for a nearly-as-good path).
    """
    driver = make_driver("share", paths)
    selector = driver.selector
    assert isinstance(selector, ShareSelector)
    driver.apply(ops)
    driver.clock.advance(0.01)
    with mock.patch.object(share_module, "_SEARCH_LIMIT", 10**9):
        for nbytes in (512, 4096, 65536, 262144, 4 * MB):
            selector.select(nbytes)  # may open a period, which may queue probes
            while any(info.probe_pending for info in selector._infos.values()):
                selector.select(nbytes)  # an idle path's probe goes first, whatever its key
            chosen = selector.select(nbytes)
            infos = [info for info in selector._infos.values() if not info.failed]
            if not infos:
                assert chosen is None
                continue
            best = min((info.in_flight_bytes + nbytes) * info.inverse for info in infos)
            mine = selector._infos[chosen]
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


def test_a_command_without_data_in_flight_does_not_zero_the_speed() -> None:
    """A TEST UNIT READY outstanding for a while (the stall watchdog asks an idle path
    whether the LUN answers) holds no bytes: it says nothing about the path's speed."""
    selector, clock = make("a", "b")
    transfer(selector, clock, {"a": 0.010, "b": 0.010})
    next_period(selector, clock)
    selector.start_io("b", 0)
    clock.advance(0.5)
    assert selector.select(4096) in ("a", "b")  # a new period with b busy since 0.5 s
    assert selector.speed("b") == pytest.approx(100 * MB)


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
