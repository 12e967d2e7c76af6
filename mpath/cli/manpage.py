"""Man pages generated from the click commands: ``mpath(1)``, ``mpath-bench(1)``, ...

The command line is described once, in its ``--help``; the man pages are made from
the same click objects at build time (``make man``), so they cannot drift apart. One
page per command and per subcommand, named like git's (``mpath-rig-up``):

* NAME and SYNOPSIS from the command's one-line summary and usage;
* DESCRIPTION from its help text (a ``\\b`` paragraph is kept as written);
* OPTIONS from every option's help, with its default;
* EXAMPLES from the help's ``Examples:`` block;
* COMMANDS (groups) naming each subcommand's page.

Run ``python -m mpath.cli.manpage DIR`` to write every page into DIR.
"""

from __future__ import annotations

import inspect
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import click

from mpath import __version__

SECTION = "1"
MANUAL = "mpath manual"


@dataclass(frozen=True, slots=True)
class Page:
    """One man page: its name (``mpath-rig-up``) and roff text."""

    name: str
    text: str

    @property
    def filename(self) -> str:
        return f"{self.name}.{SECTION}"


def escape(text: str) -> str:
    """Text made safe for roff: backslashes and hyphens escaped, no line starting with
    a control character ('.' or "'")."""
    text = text.replace("\\", "\\e").replace("-", "\\-")
    lines = [("\\&" + line) if line[:1] in (".", "'") else line for line in text.split("\n")]
    return "\n".join(lines)


def _paragraphs(help_text: str) -> tuple[list[str], list[str]]:
    """The description in roff, and the example lines, from a click help text."""
    description: list[str] = []
    examples: list[str] = []
    for block in inspect.cleandoc(help_text).split("\n\n"):
        lines = block.split("\n")
        if lines and lines[0].strip() == "\b":
            verbatim = lines[1:]
            if verbatim and verbatim[0].strip().rstrip(":").lower() == "examples":
                examples += [line[2:] if line.startswith("  ") else line for line in verbatim[1:]]
                continue
            description += [".PP", ".nf", escape("\n".join(verbatim)), ".fi"]
        else:
            description += [".PP", escape(" ".join(line.strip() for line in lines))]
    return description, examples


def _summary(command: click.Command) -> str:
    return command.get_short_help_str(limit=200).rstrip(".")


def render(command: click.Command, words: list[str], date: str) -> Page:
    """The man page of ``command``, reached as ``mpath WORDS...``."""
    name = "-".join(words)
    parent: click.Context | None = None
    for word in words[:-1]:
        parent = click.Context(click.Group(word), info_name=word, parent=parent)
    ctx = click.Context(
        command, info_name=words[-1], parent=parent, help_option_names=["-h", "--help"]
    )
    out = [
        f'.TH "{name.upper()}" "{SECTION}" "{date}" "mpath {__version__}" "{MANUAL}"',
        ".SH NAME",
        f"{escape(name)} \\- {escape(_summary(command))}",
        ".SH SYNOPSIS",
        f".B {escape(' '.join(words))}",
        escape(" ".join(command.collect_usage_pieces(ctx))),
    ]
    description, examples = _paragraphs(command.help or "")
    out += [".SH DESCRIPTION", *description]
    if isinstance(command, click.Group):
        out.append(".SH COMMANDS")
        for sub_name in command.list_commands(ctx):
            sub = command.get_command(ctx, sub_name)
            if sub is None or sub.hidden:
                continue
            out += [
                ".TP",
                f".B {escape(sub_name)}",
                f"{escape(_summary(sub))}. See \\fB{escape(name)}\\-{escape(sub_name)}\\fR(1).",
            ]
    records = [
        p.get_help_record(ctx) for p in command.get_params(ctx) if isinstance(p, click.Option)
    ]
    options = [r for r in records if r is not None]
    if options:
        out.append(".SH OPTIONS")
        for opts, text in options:
            out += [".TP", f".B {escape(opts)}", escape(text) if text else ""]
    if examples:
        out += [".SH EXAMPLES", ".nf", ".RS 4", escape("\n".join(examples).rstrip()), ".RE", ".fi"]
    see = ["mpath(1)"] if words != ["mpath"] else []
    if len(words) > 2:
        see.insert(0, f"{'-'.join(words[:-1])}(1)")
    out += [
        ".SH SEE ALSO",
        escape(", ".join([*see, "and the documentation in /usr/share/doc/mpath"])),
    ]
    return Page(name, "\n".join(line for line in out if line != "") + "\n")


def pages(root: click.Command, date: str | None = None) -> Iterator[Page]:
    """Every page: the root command's, then each command's and subcommand's."""
    day = date or time.strftime(
        "%Y-%m-%d", time.gmtime(int(os.environ.get("SOURCE_DATE_EPOCH", time.time())))
    )

    def walk(command: click.Command, words: list[str]) -> Iterator[Page]:
        yield render(command, words, day)
        if isinstance(command, click.Group):
            ctx = click.Context(command, info_name=words[-1])
            for name in command.list_commands(ctx):
                sub = command.get_command(ctx, name)
                if sub is not None and not sub.hidden:
                    yield from walk(sub, [*words, name])

    yield from walk(root, ["mpath"])


def write_pages(directory: Path) -> list[Path]:
    """Write every page of ``mpath`` into ``directory``; returns the files written."""
    from mpath.cli import main

    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for page in pages(main):
        target = directory / page.filename
        target.write_text(page.text)
        written.append(target)
    return written


if __name__ == "__main__":  # python -m mpath.cli.manpage DIR
    if len(sys.argv) != 2:
        sys.exit("usage: python -m mpath.cli.manpage DIR")
    for path in write_pages(Path(sys.argv[1])):
        print(path)
