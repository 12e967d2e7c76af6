"""The multipath.conf fragment, line by line (multipath's own parser: test_parser_check)."""

from __future__ import annotations

import pytest

from mpath.dm.fragment import FragmentPath, Match, Style, ere_literal, render, weightedpath_args
from mpath.dm.prio import Health
from mpath.dm.store import Measurement
from mpath.errors import UsageError

WWID = "36001405aaaa"
URL1 = "iscsi://198.18.1.2/iqn.2026-11.org.mpath:rig.a/1"
URL2 = "iscsi://198.18.2.2/iqn.2026-11.org.mpath:rig.a/1"


def path(
    url: str,
    mb: float | None,
    name: str | None,
    hbtl: str | None = None,
    health: Health = Health.UP,
    devnum: str | None = None,
) -> FragmentPath:
    measurement = Measurement(url, health, WWID, mb, 3.0, 100, 0, 3.0, 0.0, "dm-config")
    return FragmentPath(url, measurement, name, hbtl, devnum)


PATHS = [
    path(URL1, 47.3, "sdb", "3:0:0:1", devnum="8:16"),
    path(URL2, 188.0, "sdc", "4:0:0:1", devnum="8:32"),
]


def test_weightedpath_fragment() -> None:
    fragment = render(
        style=Style.WEIGHTEDPATH,
        wwid=WWID,
        paths=PATHS,
        vendor="MPATH",
        product="RIG-LUN",
        alias="fast",
        header=["made by a test"],
    )
    text = fragment.text
    assert text.startswith("# made by a test\n")
    assert fragment.settings == {
        "wwid": WWID,
        "alias": "fast",
        "path_grouping_policy": "group_by_prio",
        "path_selector": "service-time 0",
        "prio": "weightedpath",
        "prio_args": "devname ^sdb$ 30 ^sdc$ 100",
        "failback": "immediate",
    }
    assert '\t\tprio_args "devname ^sdb$ 30 ^sdc$ 100"\n' in text
    assert 'devices {\n\tdevice {\n\t\tvendor "^MPATH$"\n\t\tproduct "^RIG-LUN$"\n' in text
    assert '\t\tdetect_prio "no"\n' in text
    assert [r.priority for r in fragment.rows] == [30, 100]
    # every non-comment line is configuration syntax; comments stand on their own lines
    for line in text.splitlines():
        assert line.lstrip().startswith("#") or "#" not in line.split('"')[0]


def test_hbtl_match_and_steps() -> None:
    fragment = render(style=Style.WEIGHTEDPATH, wwid=WWID, paths=PATHS, match=Match.HBTL, step=1)
    assert fragment.settings["prio_args"] == "hbtl ^3:0:0:1$ 25 ^4:0:0:1$ 100"
    assert "devices {" not in fragment.text  # vendor unknown: explained instead
    assert 'set detect_prio "no"' in fragment.text


def test_service_time_fragment_carries_throughputs_as_comments() -> None:
    fragment = render(style=Style.SERVICE_TIME, wwid=WWID, paths=PATHS)
    assert fragment.settings == {
        "wwid": WWID,
        "path_grouping_policy": "multibus",
        "path_selector": "service-time 0",
    }
    assert "#   service-time 0 2 2 8:16 1 25 8:32 1 100\n" in fragment.text
    assert [r.relative_throughput for r in fragment.rows] == [25, 100]
    assert "prio" not in fragment.settings


def test_failed_path_gets_0_and_needs_no_name() -> None:
    paths = [PATHS[1], path(URL1, None, None, health=Health.FAILED)]
    fragment = render(style=Style.WEIGHTEDPATH, wwid=WWID, paths=paths)
    assert fragment.settings["prio_args"] == "devname ^sdc$ 100"
    assert [r.priority for r in fragment.rows] == [100, 0]
    service = render(style=Style.SERVICE_TIME, wwid=WWID, paths=paths)
    assert "8:32 1 100 path2 1 0" in service.text


def test_unnamed_paths_are_refused_with_the_fix() -> None:
    paths = [path(URL1, 47.3, None), PATHS[1]]
    with pytest.raises(UsageError, match=r"unknown for: iscsi://198\.18\.1\.2.*--kernel-name"):
        render(style=Style.WEIGHTEDPATH, wwid=WWID, paths=paths)
    render(style=Style.SERVICE_TIME, wwid=WWID, paths=paths)  # names only go in comments


def test_names_are_anchored_and_escaped() -> None:
    assert ere_literal("cciss!c0d0") == "cciss!c0d0"
    assert ere_literal("a.b+c") == r"a\.b\+c"
    assert ere_literal('IBM "X"') == "IBM .X."
    rows = render(style=Style.SERVICE_TIME, wwid=WWID, paths=[path(URL1, 10.0, "sd.b")]).rows
    assert weightedpath_args(rows, Match.DEVNAME) == r"devname ^sd\.b$ 100"


def test_nothing_to_render() -> None:
    with pytest.raises(UsageError):
        render(style=Style.WEIGHTEDPATH, wwid=WWID, paths=[])
