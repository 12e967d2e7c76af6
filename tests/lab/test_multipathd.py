"""multipathd on mpath's advice (lab): the ``mpath dm-config`` fragment drives dm-multipath.

A LIO rig with a slow path 1 (16 mbit) and an unlimited path 2, open-iscsi sessions on
both; ``mpath dm-config`` measures the two /dev/sdX and writes a weightedpath fragment.
multipathd, started on that fragment, must show mpath's priorities per path, group the
paths by them, send I/O down the preferred (fast) path only, and move it to the other
group when that path is cut.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from mpath.cli import main
from mpath.lab import stack
from mpath.rig import RigManager
from mpath.units import parse_rate
from tests.conftest import unique_rig_name
from tests.lab.iscsi import Sessions, logged_in, sh

pytestmark = pytest.mark.lab

BASE = "defaults {\n\tuser_friendly_names no\n\tfind_multipaths no\n}\n"


#: What one read_through reads, in 512-byte sectors (4 MiB).
READ_SECTORS = 8192


def reads(disk: str) -> int:
    """Sectors read from ``disk`` so far (third field of /sys/block/X/stat).

    Sectors, not requests: udev and multipathd read a few sectors of each path on
    their own, which a count of requests cannot tell from the test's 4 MiB.
    """
    return int((Path("/sys/block") / os.path.basename(disk) / "stat").read_text().split()[2])


def read_through(device: str, skip_mib: int) -> None:
    sh("dd", f"if={device}", "of=/dev/null", "bs=64k", "count=64", f"skip={skip_mib * 16}",
       "iflag=direct", timeout=300)  # fmt: skip


@pytest.fixture(scope="module")
def sessions() -> Iterator[Sessions]:
    with logged_in(unique_rig_name("dm"), rates=[parse_rate("16mbit"), None]) as result:
        yield result


@pytest.fixture(scope="module")
def fragment(sessions: Sessions) -> Iterator[str]:
    result = CliRunner().invoke(main, ["dm-config", *sessions.disks, "--seconds", "2"])
    assert result.exit_code == 0, result.stderr
    print("MUST-SHOW dm-config:\n" + result.stdout)
    yield result.stdout


@pytest.fixture(scope="module")
def multipathd(fragment: str) -> Iterator[str]:
    """multipathd running on BASE + the fragment; yields the map's name (its WWID)."""
    (wwid,) = re.findall(r'wwid "(\w+)"', fragment)
    with stack.multipathd(BASE + fragment):
        stack.wait_for_map(wwid, "service-time", 2)
        yield wwid


def fragment_priorities(fragment: str) -> dict[str, int]:
    (args,) = re.findall(r'prio_args "devname (.*)"', fragment)
    words = args.split()
    return {words[i].strip("^$"): int(words[i + 1]) for i in range(0, len(words), 2)}


def test_multipathd_shows_mpaths_priorities_and_groups(
    sessions: Sessions, fragment: str, multipathd: str
) -> None:
    slow, fast = (os.path.basename(d) for d in sessions.disks)
    wanted = fragment_priorities(fragment)
    assert wanted[fast] == 100 and wanted[slow] < wanted[fast], fragment
    shown = sh("multipathd", "show", "paths", "format", "%d %p %t").stdout
    print("MUST-SHOW multipathd show paths:\n" + shown)
    seen = {line.split()[0]: int(line.split()[1]) for line in shown.splitlines()[1:]}
    assert seen == wanted
    topology = sh("multipath", "-ll", multipathd).stdout
    print("MUST-SHOW multipath -ll:\n" + topology)
    groups = re.findall(r"prio=(\d+) status=\w+\n[| ]\s+`- \S+ (\w+)", topology)
    assert sorted((int(p), d) for p, d in groups) == sorted((p, d) for d, p in wanted.items())


def test_io_goes_to_the_preferred_path_and_moves_when_it_is_cut(
    sessions: Sessions, multipathd: str
) -> None:
    slow, fast = sessions.disks
    mapper = f"/dev/mapper/{multipathd}"
    before = reads(slow), reads(fast)
    read_through(mapper, 0)
    after = reads(slow), reads(fast)
    assert after[1] - before[1] >= READ_SECTORS, (before, after)
    # The slow path still sees some reads of its own (multipathd's directio checker,
    # udev probing the paths): far fewer than the read itself.
    assert after[0] - before[0] < READ_SECTORS // 4, (before, after)
    manager = RigManager()
    manager.fault(sessions.rig.name, 2, "down")
    try:
        before = after
        read_through(mapper, 4)
        after = reads(slow), reads(fast)
        shown = sh("multipathd", "show", "paths", "format", "%d %t %T").stdout
        print("MUST-SHOW after cutting path 2:\n" + shown)
        assert after[0] - before[0] >= READ_SECTORS, (before, after)
        assert re.search(rf"{os.path.basename(fast)}\s+failed", shown), shown
    finally:
        manager.fault(sessions.rig.name, 2, "clear")
