"""Shell completion through click: commands, choices, rig names; bash and zsh scripts."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

RUN = [sys.executable, "-c", "from mpath.cli import main; main(prog_name='mpath')"]


def complete(words: str, env: dict[str, str] | None = None) -> list[str]:
    """What bash would be offered after typing ``words`` (the last one incomplete)."""
    count = len(words.split()) - (0 if words.endswith(" ") else 1)
    done = subprocess.run(
        RUN,
        env={
            **os.environ,
            **(env or {}),
            "_MPATH_COMPLETE": "bash_complete",
            "COMP_WORDS": words,
            "COMP_CWORD": str(count),
        },
        capture_output=True,
        text=True,
        check=True,
    )
    return [line.split(",", 1)[1] for line in done.stdout.splitlines()]


def test_commands_subcommands_options_and_choices_complete() -> None:
    assert complete("mpath ri") == ["rig"]
    assert complete("mpath rig fault 1 d") == ["down", "drop"]
    assert complete("mpath simulate --policy-") == ["--policy-arg"]
    assert complete("mpath bench --policy s") == ["share", "service-time"]


def test_rig_names_complete_from_the_rigs_on_this_host(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("alpha", "beta"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "state.json").write_text("{}")
    env = {"MPATH_RIG_DIR": str(tmp_path)}
    assert complete("mpath bench --rig ", env) == ["alpha", "beta"]
    assert complete("mpath rig down --name b", env) == ["beta"]


@pytest.mark.parametrize(
    ("shell", "marker"), [("bash", "complete -o nosort -F"), ("zsh", "#compdef mpath")]
)
def test_the_completion_scripts_are_generated(shell: str, marker: str) -> None:
    done = subprocess.run(
        RUN,
        env={**os.environ, "_MPATH_COMPLETE": f"{shell}_source"},
        capture_output=True,
        text=True,
        check=True,
    )
    assert marker in done.stdout
