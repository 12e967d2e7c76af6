"""The top-level group: lazy commands, the command list, ``help``, -v anywhere."""

from __future__ import annotations

import json
import logging
import subprocess
import sys

import click
import pytest
from click.testing import CliRunner

from mpath.cli import COMMANDS, main
from mpath.cli.common import MpathGroup


def _modules_after(*args: str) -> set[str]:
    """The mpath modules a fresh interpreter has imported after ``mpath ARGS``."""
    code = (
        "import sys, json\n"
        "from mpath.cli import main\n"
        "try:\n"
        f"    main({list(args)!r}, prog_name='mpath')\n"
        "except SystemExit:\n"
        "    pass\n"
        "sys.stderr.write(json.dumps(sorted(m for m in sys.modules if m.startswith('mpath'))))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(json.loads(done.stderr.strip().splitlines()[-1]))


def test_version_and_the_command_list_import_no_command() -> None:
    for args in (("--version",), ("--help",)):
        loaded = _modules_after(*args)
        assert not {m for m in loaded if m.startswith("mpath.cli.") and m != "mpath.cli.common"}


def test_the_prio_callout_imports_only_what_it_needs() -> None:
    loaded = _modules_after("prio", "--help")
    assert "mpath.cli.prio" in loaded
    heavy = {"mpath.rig.manager", "mpath.config", "mpath.filter.device", "mpath.nbd", "mpath.sim"}
    assert not loaded & heavy


def test_each_listed_line_is_the_commands_own_summary() -> None:
    assert isinstance(main, MpathGroup)
    loaded = dict(main.load_all())
    assert set(loaded) == set(COMMANDS)
    for name, command in loaded.items():
        first = (command.help or "").strip().splitlines()[0].rstrip(".").lower()
        summary = COMMANDS[name].short_help.rstrip(".").lower()
        shared = set(summary.split()) & set(first.split())
        assert shared, f"{name}: {summary!r} has nothing in common with {first!r}"
        assert len(summary) <= 45, f"{name}: the one-line summary is too long"


def test_help_command_prints_a_commands_help() -> None:
    runner = CliRunner()
    for args, expected in (
        (["help", "bench"], "mpath bench"),
        (["help", "rig", "up"], "mpath rig up"),
    ):
        result = runner.invoke(main, args, prog_name="mpath")
        assert result.exit_code == 0, result.output
        assert f"Usage: {expected}" in result.output
    assert "Commands:" in runner.invoke(main, ["help"], prog_name="mpath").output
    wrong = runner.invoke(main, ["help", "benhc"], prog_name="mpath")
    assert wrong.exit_code == 2
    assert "no command 'benhc'" in wrong.output


@pytest.mark.parametrize(
    ("args", "level"),
    [
        (["check", "nonsense"], logging.WARNING),
        (["-v", "check", "nonsense"], logging.INFO),
        (["check", "-v", "nonsense"], logging.INFO),
        (["check", "-vv", "nonsense"], logging.DEBUG),
        (["-v", "check", "--verbose", "nonsense"], logging.DEBUG),
        (["rig", "status", "-vv", "--name", "BAD NAME"], logging.DEBUG),
    ],
)
def test_verbose_counts_before_and_after_the_command(args: list[str], level: int) -> None:
    result = CliRunner().invoke(main, args, prog_name="mpath")
    assert result.exit_code == 2, result.output  # the bad input, after -v was counted
    assert logging.getLogger("mpath").level == level
    assert logging.getLogger("mpath").propagate is False


def test_every_command_accepts_verbose() -> None:
    assert isinstance(main, MpathGroup)

    def walk(command: click.Command) -> list[click.Command]:
        if isinstance(command, click.Group):
            return [c for sub in command.commands.values() for c in walk(sub)]
        return [command]

    for _, command in main.load_all():
        for leaf in walk(command):
            assert any("-v" in p.opts for p in leaf.params if isinstance(p, click.Option)), leaf


def test_every_command_has_examples_in_its_help() -> None:
    assert isinstance(main, MpathGroup)
    runner = CliRunner()

    def walk(prefix: list[str], command: click.Command) -> list[list[str]]:
        found = [prefix]
        if isinstance(command, click.Group):
            for name, sub in command.commands.items():
                found += walk([*prefix, name], sub)
        return found

    for name, command in main.load_all():
        for words in walk([name], command):
            result = runner.invoke(main, [*words, "--help"], prog_name="mpath")
            assert result.exit_code == 0, words
            assert "Examples:" in result.output, f"mpath {' '.join(words)} --help: no examples"
            assert f"mpath {' '.join(words)}" in result.output.split("Examples:")[1], words
