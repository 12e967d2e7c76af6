"""Paths and devices for the commands that open a multipath device (bench, show, ...).

A path is an ``iscsi://HOST[:PORT]/TARGET-IQN/LUN`` URL or a block device node
``/dev/...``; :func:`open_transport` picks the transport for it. :func:`open_device`
is how a command opens a device with the configuration file applied:

1. every path's device name (``sdb``, or the URL) is checked against the blacklist's
   ``devnode`` rules, and block paths' identities are compared before anything is
   opened (a clear error naming both identities when they differ);
2. every path logs in, and the first that does is asked who the LUN is
   (:func:`~mpath.scsi.probe.probe_lun`): the WWID, vendor and product are only known
   now;
3. the blacklist's ``wwid`` and ``device`` rules are checked, and the device's settings
   resolved (command line, then ``[[multipaths]]``, ``[overrides]``, ``[[devices]]``,
   ``[defaults]``: docs/config.md);
4. the device is opened on the sessions already logged in (no second login).

A blacklisted device is refused with exit 2, naming the rule and where it is written.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import click
from click.core import ParameterSource

from mpath.config import Config, Resolution, load_config
from mpath.errors import DeviceError, IdentityMismatchError, UsageError
from mpath.filter.device import MultipathDevice
from mpath.filter.monitor import MonitorFactory
from mpath.rig.model import Rig
from mpath.scsi.probe import LunInfo, probe_lun
from mpath.selectors import DEFAULT_POLICY, SELECTOR_NAMES
from mpath.settings import DEFAULT_NO_PATH_RETRY
from mpath.transports import is_block_path, open_transport
from mpath.transports.base import ScsiResult, Transport, TransportError

F = TypeVar("F", bound=Callable[..., Any])

#: The settings options' parameter names (what :func:`command_line_overrides` reads).
SETTING_OPTIONS = ("policy", "max_commands", "no_path_retry")


def open_settings_options(func: F) -> F:
    """The options every device-opening command takes (policy and failure handling)."""
    options = [
        click.option(
            "--policy",
            type=click.Choice(SELECTOR_NAMES),
            default=DEFAULT_POLICY,
            show_default=True,
            help="Path selection policy (docs/selectors.md).",
        ),
        click.option(
            "--max-commands",
            type=int,
            default=None,
            help="The LUN's cap on outstanding commands (default: from the target, else 64).",
        ),
        click.option(
            "--no-path-retry",
            type=float,
            default=DEFAULT_NO_PATH_RETRY,
            show_default=True,
            help="Seconds I/O waits for a path when all have failed (0: fail at once).",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def resolve_paths(paths: tuple[str, ...], rig: Rig | None, *, block: bool = False) -> list[str]:
    """The paths to open: as given, or the rig's when none are given.

    ``block`` allows block device nodes (commands that open devices through
    :func:`open_device`); a node must be a block device, and one device given twice
    (also through a symlink) is refused.
    """
    if not paths:
        if rig is None:
            raise UsageError("give at least one PATH (iscsi://HOST/IQN/LUN or /dev/...) or --rig")
        return list(rig.urls)
    seen: dict[object, str] = {}
    for path in paths:
        if is_block_path(path):
            if not block:
                raise UsageError(
                    f"{path}: block-device paths are not supported by this command; "
                    "give iscsi:// URLs"
                )
            from mpath.sysfs.identity import resolve_node

            number = resolve_node(path)
            key: object = (number.major, number.minor)
        elif path.startswith("iscsi://"):
            key = path
        else:
            raise UsageError(
                f"bad path {path!r}: expected iscsi://HOST[:PORT]/TARGET-IQN/LUN or /dev/NODE"
            )
        if key in seen:
            raise UsageError(
                "the same path is given twice"
                + (f" ({seen[key]} and {path})" if seen[key] != path else "")
            )
        seen[key] = path
    return list(paths)


def devnode_name(path: str) -> str:
    """What the blacklist's ``devnode`` rules match: the kernel name (``sdb``) of a
    block device node (through symlinks), the URL of an iSCSI path."""
    if is_block_path(path):
        return os.path.basename(os.path.realpath(path))
    return path


def command_line_overrides(ctx: click.Context, names: Sequence[str]) -> dict[str, object]:
    """The settings the user gave on this command line (or via an envvar).

    Options always have a value in click, so "given" must be asked of click itself;
    defaults click filled in are left out, so the configuration file can supply them.
    """
    given: dict[str, object] = {}
    for name in names:
        source = ctx.get_parameter_source(name)
        if source in (ParameterSource.COMMANDLINE, ParameterSource.ENVIRONMENT):
            value = ctx.params.get(name)
            if value is not None:
                given[name] = value
    return given


@dataclass(frozen=True, slots=True)
class DeviceRequest:
    """What a command asks to open: paths, configuration file, typed settings."""

    paths: list[str]
    config_file: str | None = None
    command_line: dict[str, object] = field(default_factory=dict)

    @classmethod
    def from_context(
        cls, ctx: click.Context, paths: list[str], config_file: str | None
    ) -> DeviceRequest:
        """The request of a click command using :func:`open_settings_options`: only the
        settings the user really typed override the configuration file."""
        typed = command_line_overrides(ctx, [n for n in SETTING_OPTIONS if n in ctx.params])
        return cls(paths=paths, config_file=config_file, command_line=typed)


@dataclass(slots=True)
class OpenedDevice:
    """A device opened by :func:`open_device`, with how its settings were resolved."""

    device: MultipathDevice
    resolution: Resolution
    config: Config


class _FailedOnce:
    """A transport whose first login already failed during :func:`open_device`.

    The device's own first login attempt gets that failure at once instead of waiting
    out a second login timeout; later attempts (recovery) log in for real.
    """

    def __init__(self, transport: Transport, error: TransportError) -> None:
        self._transport = transport
        self._error: TransportError | None = error

    @property
    def url(self) -> str:
        return self._transport.url

    @property
    def connected(self) -> bool:
        return self._transport.connected

    @property
    def max_commands(self) -> int | None:
        return self._transport.max_commands

    async def connect(self) -> None:
        error, self._error = self._error, None
        if error is not None:
            raise error
        await self._transport.connect()

    async def execute(
        self,
        cdb: bytes,
        *,
        data_out: bytes | memoryview | None = None,
        data_in_length: int = 0,
    ) -> ScsiResult:
        return await self._transport.execute(cdb, data_out=data_out, data_in_length=data_in_length)

    async def close(self) -> None:
        await self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


def _check_block_identities(paths: Sequence[str]) -> None:
    """Refuse block paths of different identities before opening any of them, naming
    both identities (the WWID alone says little about a loop device)."""
    from mpath.sysfs.identity import identify

    block = [p for p in paths if is_block_path(p)]
    if len(block) < 2:
        return
    first = identify(block[0])
    for path in block[1:]:
        other = identify(path)
        if other.wwid != first.wwid:
            raise IdentityMismatchError(block[0], first.describe(), path, other.describe())


def _refuse_blacklisted(config: Config, paths: Sequence[str], lun: LunInfo | None) -> None:
    for path in paths:
        reason = config.blacklist_reason(devnode=devnode_name(path))
        if reason is not None:
            raise UsageError(f"{path}: blacklisted: {reason}")
    if lun is not None:
        reason = config.blacklist_reason(wwid=lun.wwid, vendor=lun.vendor, product=lun.product)
        if reason is not None:
            raise UsageError(f"LUN {lun.wwid} ({lun.vendor},{lun.product}): blacklisted: {reason}")


async def open_device(
    request: DeviceRequest,
    *,
    monitor: MonitorFactory | None = None,
    transport_factory: Callable[[str, Config], Transport] | None = None,
) -> OpenedDevice:
    """Open the multipath device over ``request.paths`` with its configured settings.

    Its paths are watched by the path checkers (``CheckerMonitor``) unless ``monitor``
    says otherwise.

    Raises :class:`UsageError` (exit 2) for a blacklisted path or LUN, a bad or
    missing configuration file, or block paths of different identities;
    :class:`DeviceError` (exit 1) when no path can be opened.
    """
    config = load_config(request.config_file)
    _refuse_blacklisted(config, request.paths, None)
    await asyncio.to_thread(_check_block_identities, request.paths)
    factory = transport_factory or (lambda path, cfg: open_transport(path, config=cfg))
    transports = [factory(path, config) for path in request.paths]
    try:
        outcomes = await asyncio.gather(*(t.connect() for t in transports), return_exceptions=True)
        for outcome in outcomes:
            if isinstance(outcome, BaseException) and not isinstance(outcome, TransportError):
                raise outcome
        lun = await _probe_first(transports, outcomes)
        _refuse_blacklisted(config, (), lun)
        resolution = config.resolve(
            wwid=lun.wwid,
            vendor=lun.vendor,
            product=lun.product,
            command_line=request.command_line,
        )
        paths: list[Transport] = [
            _FailedOnce(t, o) if isinstance(o, TransportError) else t
            for t, o in zip(transports, outcomes, strict=True)
        ]
        if monitor is None:
            # Commands watch their paths the way multipathd does: periodic checks of
            # idle paths, flap damping, failback (docs/checkers.md) -- with a 1 s base
            # interval and a 1 s login bound, so a restored path is back within seconds.
            from mpath.checkers.monitor import CheckerMonitor
            from mpath.checkers.settings import CheckerSettings

            monitor = CheckerMonitor.factory(
                CheckerSettings(polling_interval=1.0, login_timeout=1.0)
            )
        device = await MultipathDevice.open(paths, resolution.device_settings(), monitor=monitor)
    except BaseException:
        for transport in transports:
            with contextlib.suppress(Exception):
                await transport.close()
        raise
    return OpenedDevice(device, resolution, config)


async def _probe_first(transports: Sequence[Transport], outcomes: Sequence[object]) -> LunInfo:
    """The LUN as the first path that logged in (and answers) reports it."""
    failures: list[str] = []
    for transport, outcome in zip(transports, outcomes, strict=True):
        if isinstance(outcome, TransportError):
            failures.append(str(outcome))
            continue
        try:
            return await probe_lun(transport)
        except (TransportError, DeviceError) as exc:
            failures.append(str(exc))
    raise DeviceError(f"no path could be opened: {'; '.join(failures)}")
