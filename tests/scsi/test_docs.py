"""docs/scsi.md embeds the sense table; it must be the table the code uses."""

from __future__ import annotations

from pathlib import Path

from mpath.scsi.classify import SENSE_TABLE, render_markdown_table

DOC = Path(__file__).resolve().parents[2] / "docs" / "scsi.md"


def _embedded_table() -> str:
    text = DOC.read_text()
    begin = text.index("<!-- sense-table:begin")
    begin = text.index("\n", begin) + 1
    end = text.index("<!-- sense-table:end -->")
    return text[begin:end].rstrip("\n") + "\n"  # a blank line may close the table


def test_docs_sense_table_matches_the_code() -> None:
    assert _embedded_table() == render_markdown_table(), (
        "docs/scsi.md is out of date: paste the output of "
        "mpath.scsi.classify.render_markdown_table() between the sense-table markers"
    )


def test_rendered_table_has_one_line_per_row() -> None:
    lines = render_markdown_table().splitlines()
    assert len(lines) == 2 + len(SENSE_TABLE)
    assert "`05/25/00` | ILLEGAL REQUEST | path-error" in render_markdown_table()
