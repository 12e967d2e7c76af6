"""``mpath discover``: find the multipath devices behind iSCSI portals (or local disks)."""

from __future__ import annotations

import asyncio
import sys

import click

from mpath.cli.common import emit_json, json_option
from mpath.cli.config import config_file_option
from mpath.config import load_config
from mpath.discovery.iscsi import DEFAULT_TIMEOUT, DiscoveryResult, discover
from mpath.errors import UsageError
from mpath.units import format_size


@click.command("discover")
@click.argument("portals", nargs=-1)
@click.option(
    "--target",
    "targets",
    multiple=True,
    metavar="IQN",
    help="Log in only to this target (repeatable); a portal not offering it is an error.",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0.1, max=600),
    default=DEFAULT_TIMEOUT,
    show_default=True,
    help="Seconds each discovery session, login and identity probe may take.",
)
@click.option(
    "--block",
    is_flag=True,
    help="Instead of portals, group this host's block devices by identity.",
)
@config_file_option
@json_option
def discover_command(
    portals: tuple[str, ...],
    targets: tuple[str, ...],
    timeout: float,
    block: bool,
    config_file: str | None,
    as_json: bool,
) -> None:
    """Discover the multipath devices behind iSCSI PORTAL... (HOST[:PORT], port 3260).

    SendTargets runs on each portal; every target and portal it names is logged in
    to, its LUNs listed (REPORT LUNS) and identified, and paths are grouped into
    devices by WWID. CHAP credentials (one-way or mutual) come from the configuration
    file's [[chap]] entries (--config; docs/config.md), never from the command line.

    Every failure (unreachable portal, refused login, wrong CHAP secret, a --target
    a portal does not offer) is one line on stderr; the devices found elsewhere are
    still printed. Exit 0 when nothing failed, 1 when anything did, 2 for bad input.

    With --block, no portal is contacted: the host's block devices are listed with
    their identities (udev/sysfs, loop devices by backing file) and grouped.

    \b
    Examples:
      mpath discover 198.18.1.2 198.18.2.2
      mpath discover 198.18.1.2:3260 --json
      mpath discover 198.18.1.2 --target iqn.2026-11.org.mpath:rig.mpath
      mpath discover 198.18.1.2 --config /etc/mpath.toml      (CHAP from the file)
      mpath discover --block --json
    """
    if block:
        if portals or targets:
            raise UsageError("--block takes no PORTAL and no --target")
        _discover_block(as_json)
        return
    if not portals:
        raise UsageError("give at least one PORTAL (HOST[:PORT]), or --block")
    for portal in portals:
        _refuse_url(portal)
    config = load_config(config_file)
    result = asyncio.run(
        discover(list(portals), chap=config.chap, targets=targets, timeout=timeout)
    )
    if as_json:
        emit_json(result.describe())
    else:
        _print(result)
    for problem in result.problems:
        click.echo(f"mpath: error: {problem.line()}", err=True)
    if result.problems:
        sys.exit(1)


def _refuse_url(portal: str) -> None:
    """A URL where a portal is expected: say so, and which portal it names."""
    if "://" not in portal and not portal.startswith("/"):
        return
    hint = ""
    if portal.startswith("iscsi://"):
        from mpath.transports.urls import parse_iscsi_url

        try:
            hint = f"; this URL's portal is {parse_iscsi_url(portal).portal}"
        except UsageError:
            hint = ""
    raise UsageError(
        f"bad portal {portal!r}: a portal is HOST[:PORT] (e.g. 198.18.1.2 or "
        f"[fd00::1]:3260), not a URL or path; discover finds the URLs behind it{hint}"
    )


def _print(result: DiscoveryResult) -> None:
    for device in result.devices:
        click.echo(
            f"{device.wwid} {device.vendor},{device.product} size={format_size(device.size_bytes)} "
            f"block_size={device.block_size} max_commands={device.max_commands}"
        )
        for path in device.paths:
            click.echo(f"  {path.url}")
    if not result.devices and not result.problems:
        click.echo("no devices found", err=True)


def _discover_block(as_json: bool) -> None:
    from mpath.discovery.block import group_by_identity, list_block_devices

    devices = list_block_devices()
    groups = group_by_identity(devices)
    if as_json:
        emit_json(
            {
                "devices": [
                    {
                        "wwid": g.identity.wwid,
                        "vendor": g.identity.vendor,
                        "product": g.identity.product,
                        "size_bytes": g.devices[0].size_bytes,
                        "source": g.identity.source,
                        "detail": g.identity.detail,
                        "paths": [d.node for d in g.devices],
                    }
                    for g in groups
                ],
                "unidentified": [d.describe() for d in devices if d.identity is None],
            }
        )
        return
    for group in groups:
        ident = group.identity
        click.echo(
            f"{ident.wwid} {ident.vendor},{ident.product} "
            f"size={format_size(group.devices[0].size_bytes)} ({ident.detail})"
        )
        for device in group.devices:
            click.echo(f"  {device.node}")
    for device in devices:
        if device.identity is None:
            click.echo(f"{device.node}: {device.problem}", err=True)
