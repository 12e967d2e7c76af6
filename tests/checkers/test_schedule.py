"""Backoff and the due-time queue, with a fake clock."""

from __future__ import annotations

from mpath.checkers.schedule import DueQueue, next_interval


def test_interval_doubles_while_settled_up_to_the_maximum() -> None:
    intervals = [5.0]
    for _ in range(4):
        intervals.append(next_interval(intervals[-1], base=5.0, maximum=20.0, settled=True))
    assert intervals == [5.0, 10.0, 20.0, 20.0, 20.0]


def test_any_change_resets_to_the_base_interval() -> None:
    assert next_interval(20.0, base=5.0, maximum=20.0, settled=False) == 5.0
    # A maximum that is not a power-of-two multiple is reached exactly.
    assert next_interval(8.0, base=5.0, maximum=12.0, settled=True) == 12.0


def test_due_queue_pops_in_time_order_and_only_what_is_due() -> None:
    queue: DueQueue[str] = DueQueue()
    queue.schedule("b", 2.0)
    queue.schedule("a", 1.0)
    queue.schedule("c", 3.0)
    assert queue.next_due() == 1.0
    assert queue.pop_due(2.5) == ["a", "b"]
    assert queue.next_due() == 3.0
    assert len(queue) == 1 and "c" in queue


def test_rescheduling_replaces_the_earlier_time() -> None:
    queue: DueQueue[str] = DueQueue()
    queue.schedule("a", 10.0)
    queue.schedule("a", 1.0)  # check at once (a failure was reported)
    assert queue.pop_due(1.0) == ["a"]
    assert queue.pop_due(100.0) == []  # the stale 10.0 entry is skipped
    queue.schedule("b", 5.0)
    queue.schedule("b", 7.0)
    assert queue.pop_due(6.0) == []
    assert queue.next_due() == 7.0


def test_schedule_earlier_keeps_the_sooner_time_and_discard_forgets() -> None:
    queue: DueQueue[str] = DueQueue()
    queue.schedule("a", 2.0)
    queue.schedule_earlier("a", 3.0)
    assert queue.due_time("a") == 2.0
    queue.schedule_earlier("a", 1.0)
    assert queue.due_time("a") == 1.0
    queue.discard("a")
    assert queue.next_due() is None
    assert queue.pop_due(10.0) == []


def test_ten_thousand_keys_come_out_in_order() -> None:
    queue: DueQueue[int] = DueQueue()
    for key in range(10_000):
        queue.schedule(key, (key * 7919) % 10_000 / 1000)
    popped = queue.pop_due(10.0)
    assert len(popped) == 10_000
    times = [(key * 7919) % 10_000 for key in popped]
    assert times == sorted(times)
