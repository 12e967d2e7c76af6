"""The ``mpath`` command line (contract: docs/cli.md).

Each command lives in its own module and only parses arguments, calls the library and
prints; errors raised as :class:`~mpath.errors.MpathError` become one line on stderr
and the exit code the contract gives (1 failed, 2 bad input).

Commands are imported only when they run (:class:`~mpath.cli.common.MpathGroup`
loads them from :data:`COMMANDS`): ``mpath prio`` is a dm-multipath callout started
for every path, and must not pay for importing the rig, the NBD server and the
configuration schema first.
"""

from __future__ import annotations

import click

from mpath import __version__
from mpath.cli.common import CommandEntry, MpathGroup, verbose_option

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}

#: Every command: its name, where it lives, and the one line ``mpath --help`` shows
#: for it (kept here so listing the commands imports none of them; a test checks each
#: line against the command's own help).
COMMANDS: dict[str, CommandEntry] = {
    entry.name: entry
    for entry in (
        CommandEntry("bench", "mpath.cli.bench:bench", "Drive I/O through mpath and measure it."),
        CommandEntry("check", "mpath.cli.check:check", "Check each path once and print its state."),
        CommandEntry("config", "mpath.cli.config:config", "Inspect and check the configuration."),
        CommandEntry("ctl", "mpath.cli.ctl:ctl", "Ask or tell a running mpath daemon."),
        CommandEntry("daemon", "mpath.cli.daemon:daemon", "Run mpath as a service (many LUNs)."),
        CommandEntry(
            "discover", "mpath.cli.discover:discover_command", "Find the LUNs behind portals."
        ),
        CommandEntry(
            "dm-config", "mpath.cli.dm_config:dm_config", "Print a multipath.conf fragment."
        ),
        CommandEntry("help", "mpath.cli.help:help_command", "Show the help of a command."),
        CommandEntry("prio", "mpath.cli.prio:prio", "Print a path's priority (dm callout)."),
        CommandEntry("rig", "mpath.cli.rig:rig", "Build and control a real iSCSI test rig."),
        CommandEntry("serve", "mpath.cli.serve:serve", "Export the LUN as an NBD device."),
        CommandEntry("show", "mpath.cli.show:show", "Show one multipath device's topology."),
        CommandEntry(
            "simulate", "mpath.cli.simulate:simulate", "Run the selectors on simulated paths."
        ),
    )
}


@click.group(cls=MpathGroup, commands_table=COMMANDS, context_settings=CONTEXT_SETTINGS)
@click.version_option(__version__, "-V", "--version", prog_name="mpath")
@verbose_option
def main() -> None:
    """mpath: multipath I/O over several paths to one SCSI/iSCSI LUN.

    -v (here or after the command) logs per-path state changes; -vv adds every path
    check and the selector's decisions (docs/cli.md, "Logging").

    \b
    Examples:
      mpath rig up --paths 2 --json      build a 2-path iSCSI test rig (root)
      mpath bench --seconds 5 --fault 2:1:down
                                         I/O on the rig's paths; cut path 1 at 2 s
      mpath help bench                   the help of one command
      mpath rig down                     remove the rig
    """
