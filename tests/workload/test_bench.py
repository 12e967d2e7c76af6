"""BenchRun over fake paths: the per-path byte split and the spec's checks."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import ClassVar

import pytest

from mpath.errors import NoPathError, UsageError
from mpath.filter import DeviceSettings, MultipathDevice
from mpath.workload import pattern
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


class _LandsThenFails:
    """A device whose every third write lands on the LUN but reports an error: the
    outcome of a write whose path failed while it was in flight."""

    block_size = 512
    size_bytes = 64 * 4096
    policy = "fake"
    paths: ClassVar[list[dict[str, object]]] = []

    def __init__(self) -> None:
        self.data = bytearray(self.size_bytes)
        self.writes = 0
        self.stats = type("Stats", (), {"failovers": 0, "fences": 0})()

    async def read(self, offset: int, length: int) -> bytes:
        await asyncio.sleep(0)
        return bytes(self.data[offset : offset + length])

    async def write(self, offset: int, data: bytes) -> None:
        await asyncio.sleep(0)
        self.data[offset : offset + len(data)] = data
        self.writes += 1
        if self.writes % 3 == 0:
            raise NoPathError(5.0, 5.0, "fake: the path went away with the write in flight")


def test_a_failed_write_that_landed_is_no_mismatch_and_the_ack_log_has_every_ack(
    tmp_path: Path,
) -> None:
    device = _LandsThenFails()
    log = tmp_path / "acks.log"
    spec = BenchSpec(
        rw="randrw", block_size=4096, queue_depth=4, seconds=0.2, verify=True, ack_log=str(log)
    )
    run = BenchRun(device, spec)  # type: ignore[arg-type]
    doc = asyncio.run(run.run()).describe()
    assert doc["errors"] > 0
    assert doc["verify_mismatches"] == 0, doc["mismatch_examples"]
    lines = log.read_text().splitlines()
    assert lines[0] == f"# mpath bench ack log v1 run_id={run.run_id} block_size=4096 chunks=64"
    acked: dict[int, int] = {}
    for line in lines[1:]:
        kind, chunk_text, generation_text, *_ = line.split()
        if kind == "W":
            acked[int(chunk_text)] = int(generation_text)
    assert len([x for x in lines if x.startswith("E ")]) == doc["errors"]
    for chunk, generation in acked.items():  # the log agrees with what the LUN holds
        data = bytes(device.data[chunk * 4096 :][:4096])
        found = pattern.check(data, chunk * 8, generation, run.run_id)
        newer = pattern.check(data, chunk * 8, generation + 1, run.run_id)
        assert not found or not newer
