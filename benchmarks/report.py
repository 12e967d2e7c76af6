"""Writing a benchmark's section of docs/benchmarks.md in place.

Each benchmark owns one section, delimited by HTML comments, and rewrites only that,
so running one benchmark never clobbers another's figures.
"""

from __future__ import annotations

from pathlib import Path

DOC = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"


def replace_section(name: str, markdown: str, doc: Path = DOC) -> None:
    """Put ``markdown`` between the ``name`` markers (appended if not there yet)."""
    begin, end = f"<!-- begin {name} -->", f"<!-- end {name} -->"
    text = doc.read_text() if doc.exists() else "# Benchmarks\n"
    block = f"{begin}\n{markdown.rstrip()}\n{end}"
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        _, tail = rest.split(end, 1)
        text = head + block + tail
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    doc.write_text(text)
