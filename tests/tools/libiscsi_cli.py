"""libiscsi's own command-line clients, used as independent witnesses in tests.

The rig is checked with tools this project did not write (iscsi-inq, iscsi-perf), so a
bug in mpath's initiator cannot hide a bug in the rig.
"""

from __future__ import annotations

import re
import signal
import subprocess
from dataclasses import dataclass


def inquiry(url: str, *, page: int | None = None, timeout: float = 5.0) -> str | None:
    """Run iscsi-inq; return its output, or None if the path did not answer in time."""
    argv = ["iscsi-inq"]
    if page is not None:
        argv += ["-e", "1", "-c", str(page)]
    try:
        result = subprocess.run([*argv, url], capture_output=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return None
    if result.returncode != 0:
        return None
    return result.stdout.decode(errors="replace")


def designators(url: str) -> list[str]:
    """The designators of VPD page 0x83 as iscsi-inq prints them."""
    text = inquiry(url, page=0x83)
    assert text is not None, f"{url} did not answer INQUIRY"
    return re.findall(r"Designator:\[(.*?)\]", text)


def unit_serial(url: str) -> str:
    text = inquiry(url, page=0x80)
    assert text is not None, f"{url} did not answer INQUIRY"
    match = re.search(r"Unit Serial Number:\[\s*(\S*)\]", text)
    assert match, text
    return match.group(1)


@dataclass(frozen=True)
class PerfResult:
    iops: float
    bytes_per_second: float


def sequential_read_rate(
    url: str, *, seconds: float, blocks: int = 512, depth: int = 16
) -> PerfResult:
    """Read ``url`` sequentially with iscsi-perf for ``seconds``; return its average rate.

    iscsi-perf runs until interrupted, so the measurement window is a fixed duration
    (this is a rate measurement, not synchronisation); it prints its running average
    once a second, and the last one is taken.
    """
    proc = subprocess.Popen(
        ["iscsi-perf", "-m", str(depth), "-b", str(blocks), url],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        out, _ = proc.communicate(timeout=seconds)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=10)
    averages = re.findall(rb"iops average (\d+)", out)
    assert averages, out.decode(errors="replace")
    iops = float(averages[-1])
    return PerfResult(iops=iops, bytes_per_second=iops * blocks * 512)
