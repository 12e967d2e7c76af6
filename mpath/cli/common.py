"""Pieces every command shares: error translation, JSON output, option helpers."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from mpath.errors import MpathError


class MpathClickError(click.ClickException):
    """An MpathError on its way out: one line on stderr, exit 1 (the operation failed)."""

    exit_code = 1

    def show(self, file: Any = None) -> None:
        click.echo(f"mpath: error: {self.format_message()}", err=True, file=file)


class MpathClickUsageError(MpathClickError):
    """An MpathError caused by bad input: one line on stderr, exit 2."""

    exit_code = 2


def to_click_error(error: MpathError) -> MpathClickError:
    """Translate an MpathError into the click exception carrying its exit code."""
    cls = MpathClickUsageError if error.exit_code == 2 else MpathClickError
    return cls(str(error))


class MpathGroup(click.Group):
    """The top-level group: turns MpathError (and Ctrl-C) into clean exits."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except MpathError as error:
            raise to_click_error(error) from error
        except KeyboardInterrupt:
            click.echo("mpath: interrupted", err=True)
            sys.exit(130)


def emit_json(document: Any) -> None:
    """Print exactly one JSON document on stdout (the ``--json`` contract)."""
    click.echo(json.dumps(document, indent=2, sort_keys=False))


json_option = click.option(
    "--json", "as_json", is_flag=True, help="Print one JSON document on stdout (for scripts)."
)
