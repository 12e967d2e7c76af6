"""Can one process check 10,000 paths every 5 seconds? CPU used by the checker monitor.

One :class:`~mpath.checkers.monitor.CheckerMonitor` (the production code: one
scheduler task, the ``tur`` checker with its timeout, backoff, damping records)
watches N paths whose transport answers TEST UNIT READY through a future resolved on
the next loop iteration, the way a real transport's completion callback does. The
interval is pinned (``polling_interval = max_polling_interval``) so every path is
checked every interval, the worst case: backoff would only lower the load.

The figure is the process CPU time over the wall time of the measurement (after one
interval of warm-up, once the spread-out first round has settled), plus how many
checks ran against how many were due and how late the latest one started.

    .venv/bin/python -m benchmarks.checker_scale            # 10,000 paths, 5 s, 30 s run
    .venv/bin/python -m benchmarks.checker_scale --paths 2000 --seconds 10 --json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from typing import Any

from mpath.checkers.monitor import CheckerMonitor
from mpath.checkers.settings import CheckerSettings
from mpath.filter.path import Path
from mpath.settings import DeviceSettings
from mpath.transports.base import ScsiResult

_GOOD = ScsiResult(0)


class FastTransport:
    """A path that answers every command on the next loop iteration with GOOD."""

    def __init__(self, url: str) -> None:
        self._url = url
        self.commands = 0

    @property
    def url(self) -> str:
        return self._url

    @property
    def connected(self) -> bool:
        return True

    @property
    def max_commands(self) -> int | None:
        return None

    async def connect(self) -> None:
        """Always logged in."""

    async def execute(
        self,
        cdb: bytes,
        *,
        data_out: bytes | memoryview | None = None,
        data_in_length: int = 0,
    ) -> ScsiResult:
        self.commands += 1
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[ScsiResult] = loop.create_future()
        loop.call_soon(answer.set_result, _GOOD)
        return await answer

    async def close(self) -> None:
        """Nothing to tear down."""


class CountingDevice:
    """The monitor's view of a device with many healthy paths and no priority groups."""

    def __init__(self, paths: int) -> None:
        self._paths = [Path(i + 1, FastTransport(f"fake://bench/{i}")) for i in range(paths)]
        self.failed = 0

    @property
    def settings(self) -> DeviceSettings:
        """Default device settings: the monitor reads its LUN stall limit there."""
        return DeviceSettings()

    @property
    def path_objects(self) -> list[Path]:
        return list(self._paths)

    async def fail(self, path: Path, reason: str) -> None:
        self.failed += 1

    async def verify_identity(self, path: Path) -> str | None:
        return None

    def reinstate(self, path: Path) -> None:
        """Never needed: no path fails."""

    def selector_status(self) -> dict[str, Any]:
        return {}


async def measure(
    paths: int, interval: float, seconds: float, max_interval: float | None = None
) -> dict[str, Any]:
    device = CountingDevice(paths)
    settings = CheckerSettings(
        polling_interval=interval, max_polling_interval=max_interval or interval, timeout=2.0
    )
    monitor = CheckerMonitor(device, settings)
    monitor.start()
    try:
        await asyncio.sleep(interval)  # warm-up: the first round is spread over one interval
        checks_before = sum(monitor.watch(p).checks for p in device.path_objects)
        wall_before, cpu_before = time.perf_counter(), time.process_time()
        await asyncio.sleep(seconds)  # the measured span
        wall = time.perf_counter() - wall_before
        cpu = time.process_time() - cpu_before
        checks = sum(monitor.watch(p).checks for p in device.path_objects) - checks_before
        now = time.monotonic()
        stalest = max(now - (monitor.watch(p).last_check or 0.0) for p in device.path_objects)
    finally:
        await monitor.close()
    due = paths * wall / interval  # without backoff
    return {
        "paths": paths,
        "interval_s": interval,
        "max_interval_s": settings.max_polling_interval,
        "seconds": round(wall, 2),
        "checks": checks,
        "checks_due": round(due),
        "checks_per_s": round(checks / wall, 1),
        "cpu_s": round(cpu, 3),
        "cpu_percent_of_one_core": round(100 * cpu / wall, 2),
        "cpu_us_per_check": round(1e6 * cpu / checks, 1) if checks else None,
        "longest_since_last_check_s": round(stalest, 3),
        "paths_failed": device.failed,
        "python": sys.version.split()[0],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--paths", type=int, default=10_000)
    parser.add_argument("--interval", type=float, default=5.0, help="seconds between checks")
    parser.add_argument(
        "--max-interval",
        type=float,
        default=None,
        help="back off up to this while stable (default: the interval, no backoff)",
    )
    parser.add_argument("--seconds", type=float, default=30.0, help="measured span")
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    args = parser.parse_args(argv)
    result = asyncio.run(measure(args.paths, args.interval, args.seconds, args.max_interval))
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(
            f"{result['paths']} paths every {result['interval_s']:g} s: "
            f"{result['checks']} checks in {result['seconds']} s "
            f"({result['checks_per_s']}/s, {result['checks_due']} due), "
            f"CPU {result['cpu_percent_of_one_core']}% of one core "
            f"({result['cpu_us_per_check']} us per check), "
            f"longest since a path's last check {result['longest_since_last_check_s']} s"
        )
    return 0 if result["cpu_percent_of_one_core"] < 20 else 1


if __name__ == "__main__":
    sys.exit(main())
