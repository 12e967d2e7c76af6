"""docs/dm-multipath.md explains every line dm-config writes, and the prio scale."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from mpath.dm.fragment import FragmentPath, Style, render
from mpath.dm.prio import PRIO_FAILED, PRIO_MAX, PRIO_MIN, Health
from mpath.dm.store import DEFAULT_STORE, Measurement

DOC = (Path(__file__).resolve().parents[2] / "docs" / "dm-multipath.md").read_text()


@pytest.mark.parametrize("style", list(Style))
def test_every_generated_keyword_is_explained(style: Style) -> None:
    paths = [FragmentPath("sdb", Measurement("sdb", Health.UP, "3a", 10.0), "sdb")]
    fragment = render(style=style, wwid="3a", paths=paths, vendor="V", product="P", alias="x")
    for line in fragment.text.splitlines():
        word = line.strip().split(" ", 1)[0]
        if word and not word.startswith("#") and word not in ("{", "}"):
            assert re.search(rf"^\| `[^|]*\b{word}\b", DOC, re.MULTILINE), word


def test_scale_and_store_are_documented() -> None:
    for row in (f"| {PRIO_FAILED} |", f"| {PRIO_MIN} |", f"| {PRIO_MIN}..{PRIO_MAX} |"):
        assert row in DOC
    assert str(DEFAULT_STORE) in DOC
    assert "MPATH_MEASUREMENTS" in DOC and "MPATH_SYSFS_ROOT" in DOC
