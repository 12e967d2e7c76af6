"""``mpath daemon`` (also ``mpathd``): multipath as a service (docs/daemon.md)."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import click

from mpath.cli.common import VERBOSITY_KEY, configure_logging, emit_json, json_option
from mpath.cli.config import config_file_option
from mpath.daemon.config import parse_metrics_address
from mpath.daemon.run import run_daemon
from mpath.errors import UsageError


@click.command("daemon")
@config_file_option
@click.option(
    "--listen-dir",
    metavar="DIR",
    default=None,
    help="Directory of the control socket and the NBD sockets (default: the "
    "configuration's [daemon] listen_dir, else /run/mpath).",
)
@click.option(
    "--metrics",
    metavar="HOST:PORT",
    default=None,
    help="Serve Prometheus metrics here (loopback only; port 0 picks one).",
)
@json_option
def daemon(
    config_file: str | None, listen_dir: str | None, metrics: str | None, as_json: bool
) -> None:
    """Run mpath as a service: own every LUN of the configuration, export each
    over NBD, and answer 'mpath ctl' on a control socket.

    LUNs come from the configuration's [daemon] section: 'portals' are discovered
    (every LUN behind them becomes a map) and [[daemon.maps]] name LUNs by their paths.
    Each map is exported on LISTEN_DIR/NAME.sock under the export name NAME (its alias,
    else a persistent binding such as mpatha). When ready it prints the control socket
    and the export URIs on stdout (with --json, one JSON document); logs go to stderr,
    one line per event (-v adds every path check and the selector's decisions).

    SIGHUP reloads the configuration without touching unchanged LUNs; SIGTERM or
    SIGINT stops (requests in flight finish, every LUN is flushed and closed). Under
    systemd it speaks the notify protocol (Type=notify, WatchdogSec).

    \b
    Examples:
      mpath daemon --config /etc/mpath.toml
      mpath daemon --listen-dir /tmp/mp --metrics 127.0.0.1:9586 --json
      mpath ctl --socket /tmp/mp/control.sock show maps
      nbdinfo --list 'nbd+unix:///?socket=/run/mpath/mpatha.sock'
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

    def ready(info: dict[str, Any]) -> None:
        if as_json:
            emit_json(info)
        else:
            click.echo(f"control {info['control_socket']}")
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
            on_ready=ready,
        )
    )
    if not clean:
        sys.exit(1)


def mpathd() -> None:
    """The ``mpathd`` console script: ``mpath daemon`` under its service name."""
    from mpath.cli import main

    main(["daemon", *sys.argv[1:]], prog_name="mpathd")
