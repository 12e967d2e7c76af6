"""``mpath help [COMMAND...]``: the help of a command, as ``COMMAND --help`` prints it."""

from __future__ import annotations

import click

from mpath.errors import UsageError


@click.command("help")
@click.argument("command", nargs=-1)
@click.pass_context
def help_command(ctx: click.Context, command: tuple[str, ...]) -> None:
    """Show the help of COMMAND (a subcommand too: 'mpath help rig up').

    \b
    Examples:
      mpath help
      mpath help bench
      mpath help rig fault
    """
    parent = ctx.parent
    assert parent is not None
    group: click.Command = parent.command
    target_ctx = parent
    for depth, name in enumerate(command):
        if not isinstance(group, click.Group):
            raise UsageError(f"'{' '.join(command[:depth])}' has no subcommands")
        sub = group.get_command(target_ctx, name)
        if sub is None:
            known = ", ".join(group.list_commands(target_ctx))
            raise UsageError(f"no command {' '.join(command[: depth + 1])!r}; commands: {known}")
        target_ctx = click.Context(sub, info_name=name, parent=target_ctx)
        group = sub
    click.echo(target_ctx.get_help())
