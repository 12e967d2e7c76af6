"""Persistent WWID -> name bindings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mpath.daemon.bindings import Bindings
from mpath.errors import UsageError


def test_names_are_handed_out_in_order_and_survive_a_restart(tmp_path: Path) -> None:
    file = tmp_path / "state" / "bindings.json"
    first = Bindings(file)
    assert first.name_for("wwid-1", set()) == "mpatha"
    assert first.name_for("wwid-2", {"mpathb"}) == "mpathc"  # an alias holds mpathb
    assert first.name_for("wwid-1", set()) == "mpatha"
    again = Bindings(file)
    assert again.names == {"wwid-1": "mpatha", "wwid-2": "mpathc"}
    assert json.loads(file.read_text())["bindings"]["wwid-2"] == "mpathc"
    assert [p.name for p in file.parent.iterdir()] == ["bindings.json"]  # no temp file left


def test_suffixes_go_past_z(tmp_path: Path) -> None:
    bindings = Bindings(tmp_path / "b.json")
    names = [bindings.name_for(f"w{i}", set()) for i in range(28)]
    assert names[25:] == ["mpathz", "mpathaa", "mpathab"]


def test_a_foreign_file_is_refused(tmp_path: Path) -> None:
    file = tmp_path / "b.json"
    file.write_text('["not", "bindings"]')
    with pytest.raises(UsageError, match="not an mpath bindings file"):
        Bindings(file)
