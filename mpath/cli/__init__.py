"""The ``mpath`` command line (contract: docs/cli.md).

Each command group lives in its own module and only parses arguments, calls the
library and prints; errors raised as :class:`~mpath.errors.MpathError` become one line
on stderr and the exit code the contract gives (1 failed, 2 bad input).
"""

from __future__ import annotations

import logging

import click

from mpath import __version__
from mpath.cli.common import MpathGroup

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


@click.group(cls=MpathGroup, context_settings=CONTEXT_SETTINGS)
@click.version_option(__version__, "-V", "--version", prog_name="mpath")
@click.option(
    "-v", "--verbose", count=True, help="More log detail on stderr (-v: info, -vv: debug)."
)
def main(verbose: int) -> None:
    """mpath: multipath I/O over several paths to one SCSI/iSCSI LUN.

    \b
    Examples:
      mpath rig up --paths 2 --json      build a 2-path iSCSI test rig (root)
      mpath rig fault 1 down             cut path 1 of the rig
      mpath rig down                     remove the rig
    """
    level = (logging.WARNING, logging.INFO, logging.DEBUG)[min(verbose, 2)]
    logging.basicConfig(level=level, format="mpath: %(message)s")


def _register() -> None:
    from mpath.cli.bench import bench
    from mpath.cli.rig import rig

    main.add_command(rig)
    main.add_command(bench)
    from mpath.cli.simulate import simulate

    main.add_command(simulate)
    from mpath.cli.check import check

    main.add_command(check)
    from mpath.cli.config import config

    main.add_command(config)
    from mpath.cli.prio import prio

    main.add_command(prio)
    from mpath.cli.dm_config import dm_config

    main.add_command(dm_config)
    from mpath.cli.serve import serve

    main.add_command(serve)
    from mpath.cli.show import show

    main.add_command(show)
    from mpath.cli.discover import discover_command

    main.add_command(discover_command)


_register()
