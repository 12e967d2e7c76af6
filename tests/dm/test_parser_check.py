"""multipath-tools' own parser (``multipath -t``) accepts generated fragments and
rejects broken ones, without touching the host's /etc."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mpath.dm.fragment import FragmentPath, Style, render
from mpath.dm.parser_check import ParserResult, check_fragment, unavailable_reason
from mpath.dm.prio import Health
from mpath.dm.store import Measurement

REASON = unavailable_reason()
pytestmark = pytest.mark.skipif(REASON is not None, reason=f"multipath -t cannot run: {REASON}")

WWID = "36001405aaaa"


def fragment(style: Style) -> str:
    paths = [
        FragmentPath(
            f"sd{n}", Measurement(f"sd{n}", Health.UP, WWID, mb, 3.0), f"sd{n}", None, devnum
        )
        for n, mb, devnum in (("b", 47.3, "8:16"), ("c", 188.0, "8:32"))
    ]
    return render(
        style=style,
        wwid=WWID,
        paths=paths,
        vendor="MPATH",
        product="RIG-LUN",
        alias="rig",
        header=["test fragment"],
    ).text


@pytest.fixture(autouse=True)
def host_etc_untouched() -> object:
    before = sorted(os.listdir("/etc"))
    mounts = Path("/proc/self/mountinfo").read_text()
    yield
    assert sorted(os.listdir("/etc")) == before
    assert not Path("/etc/multipath.conf").exists() or "multipath.conf" in before
    assert Path("/proc/self/mountinfo").read_text() == mounts


def check(text: str) -> ParserResult:
    result = check_fragment(text)
    assert result.command == ["multipath", "-t"]
    return result


@pytest.mark.parametrize("style", list(Style))
def test_generated_fragments_are_accepted_as_written(style: Style) -> None:
    text = fragment(style)
    result = check(text)
    assert result.accepted, result.complaints
    assert result.complaints == []
    kept = result.multipath_entry(WWID)
    assert kept is not None
    for line in text.split("multipaths {", 1)[1].splitlines():
        words = line.strip().split(None, 1)
        if len(words) == 2 and words[1].startswith('"'):
            assert kept[words[0]] == words[1].strip('"'), words[0]
    if style is Style.WEIGHTEDPATH:
        assert kept["prio_args"] == "devname ^sdb$ 30 ^sdc$ 100"
        assert 'vendor "^MPATH$"' in result.dump and 'detect_prio "no"' in result.dump


BROKEN = [
    # a real mistake: detect_prio belongs in devices/overrides, not multipaths
    (
        lambda t: t.replace(
            '\t\tprio "weightedpath"', '\t\tprio "weightedpath"\n\t\tdetect_prio "no"'
        ),
        "invalid keyword in the multipath section: detect_prio",
    ),
    (
        lambda t: t.replace("prio_args", "prio_arguments"),
        "invalid keyword in the multipath section: prio_arguments",
    ),
    (
        lambda t: t.replace('"group_by_prio"', '"group_by_speed"'),
        'invalid value for path_grouping_policy: "group_by_speed"',
    ),
    (lambda t: t.rstrip().removesuffix("}"), "missing '}'"),
    (lambda t: t.replace("multipaths {", "multipath_list {"), "invalid keyword"),
]


@pytest.mark.parametrize(("breaking", "complaint"), BROKEN)
def test_broken_fragments_are_rejected(breaking: object, complaint: str) -> None:
    text = fragment(Style.WEIGHTEDPATH)
    broken = breaking(text)  # type: ignore[operator]
    assert broken != text
    result = check(broken)
    assert not result.accepted
    assert any(complaint in line for line in result.complaints), result.complaints
    assert any("/etc/multipath.conf" in line for line in result.complaints)
