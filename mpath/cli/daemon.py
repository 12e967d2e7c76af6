"""``mpath daemon`` (also ``mpathd``): multipath as a service (docs/daemon.md)."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import click

from mpath.cli.common import VERBOSITY_KEY, configure_logging, emit_json, json_option
from mpath.cli.config import config_file_option
from mpath.daemon.config import parse_metrics_address, parse_nbd_tcp
from mpath.daemon.run import run_daemon
from mpath.errors import UsageError


@click.command("daemon")
@config_file_option
@click.option(
    "--listen-dir",
    metavar="DIR",
    default=None,
    help="Directory of the control socket control.sock and the NBD socket nbd.sock "
    "(default: the configuration's [daemon] listen_dir, else /run/mpath).",
)
@click.option(
    "--nbd-tcp",
    metavar="HOST:PORT",
    default=None,
    help="Serve the NBD exports on this loopback TCP address as well (loopback only; "
    "port 0 picks one; default: the configuration's [daemon] nbd_tcp, else none).",
)
@click.option(
    "--metrics",
    metavar="HOST:PORT",
    default=None,
    help="Serve Prometheus metrics here (loopback only; port 0 picks one).",
)
@json_option
def daemon(
    config_file: str | None,
    listen_dir: str | None,
    nbd_tcp: str | None,
    metrics: str | None,
    as_json: bool,
) -> None:
    """Run mpath as a service: own every LUN of the configuration, export each
    over NBD, and answer 'mpath ctl' on a control socket.

    LUNs come from the configuration's [daemon] section: 'portals' are discovered
    (every LUN behind them becomes a map) and [[daemon.maps]] name LUNs by their paths.
    One NBD server on LISTEN_DIR/nbd.sock (and on loopback TCP with --nbd-tcp) serves
    every map as an export named after it (its alias, else a persistent binding such
    as mpatha); 'nbdinfo --list' names them all. When ready it prints the control
    socket, the NBD server's URIs and each map's export URI on stdout (with --json,
    one JSON document); logs go to stderr, one line per event (-v adds every path
    check and the selector's decisions).

    SIGHUP reloads the configuration without touching unchanged LUNs; SIGTERM or
    SIGINT stops (requests in flight finish, every LUN is flushed and closed). Under
    systemd it speaks the notify protocol (Type=notify, WatchdogSec).

    \b
    Examples:
      mpath daemon --config /etc/mpath.toml
      mpath daemon --listen-dir /tmp/mp --metrics 127.0.0.1:9586 --json
      mpath daemon --nbd-tcp 127.0.0.1:10809
      mpath ctl --socket /tmp/mp/control.sock show maps
      nbdinfo --list 'nbd+unix:///?socket=/run/mpath/nbd.sock'
      nbdcopy disk.img 'nbd+unix:///mpatha?socket=/run/mpath/nbd.sock'
      kill -HUP $(pidof mpathd)          # reload
    """
    # A service logs every event (path failed, reinstated, map reloaded) by default;
    # -v adds each check and the selector's decisions.
    root = click.get_current_context().find_root()
    configure_logging(1 + int(root.meta.get(VERBOSITY_KEY, 0)))
    address = None
    if metrics is not None:
        try:
            address = parse_metrics_address(metrics)
        except ValueError as exc:
            raise UsageError(f"--metrics: {exc}") from None
    tcp = None
    if nbd_tcp is not None:
        try:
            tcp = parse_nbd_tcp(nbd_tcp)
        except ValueError as exc:
            raise UsageError(f"--nbd-tcp: {exc}") from None

    def ready(info: dict[str, Any]) -> None:
        if as_json:
            emit_json(info)
        else:
            click.echo(f"control {info['control_socket']}")
            for uri in info["nbd"]:
                click.echo(f"nbd {uri}")
            for name, uri in info["maps"].items():
                click.echo(f"{name} {uri}")
            if info["metrics"]:
                click.echo(f"metrics {info['metrics']}")
        sys.stdout.flush()

    clean = asyncio.run(
        run_daemon(
            config_file,
            listen_dir=Path(listen_dir).absolute() if listen_dir else None,
            metrics=address,
            nbd_tcp=tcp,
            on_ready=ready,
        )
    )
    if not clean:
        sys.exit(1)


def mpathd() -> None:
    """The ``mpathd`` console script: ``mpath daemon`` under its service name."""
    from mpath.cli import main

    main(["daemon", *sys.argv[1:]], prog_name="mpathd")
