"""One run for benchmarks.fencing_stall, in the build under test (run as a script).

It imports only ``mpath``, so the "before" build (an older checkout on PYTHONPATH) runs
it too. It opens the device over the URLs given, prints ``ready``, waits for a line on
stdin (the parent applies faults meanwhile, so a hold can start while the sessions are
idle), runs random writes with verification, and prints the bench result as JSON.

    python benchmarks/fencing_child.py BS SECONDS URL...
"""

from __future__ import annotations

import asyncio
import json
import sys

from mpath.filter import DeviceSettings, MultipathDevice
from mpath.workload.bench import BenchRun, BenchSpec


async def main(block_size: int, seconds: float, urls: list[str]) -> None:
    device = await MultipathDevice.open(urls, DeviceSettings(policy="round-robin"))
    try:
        print("ready", flush=True)
        await asyncio.to_thread(sys.stdin.readline)
        spec = BenchSpec(
            rw="randwrite",
            block_size=block_size,
            queue_depth=16,
            seconds=seconds,
            span=1024 * 1024,
            verify=True,
            seed=5,
        )
        result = (await BenchRun(device, spec).run()).describe()
    finally:
        await device.close()
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), float(sys.argv[2]), sys.argv[3:]))
