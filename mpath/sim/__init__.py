"""A discrete-event simulator that runs the real selectors over modelled paths.

Selectors take an injected clock, so the same classes the filter layer drives can be
measured here at any scale and deterministically: the paths are servers with a
bandwidth and a latency (model and its assumptions: :mod:`mpath.sim.model`), the
workload keeps a fixed number of I/Os outstanding, and scripted events fail, recover
or re-rate paths mid-run.

>>> from mpath.sim import Scenario, SimPath, simulate
>>> result = simulate(Scenario(paths=(SimPath(50), SimPath(200)), policy="round-robin"))
>>> round(result.mb_per_s / 50, 1)   # held near twice the slow path
2.0
"""

from mpath.sim.engine import simulate
from mpath.sim.model import (
    EventKind,
    LatencySummary,
    PathEvent,
    PathResult,
    Scenario,
    SimPath,
    SimResult,
    TracePoint,
    Worker,
    WorkerResult,
)

__all__ = [
    "EventKind",
    "LatencySummary",
    "PathEvent",
    "PathResult",
    "Scenario",
    "SimPath",
    "SimResult",
    "TracePoint",
    "Worker",
    "WorkerResult",
    "simulate",
]
