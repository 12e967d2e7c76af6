"""``mpath serve``: export a multipath device over NBD (docs/nbd.md)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import signal
import sys
from collections.abc import Callable

import click

from mpath.cli.common import emit_json, json_option, rig_option
from mpath.cli.config import config_file_option
from mpath.cli.paths import (
    DeviceRequest,
    device_nodes,
    open_device,
    open_settings_options,
    request_from_context,
    resolve_paths,
)
from mpath.cli.rigmatch import rig_of_paths
from mpath.errors import DeviceError
from mpath.filter.device import MultipathDevice
from mpath.filter.provisioning import Provisioned
from mpath.nbd import (
    DEFAULT_PORT,
    ListenAddress,
    NbdServer,
    ServeSettings,
    check_listen_policy,
)
from mpath.rig.manager import RigManager

_DEFAULTS = ServeSettings()


def _loop_factory(name: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """asyncio's own loop (None), or uvloop's where it is installed."""
    if name == "asyncio":
        return None
    try:
        import uvloop  # optional: imported only when asked for
    except ImportError:
        raise click.UsageError(
            "--event-loop uvloop: uvloop is not installed (pip install 'mpath[fast]')"
        ) from None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


@click.command()
@click.argument("paths", nargs=-1)
@rig_option("Serve this rig's LUN over all its paths; with PATHs, the rig they must lead to.")
@click.option(
    "--listen",
    "listen",
    default=f"tcp:127.0.0.1:{DEFAULT_PORT}",
    show_default=True,
    metavar="unix:SOCKET|tcp:HOST:PORT",
    help="Where to listen. Port 0 picks a free port. Only loopback and Unix sockets.",
)
@click.option("--read-only", is_flag=True, help="Export read-only (writes get EPERM).")
@click.option(
    "--allow-remote",
    is_flag=True,
    help="Permit a non-loopback address (still refused: needs TLS, not implemented).",
)
@click.option(
    "--max-connections",
    type=click.IntRange(min=1),
    default=_DEFAULTS.max_connections,
    show_default=True,
    help="Clients served at once.",
)
@click.option(
    "--max-requests",
    type=click.IntRange(min=1),
    default=_DEFAULTS.max_requests,
    show_default=True,
    help="Requests in flight per client before the server stops reading from it.",
)
@click.option(
    "--shutdown-timeout",
    type=click.FloatRange(min=0),
    default=_DEFAULTS.shutdown_timeout,
    show_default=True,
    help="Seconds to let requests in flight finish on SIGINT/SIGTERM.",
)
@click.option(
    "--event-loop",
    "event_loop",
    type=click.Choice(["asyncio", "uvloop"]),
    default="asyncio",
    show_default=True,
    help="The event loop: uvloop (optional package, pip install 'mpath[fast]') spends "
    "less CPU per request (docs/nbd.md).",
)
@open_settings_options
@config_file_option
@json_option
def serve(
    paths: tuple[str, ...],
    rig_name: str | None,
    listen: str,
    read_only: bool,
    allow_remote: bool,
    max_connections: int,
    max_requests: int,
    shutdown_timeout: float,
    event_loop: str,
    config_file: str | None,
    as_json: bool,
    **settings_options: object,
) -> None:
    """Export the LUN behind PATH... as an NBD device, with mpath's path selection.

    Any NBD client (fio --ioengine=nbd, nbdcopy, nbdinfo, qemu-img, nbd-client) then
    reads and writes the LUN while mpath spreads I/O over the paths and fails over.
    When ready, the URI to connect to is printed on stdout (with --json, one JSON
    document); logs go to stderr. SIGINT or SIGTERM stops it cleanly: no new clients,
    requests in flight finish, the LUN is flushed, the paths are logged out.

    Only a Unix socket or a loopback address is served: the export has no TLS or
    authentication, so a network address is refused.

    \b
    Examples:
      mpath serve --rig mpath --listen unix:/run/mpath.sock
      mpath serve URL1 URL2 --listen tcp:127.0.0.1:10809 --policy round-robin
      mpath serve --rig mpath --listen tcp:127.0.0.1:0 --json
      nbdinfo nbd://127.0.0.1:10809
      nbdcopy disk.img 'nbd+unix:///?socket=/run/mpath.sock'
      fio --name=t --ioengine=nbd --uri=nbd://127.0.0.1:10809 --rw=randread --bs=4k
    """
    address = ListenAddress.parse(listen)
    check_listen_policy(address, allow_remote=allow_remote)
    paths = device_nodes(paths)
    if paths:
        rig = rig_of_paths(paths, rig_name, what="--rig") if rig_name else None
    else:
        rig = RigManager().load(rig_name) if rig_name else None
    urls = resolve_paths(paths, rig, block=True)
    request = request_from_context(click.get_current_context(), urls, config_file)
    with asyncio.Runner(loop_factory=_loop_factory(event_loop)) as runner:
        clean = runner.run(
            _serve(
                request,
                address,
                ServeSettings(
                    read_only=read_only,
                    max_connections=max_connections,
                    max_requests=max_requests,
                    shutdown_timeout=shutdown_timeout,
                ),
                as_json,
            )
        )
    if not clean:
        sys.exit(1)


async def _serve(
    request: DeviceRequest,
    address: ListenAddress,
    settings: ServeSettings,
    as_json: bool,
) -> bool:
    """Open the device, serve until a signal, then shut down; True when nothing was lost."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    signals = (signal.SIGINT, signal.SIGTERM)
    received: list[str] = []

    server: NbdServer | None = None

    def on_signal(signum: signal.Signals) -> None:
        received.append(signum.name)
        if len(received) > 1 and server is not None:
            click.echo(
                f"mpath serve: {signum.name} again: abandoning requests in flight "
                "(unacknowledged), then flush and close",
                err=True,
            )
            server.abort()
        stop.set()

    for signum in signals:
        loop.add_signal_handler(signum, on_signal, signum)
    try:
        device = await _open_or_stop(request, stop)
        if device is None:
            click.echo(f"mpath serve: {received[0]} while opening; stopped", err=True)
            return True
        try:
            lun = device.lun
            wwid = lun.wwid if lun is not None else ""
            description = (
                f"mpath: LUN {wwid} over {len(request.paths)} path(s), policy {device.policy}"
            )
            server = NbdServer(
                device,
                dataclasses.replace(settings, description=description),
                saving=Provisioned(device),
            )
            await server.start(address)
            try:
                _announce(server, device, request.paths, address, as_json)
                await stop.wait()
                click.echo(
                    f"mpath serve: {received[0]}: stopping (no new clients; requests in "
                    f"flight finish within {settings.shutdown_timeout:g} s, or signal again "
                    "to abandon them; then flush)",
                    err=True,
                )
            finally:
                clean = await server.shutdown()
            stats = server.stats
            click.echo(
                f"mpath serve: stopped after {stats.connections} connection(s), "
                f"{stats.requests} request(s), {stats.bytes_read} bytes read, "
                f"{stats.bytes_written} bytes written, {stats.errors} error(s), "
                f"{device.stats.failovers} failover(s)"
                + ("" if clean else f"; {stats.abandoned} request(s) abandoned or flush failed"),
                err=True,
            )
            return clean
        finally:
            await device.close()
    finally:
        for signum in signals:
            loop.remove_signal_handler(signum)


async def _open_or_stop(request: DeviceRequest, stop: asyncio.Event) -> MultipathDevice | None:
    """Open the device (with its configured settings) unless a signal arrives first."""
    opening = asyncio.ensure_future(_open(request))
    stopping = asyncio.ensure_future(stop.wait())
    await asyncio.wait({opening, stopping}, return_when=asyncio.FIRST_COMPLETED)
    stopping.cancel()
    if opening.done():
        return opening.result()
    opening.cancel()
    with contextlib.suppress(asyncio.CancelledError, DeviceError):
        await opening
    return None


async def _open(request: DeviceRequest) -> MultipathDevice:
    return (await open_device(request)).device


def _announce(
    server: NbdServer,
    device: MultipathDevice,
    urls: list[str],
    address: ListenAddress,
    as_json: bool,
) -> None:
    """The ready line: the URI on stdout (or one JSON document), details on stderr."""
    lun = device.lun
    if as_json:
        emit_json(
            {
                "uri": server.uri,
                "listen": str(
                    address
                    if server.port is None
                    else dataclasses.replace(address, port=server.port)
                ),
                "export_name": server.export.name,
                "size_bytes": device.size_bytes,
                "block_size": device.block_size,
                "read_only": server.settings.read_only,
                "wwid": lun.wwid if lun is not None else None,
                "policy": device.policy,
                "max_commands": device.max_commands,
                "provisioning": lun.provisioning.describe() if lun is not None else None,
                "paths": urls,
                "pid": os.getpid(),
            }
        )
    else:
        click.echo(server.uri)
    sys.stdout.flush()
    click.echo(
        f"mpath serve: exporting {device.size_bytes} bytes ({device.block_size}-byte blocks"
        f"{', read-only' if server.settings.read_only else ''}) over {len(urls)} path(s), "
        f"policy {device.policy}, at {server.uri}; SIGINT/SIGTERM stops",
        err=True,
    )
