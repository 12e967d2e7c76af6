"""The discrete-event loop: real selectors over simulated paths (model: :mod:`.model`).

Events live in one heap ordered by time (ties by insertion order, so a run is fully
deterministic for a seed). Because a path serves its commands FIFO with a fixed
latency, they complete in the order they were sent; so each busy path keeps its
commands in a deque and has exactly one completion event in the heap, for its oldest
command. The heap therefore never holds more than one entry per path plus the
scripted events, and the loop does a handful of list and deque operations per I/O on
top of the selector's own ``select``/``start_io``/``end_io``.

The selector's clock is the simulated time.
"""

from __future__ import annotations

import math
import random
from array import array
from collections import deque
from heapq import heappop, heappush

from mpath.selectors import PathSelector, create_selector
from mpath.sim.model import (
    MB,
    EventKind,
    LatencySummary,
    PathResult,
    Scenario,
    SimResult,
    TracePoint,
    WorkerResult,
)

_TRACE = -1  # heap index of the periodic trace event; scripted events are -2, -3, ...


def _summarise(latencies: array[float]) -> LatencySummary:
    if not latencies:
        return LatencySummary(0.0, 0.0, 0.0, 0.0)
    ordered = sorted(latencies)
    last = len(ordered) - 1

    def rank(fraction: float) -> float:
        return ordered[math.ceil(fraction * last)] * 1e3

    return LatencySummary(
        p50=rank(0.50),
        p99=rank(0.99),
        max=ordered[-1] * 1e3,
        mean=sum(ordered) / len(ordered) * 1e3,
    )


def simulate(scenario: Scenario) -> SimResult:  # noqa: PLR0915 - one lean event loop
    """Run ``scenario`` to completion and report throughput, latency and the split."""
    now = 0.0

    def clock() -> float:
        return now

    count = len(scenario.paths)
    streams = scenario.streams
    cap = scenario.max_commands if scenario.max_commands is not None else scenario.total_qd
    selector: PathSelector[int] = create_selector(
        scenario.policy, scenario.policy_args, clock=clock, max_commands=cap
    )
    for number, path in enumerate(scenario.paths):
        selector.add_path(number, path.args)
    select, start_io, end_io = selector.select, selector.start_io, selector.end_io

    seconds_per_byte = [1.0 / (path.mbps * MB) for path in scenario.paths]
    latency = [path.latency_ms / 1e3 for path in scenario.paths]
    free_at = [0.0] * count
    epoch = [0] * count
    failed = [False] * count
    done_ios = [0] * count
    done_bytes = [0] * count
    traced_bytes = [0] * count
    # Per path, its commands in order: (done at, submitted, started, size, worker).
    queues: list[deque[tuple[float, float, float, int, int]]] = [deque() for _ in range(count)]
    heap: list[tuple[float, int, int, int]] = []
    seq = 0
    for number, event in enumerate(scenario.events):
        seq += 1
        heappush(heap, (event.at, seq, -2 - number, 0))
    trace: list[TracePoint] = []
    if scenario.trace_interval is not None:
        seq += 1
        heappush(heap, (scenario.trace_interval, seq, _TRACE, 0))

    rand = random.Random(scenario.seed).random
    spread = 2.0 * scenario.jitter
    low = 1.0 - scenario.jitter
    total = scenario.ios
    sizes = [worker.bs for worker in streams]
    # I/Os not yet sent, in submission order: (submitted, worker).
    waiting: deque[tuple[float, int]] = deque()
    issued = 0
    for number, worker in enumerate(streams):
        take = min(worker.qd, total - issued)
        waiting.extend([(0.0, number)] * take)
        issued += take
    latencies = [array("d") for _ in streams]
    worker_ios = [0] * len(streams)
    completed = retries = 0
    last_completion = 0.0

    while True:
        # Send every waiting I/O the selector will take now.
        while waiting:
            nbytes = sizes[waiting[0][1]]
            chosen = select(nbytes)
            if chosen is None:
                break
            index = chosen
            submitted, worker_number = waiting.popleft()
            start_io(index, nbytes)
            finish = free_at[index]
            finish = max(finish, now)
            finish += nbytes * seconds_per_byte[index] * (low + spread * rand())
            free_at[index] = finish
            done_at = finish + latency[index]
            queue = queues[index]
            queue.append((done_at, submitted, now, nbytes, worker_number))
            if len(queue) == 1:  # only the path's oldest command has a heap entry
                seq += 1
                heappush(heap, (done_at, seq, index, epoch[index]))
        if not heap:
            break
        at, _, index, stamp = heappop(heap)
        now = at
        if index >= 0:
            if stamp != epoch[index]:
                continue  # the path failed after this completion was scheduled
            queue = queues[index]
            _, submitted, started, nbytes, worker_number = queue.popleft()
            end_io(index, nbytes, started)
            latencies[worker_number].append(now - submitted)
            worker_ios[worker_number] += 1
            done_ios[index] += 1
            done_bytes[index] += nbytes
            completed += 1
            last_completion = now
            if queue:
                seq += 1
                heappush(heap, (queue[0][0], seq, index, stamp))
            if issued < total:
                issued += 1
                waiting.append((now, worker_number))
        elif index == _TRACE:
            if completed == total:
                continue  # the run ended inside this interval: nothing whole to report
            interval = scenario.trace_interval or 0.0
            trace.append(
                TracePoint(
                    time=now,
                    mbps=tuple(
                        (done - before) / interval / MB
                        for done, before in zip(done_bytes, traced_bytes, strict=True)
                    ),
                    shares=tuple(selector.share(i) for i in range(count)),
                )
            )
            traced_bytes[:] = done_bytes
            if heap:  # something can still happen (else the run is over or stalled)
                seq += 1
                heappush(heap, (now + interval, seq, _TRACE, 0))
        else:
            event = scenario.events[-2 - index]
            target = event.path
            if event.kind is EventKind.FAIL and not failed[target]:
                failed[target] = True
                epoch[target] += 1
                selector.fail_path(target)
                stranded = queues[target]
                for _, _submitted, started, nbytes, _worker in stranded:
                    end_io(target, nbytes, started)
                waiting.extendleft(
                    (submitted, worker_number)
                    for _, submitted, _, _, worker_number in reversed(stranded)
                )
                retries += len(stranded)
                stranded.clear()
                free_at[target] = now
            elif event.kind is EventKind.RECOVER and failed[target]:
                failed[target] = False
                selector.reinstate_path(target)
            elif event.kind is EventKind.RATE and event.mbps is not None:
                seconds_per_byte[target] = 1.0 / (event.mbps * MB)

    moved = sum(done_bytes)
    elapsed = last_completion
    everything = array("d")
    for recorded in latencies:
        everything.extend(recorded)
    return SimResult(
        policy=scenario.policy,
        ios=completed,
        unfinished=total - completed,
        retries=retries,
        elapsed=elapsed,
        bytes=moved,
        sum_mbps=scenario.sum_mbps,
        latency_ms=_summarise(everything),
        paths=tuple(
            PathResult(
                mbps=path.mbps,
                bytes=done_bytes[i],
                ios=done_ios[i],
                share=done_bytes[i] / moved if moved else 0.0,
                selector_share=selector.share(i),
                state="failed" if failed[i] else "active",
            )
            for i, path in enumerate(scenario.paths)
        ),
        trace=tuple(trace),
        workers=tuple(
            WorkerResult(
                label=worker.label,
                bs=worker.bs,
                ios=worker_ios[number],
                bytes=worker_ios[number] * worker.bs,
                latency_ms=_summarise(latencies[number]),
            )
            for number, worker in enumerate(streams)
        ),
    )
