"""Pieces every command shares: error translation, lazy loading, logging, JSON output."""

from __future__ import annotations

import importlib
import json
import logging
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import click

from mpath.errors import MpathError

if TYPE_CHECKING:
    from click.shell_completion import CompletionItem

F = TypeVar("F", bound=Callable[..., Any])

#: The key of the verbosity count in the root context's ``meta``.
VERBOSITY_KEY = "mpath.verbosity"
#: What each -v adds (docs/cli.md, "Logging").
LEVELS = (logging.WARNING, logging.INFO, logging.DEBUG)
_HANDLER_NAME = "mpath-cli"


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


def configure_logging(verbosity: int) -> None:
    """Log mpath's records on stderr at the level ``verbosity`` (-v count) asks for.

    One handler on the ``mpath`` logger, replaced on every call, so a record is printed
    once however often this runs (-v before and after the command). Other libraries'
    loggers stay at warnings: asyncio's debug line about its event-loop selector is
    not a path selector decision.
    """
    level = LEVELS[min(max(verbosity, 0), len(LEVELS) - 1)]
    logger = logging.getLogger("mpath")
    for handler in list(logger.handlers):
        if handler.get_name() == _HANDLER_NAME:
            logger.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(
        logging.Formatter(
            "mpath: %(levelname)s: %(message)s" if level <= logging.DEBUG else "mpath: %(message)s"
        )
    )
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False


def _count_verbose(ctx: click.Context, _param: click.Parameter, value: int) -> None:
    if ctx.resilient_parsing:
        return
    root = ctx.find_root()
    root.meta[VERBOSITY_KEY] = root.meta.get(VERBOSITY_KEY, 0) + value
    configure_logging(root.meta[VERBOSITY_KEY])


def _verbose_param() -> click.Option:
    return click.Option(
        ["-v", "--verbose"],
        count=True,
        expose_value=False,
        callback=_count_verbose,
        help="More log detail on stderr (-v: path state changes, -vv: checks, selector).",
    )


def verbose_option(func: F) -> F:
    """``-v``/``--verbose``, counted across the group and the command."""
    params: list[click.Parameter] = getattr(func, "__click_params__", [])
    params.append(_verbose_param())
    func.__click_params__ = params  # type: ignore[attr-defined]
    return func


def add_verbose(command: click.Command) -> click.Command:
    """Give ``command`` (and a group's subcommands) the -v option, once."""
    if not any(isinstance(p, click.Option) and "-v" in p.opts for p in command.params):
        command.params.append(_verbose_param())
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            add_verbose(sub)
    return command


@dataclass(frozen=True, slots=True)
class CommandEntry:
    """One command of the top-level group: name, ``module:attribute``, one-line help."""

    name: str
    target: str
    short_help: str

    def load(self) -> click.Command:
        module_name, _, attribute = self.target.partition(":")
        command = getattr(importlib.import_module(module_name), attribute)
        if not isinstance(command, click.Command):
            raise TypeError(f"{self.target} is not a click command")
        return command


class MpathGroup(click.Group):
    """The top-level group: loads commands when they run, turns MpathError (and Ctrl-C)
    into clean exits, and gives every command -v."""

    def __init__(
        self, *args: Any, commands_table: dict[str, CommandEntry] | None = None, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.table: dict[str, CommandEntry] = dict(commands_table or {})

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*self.table, *self.commands})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in self.table:
            command = self.table[cmd_name].load()
            self.commands[cmd_name] = add_verbose(command)
        return self.commands.get(cmd_name)

    def load_all(self) -> list[tuple[str, click.Command]]:
        """Every command, loaded (man pages, completion and tests need them all)."""
        ctx = click.Context(self, info_name="mpath")
        loaded = ((name, self.get_command(ctx, name)) for name in self.list_commands(ctx))
        return [(name, cmd) for name, cmd in loaded if cmd is not None]

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The command list from the table's one-line helps: nothing is imported."""
        rows: Iterable[tuple[str, str]] = (
            (name, self.table[name].short_help if name in self.table else self._short(ctx, name))
            for name in self.list_commands(ctx)
        )
        listed = list(rows)
        if listed:
            with formatter.section("Commands"):
                formatter.write_dl(listed)

    def _short(self, ctx: click.Context, name: str) -> str:
        command = self.get_command(ctx, name)
        return command.get_short_help_str() if command else ""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except MpathError as error:
            raise to_click_error(error) from error
        except KeyboardInterrupt:
            click.echo("mpath: interrupted", err=True)
            sys.exit(130)


def complete_rig_names(
    _ctx: click.Context, _param: click.Parameter, incomplete: str
) -> list[CompletionItem]:
    """Shell completion of --rig/--name: the rigs on this host."""
    from click.shell_completion import CompletionItem

    from mpath.rig.manager import RigManager

    try:
        names = RigManager().names()
    except OSError:
        return []
    return [CompletionItem(n) for n in names if n.startswith(incomplete)]


def rig_option(help_text: str) -> Callable[[F], F]:
    """``--rig NAME`` (or ``$MPATH_RIG_NAME``) with completion of this host's rigs; the
    value arrives as ``rig_name``. Each command says in ``help_text`` what it does with
    the rig."""
    option: Callable[[F], F] = click.option(
        "--rig",
        "rig_name",
        shell_complete=complete_rig_names,
        default=None,
        envvar="MPATH_RIG_NAME",
        help=help_text,
    )
    return option


def emit_json(document: Any) -> None:
    """Print exactly one JSON document on stdout (the ``--json`` contract)."""
    click.echo(json.dumps(document, indent=2, sort_keys=False))


json_option = click.option(
    "--json", "as_json", is_flag=True, help="Print one JSON document on stdout (for scripts)."
)
