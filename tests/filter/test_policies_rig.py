"""Balancing by measured speed on the real rig: share against the paths' own capacity.

The figures of benchmarks/policies_rig.py (docs/benchmarks.md), asserted as ratios
measured in one run, so a loaded machine slows every figure alike: two paths limited to
400 and 1600 mbit/s, sequential 256 KiB reads at queue depth 32. Each path alone gives
its capacity; ``share`` must reach 90 % of their sum (it sends each path what that
path can carry) and at least 1.5x round-robin (which the slow path holds back to twice
its own rate).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence

import pytest

from mpath.filter import DeviceSettings, MultipathDevice
from mpath.rig import Rig, RigManager
from mpath.rig.manager import parse_rates
from mpath.workload.bench import BenchRun, BenchSpec
from tests.conftest import unique_rig_name

pytestmark = pytest.mark.rig

SPEC = BenchSpec(rw="read", block_size=256 * 1024, queue_depth=32, seconds=3.0)


@pytest.fixture(scope="module")
def rig() -> Iterator[Rig]:
    manager = RigManager()
    name = unique_rig_name("pol")
    try:
        yield manager.up(
            name=name, paths=2, size=512 * 1024**2, rates=parse_rates("400mbit,1600mbit", 2)
        )
    finally:
        manager.down(name)


async def _read_rate(urls: Sequence[str], policy: str) -> tuple[float, list[int]]:
    """MB/s of the read run through the filter layer, and the bytes each path carried."""
    device = await MultipathDevice.open(list(urls), DeviceSettings(policy=policy))
    try:
        doc = (await BenchRun(device, SPEC).run()).describe()
    finally:
        await device.close()
    assert doc["errors"] == 0, doc["first_error"]
    return float(doc["mb_per_s"]), [int(p["bytes"]) for p in doc["paths"]]


def test_share_reaches_the_sum_of_the_paths_and_beats_round_robin(rig: Rig) -> None:
    slow_alone, _ = asyncio.run(_read_rate(rig.urls[:1], "round-robin"))
    fast_alone, _ = asyncio.run(_read_rate(rig.urls[1:], "round-robin"))
    share, split = asyncio.run(_read_rate(rig.urls, "share"))
    round_robin, _ = asyncio.run(_read_rate(rig.urls, "round-robin"))
    figures = (
        f"slow alone {slow_alone:.1f}, fast alone {fast_alone:.1f}, "
        f"share {share:.1f} (split {split}), round-robin {round_robin:.1f} MB/s"
    )
    print(figures)  # shown with -s: the figures behind the ratios
    assert fast_alone > 2 * slow_alone, f"the rig's rate limits did not hold: {figures}"
    assert share >= 0.9 * (slow_alone + fast_alone), figures
    assert share >= 1.5 * round_robin, figures
    # The fast path carried most of share's traffic (its capacity is 4x the slow one's).
    assert split[1] > 2 * split[0], figures
