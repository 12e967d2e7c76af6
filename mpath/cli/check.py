"""``mpath check``: run one path check on each path and report its state."""

from __future__ import annotations

import asyncio
import sys

import click

from mpath.checkers import CHECKER_NAMES, DEFAULT_CHECK_TIMEOUT, DEFAULT_CHECKER
from mpath.checkers.oneshot import ANSWERED, check_paths
from mpath.checkers.settings import DEFAULT_LOGIN_TIMEOUT
from mpath.cli.common import emit_json, json_option, rig_option
from mpath.cli.config import config_file_option
from mpath.cli.paths import device_nodes
from mpath.config import load_config
from mpath.errors import UsageError


@click.command()
@click.argument("paths", nargs=-1)
@click.option(
    "--checker",
    type=click.Choice(CHECKER_NAMES),
    default=DEFAULT_CHECKER,
    show_default=True,
    help="tur: TEST UNIT READY; readsector0: READ of block 0; nop: iSCSI NOP-Out; "
    "directio: O_DIRECT read of a /dev node.",
)
@click.option(
    "--timeout",
    type=float,
    default=DEFAULT_CHECK_TIMEOUT,
    show_default=True,
    help="Seconds a check may take before the path is reported 'timeout'.",
)
@click.option(
    "--login-timeout",
    type=float,
    default=DEFAULT_LOGIN_TIMEOUT,
    show_default=True,
    help="Seconds the login before the check may take (iSCSI paths).",
)
@rig_option(
    "Check this rig's paths (when no PATH is given); with PATHs, the rig they must lead to."
)
@config_file_option
@json_option
def check(
    paths: tuple[str, ...],
    checker: str,
    timeout: float,
    login_timeout: float,
    rig_name: str | None,
    config_file: str | None,
    as_json: bool,
) -> None:
    """Check each PATH once and print its state (up, down, ghost, pending, timeout, ...).

    PATH is an iscsi:// URL (each gets its own login) or a /dev block device; with
    --rig and no PATH, the rig's paths. Paths are checked at the same time. CHAP
    credentials for the logins come from the configuration file (--config).

    Exit status: 0 when every path answered (up, ghost or pending), 1 when any path
    is down, timed out or could not be checked, 2 for bad input.

    \b
    Examples:
      mpath check iscsi://198.18.1.2/iqn.2026-11.org.mpath:rig.mpath/1
      mpath check URL1 URL2 --checker readsector0 --timeout 0.5 --json
      mpath check /dev/sdb --checker directio
      mpath check --rig mpath --checker nop
      mpath check URL1 --config /etc/mpath.toml      (CHAP from the file)
    """
    if not timeout > 0 or not login_timeout > 0:
        raise UsageError("--timeout and --login-timeout must be above 0 seconds")
    paths = device_nodes(paths)
    if len(set(paths)) != len(paths):
        raise UsageError("the same path is given twice")
    if paths:
        if rig_name:
            from mpath.cli.rigmatch import rig_of_paths

            rig_of_paths(paths, rig_name, what="--rig")
        urls = list(paths)
    elif rig_name:
        from mpath.rig.manager import RigManager

        urls = RigManager().load(rig_name).urls
    else:
        raise UsageError("give at least one PATH (iscsi://HOST/IQN/LUN or /dev/...) or --rig")
    config = load_config(config_file)
    outcomes = asyncio.run(check_paths(urls, checker, timeout, login_timeout, config))
    if as_json:
        emit_json([outcome.describe() for outcome in outcomes])
    else:
        for outcome in outcomes:
            result = outcome.result
            click.echo(
                f"{outcome.url}  {result.state.value}  {result.latency_ms:.3f} ms  {result.message}"
            )
    if any(outcome.result.state not in ANSWERED for outcome in outcomes):
        sys.exit(1)
