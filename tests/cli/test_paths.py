"""The device-opening commands' shared parts: which settings the user really typed."""

from __future__ import annotations

import click
from click.testing import CliRunner

from mpath.cli.paths import command_line_overrides

NAMES = ("policy", "max_commands", "no_path_retry")


def test_command_line_overrides_only_reports_what_was_typed() -> None:
    seen: dict[str, object] = {}

    @click.command()
    @click.option("--policy", default="share")
    @click.option("--max-commands", type=int, default=None)
    @click.option("--no-path-retry", type=float, default=5.0, envvar="T_NPR")
    def command(**_: object) -> None:
        seen.update(command_line_overrides(click.get_current_context(), NAMES))

    runner = CliRunner()
    assert runner.invoke(command, ["--max-commands", "8"]).exit_code == 0
    assert seen == {"max_commands": 8}
    seen.clear()
    assert runner.invoke(command, ["--policy", "share"], env={"T_NPR": "2"}).exit_code == 0
    assert seen == {"policy": "share", "no_path_retry": 2.0}
