"""BenchRun over fake paths: the per-path byte split and the spec's checks."""

from __future__ import annotations

import asyncio

import pytest

from mpath.errors import UsageError
from mpath.filter import DeviceSettings, MultipathDevice
from mpath.workload.bench import BenchRun, BenchSpec, FaultStep
from tests.filter.fakes import FakeLun, FakeTransport

DEVICE = DeviceSettings(policy="round-robin")


async def _run(spec: BenchSpec) -> dict[str, object]:
    lun = FakeLun(blocks=256)
    paths = [FakeTransport(f"fake://p{i}", lun) for i in (1, 2)]
    device = await MultipathDevice.open(paths, DEVICE)
    try:
        return (await BenchRun(device, spec).run()).describe()
    finally:
        await device.close()


@pytest.mark.parametrize("rw", ["write", "read"])
def test_verify_splits_each_paths_bytes_into_workload_and_read_back(rw: str) -> None:
    spec = BenchSpec(rw=rw, block_size=4096, queue_depth=4, seconds=0.2, verify=True)
    doc = asyncio.run(_run(spec))
    paths = doc["paths"]
    assert isinstance(paths, list) and len(paths) == 2
    assert sum(p["workload_bytes"] for p in paths) == doc["bytes"]
    for path in paths:
        assert path["workload_bytes"] > 0 and path["verify_bytes"] > 0
        parts = path["prefill_bytes"] + path["workload_bytes"] + path["verify_bytes"]
        assert parts == path["bytes"]
    read_back = sum(p["verify_bytes"] for p in paths)
    prefill = sum(p["prefill_bytes"] for p in paths)
    lun_bytes = 256 * 512
    if rw == "read":  # every chunk written once first, then all read back at the end
        assert prefill == read_back == lun_bytes
    else:
        assert prefill == 0 and 0 < read_back <= lun_bytes


def test_without_verify_only_the_workload_is_counted() -> None:
    doc = asyncio.run(_run(BenchSpec(rw="read", block_size=4096, queue_depth=4, seconds=0.1)))
    paths = doc["paths"]
    assert isinstance(paths, list)
    for path in paths:
        assert "verify_bytes" not in path
        assert path["workload_bytes"] == path["bytes"]


def test_a_fault_after_the_end_of_the_run_is_refused() -> None:
    with pytest.raises(UsageError, match="at 5 s, but the run ends at 2 s"):
        BenchSpec(seconds=2, faults=(FaultStep.parse("5:1:down"),))
    with pytest.raises(UsageError, match="at 2 s, but the run ends at 2 s"):
        BenchSpec(seconds=2, faults=(FaultStep.parse("2:1:down"),))
    BenchSpec(seconds=2, faults=(FaultStep.parse("1.5:1:down"),))
