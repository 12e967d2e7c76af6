"""Man pages from the click commands: one per command, valid roff, man renders them."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from mpath.cli import COMMANDS, main
from mpath.cli.manpage import escape, pages, write_pages


def test_there_is_a_page_for_every_command_and_subcommand(tmp_path: Path) -> None:
    written = {p.name for p in write_pages(tmp_path)}
    expected = {"mpath.1", *(f"mpath-{name}.1" for name in COMMANDS)}
    expected |= {f"mpath-rig-{sub}.1" for sub in ("up", "down", "status", "list", "fault")}
    assert expected <= written


def test_a_page_has_the_commands_options_examples_and_usage() -> None:
    page = next(p for p in pages(main, date="2026-01-01") if p.name == "mpath-bench")
    text = page.text
    assert text.startswith('.TH "MPATH-BENCH" "1" "2026-01-01" "mpath ')
    for section in ("NAME", "SYNOPSIS", "DESCRIPTION", "OPTIONS", "EXAMPLES", "SEE ALSO"):
        assert f"\n.SH {section}\n" in text
    assert ".B \\-\\-fault T:INDEX:ACTION" in text
    assert "mpath bench \\-\\-rig mpath \\-\\-seconds 10" in text
    assert "[PATHS]" in text  # the synopsis


def test_escape_keeps_roff_control_characters_out_of_line_starts() -> None:
    assert escape(".hidden\n'quoted\nC:\\path -x") == "\\&.hidden\n\\&'quoted\nC:\\epath \\-x"


@pytest.mark.skipif(shutil.which("groff") is None, reason="groff is not installed")
def test_every_page_is_clean_roff_and_man_renders_bench(tmp_path: Path) -> None:
    for page in write_pages(tmp_path):
        checked = subprocess.run(
            ["groff", "-man", "-ww", "-z", str(page)], capture_output=True, text=True
        )
        assert checked.returncode == 0 and checked.stderr == "", (page, checked.stderr)
    if shutil.which("man") is None:
        return
    rendered = subprocess.run(
        ["man", "-l", str(tmp_path / "mpath-bench.1")],
        capture_output=True,
        text=True,
        env={**os.environ, "MANWIDTH": "100", "MANPAGER": "cat", "PAGER": "cat"},
        check=True,
    ).stdout
    assert "MPATH-BENCH(1)" in rendered
    assert "--fault T:INDEX:ACTION" in rendered.replace("\u2010", "-")
