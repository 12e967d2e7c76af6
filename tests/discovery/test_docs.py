"""docs/discovery.md shows what the code prints."""

from __future__ import annotations

from pathlib import Path

from mpath.cli.show import render

DOC = Path(__file__).resolve().parents[2] / "docs" / "discovery.md"


def _output_of(command: str) -> list[str]:
    """The lines printed after ``$ command`` in a fenced block of the page."""
    text = DOC.read_text()
    start = text.index(f"$ {command}\n") + len(command) + 3
    return text[start : text.index("```", start)].splitlines()


def test_the_show_example_is_what_render_prints() -> None:
    lines = _output_of("mpath show /dev/loop0 /dev/loop1")
    path = {"state": "active", "checker": "up", "share": 0.5, "bytes": 0, "ios": 0}
    document = {
        "wwid": "1MPATH_loopfile-fe:0-20c0d6",
        "vendor": "LINUX",
        "product": "LOOP",
        "size_bytes": 64 * 1024 * 1024,
        "policy": "share",
        "policy_args": [],
        "max_commands": 64,
        "alias": None,
        "groups": [
            {
                "priority": 0,
                "status": "active",
                "paths": [{"url": "/dev/loop0", **path}, {"url": "/dev/loop1", **path}],
            }
        ],
    }
    assert render(document) == lines


def test_the_documented_commands_exist() -> None:
    from click.testing import CliRunner

    from mpath.cli import main

    for command in ("discover", "show"):
        result = CliRunner().invoke(main, [command, "--help"])
        assert result.exit_code == 0
        assert "Examples:" in result.stdout
        assert f"mpath {command}" in DOC.read_text()
