"""The library's front door: open a multipath device the way every mpath command does.

:func:`open_device` is the one device opener. The CLI commands (bench, show, serve),
the NBD export and Python callers all come through it, so they get the same
behaviour: the configuration file applied, the blacklist honoured, and the paths
watched by the path checkers.

1. every path's device name (``sdb``, or the URL) is checked against the blacklist's
   ``devnode`` rules, and block paths' identities are compared before anything is
   opened (a clear error naming both identities when they differ);
2. every path logs in (transports from :func:`mpath.transports.open_transport`, with the
   configuration's CHAP credentials), and the first that does is asked who the LUN is:
   the WWID, vendor and product are only known now;
3. the blacklist's ``wwid`` and ``device`` rules are checked, and the device's settings
   resolved (command line, then ``[[multipaths]]``, ``[overrides]``, ``[[devices]]``,
   ``[defaults]``: docs/config.md);
4. the device is opened on the sessions already logged in (no second login; a path
   whose login failed starts failed and is retried by the monitor).

A blacklisted device is refused with :class:`~mpath.errors.UsageError` (exit 2 in the
CLI), naming the rule and where it is written.

    import asyncio
    from mpath.api import DeviceRequest, open_device

    async def main() -> None:
        opened = await open_device(DeviceRequest(["iscsi://198.18.1.2/IQN/1",
                                                  "iscsi://198.18.2.2/IQN/1"]))
        async with opened.device as device:
            await device.write(0, bytes(4096))
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

from mpath.config import Config, Resolution, load_config
from mpath.errors import DeviceError, IdentityMismatchError, UsageError
from mpath.filter.device import MultipathDevice
from mpath.filter.monitor import MonitorFactory
from mpath.scsi.probe import LunInfo, probe_lun
from mpath.transports import is_block_path, open_transport
from mpath.transports.base import Transport, TransportError


def devnode_name(path: str) -> str:
    """What the blacklist's ``devnode`` rules match: the kernel name (``sdb``) of a
    block device node (through symlinks), the URL of an iSCSI path."""
    if is_block_path(path):
        return os.path.basename(os.path.realpath(path))
    return path


@dataclass(frozen=True, slots=True)
class DeviceRequest:
    """What a command asks to open: paths, configuration file, typed settings, the
    policy's per-path arguments (one tuple per path; None: the policy's defaults), and
    one priority per path (path groups; None: one group)."""

    paths: list[str]
    config_file: str | None = None
    command_line: dict[str, object] = field(default_factory=dict)
    path_args: tuple[tuple[str, ...], ...] | None = None
    priorities: tuple[int, ...] | None = None


@dataclass(slots=True)
class OpenedDevice:
    """A device opened by :func:`open_device`, with how its settings were resolved."""

    device: MultipathDevice
    resolution: Resolution
    config: Config


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
    reserve: bool = True,
) -> OpenedDevice:
    """Open the multipath device over ``request.paths`` with its configured settings.

    Its paths are watched by the path checkers (``CheckerMonitor``) unless ``monitor``
    says otherwise. ``reserve=False`` opens without the configured ``reservation_key``:
    for commands that only look (``mpath show``), which must not register, preempt or
    release anything on a LUN another mpath process may be serving with that key.

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
        failed = {
            t: str(o) for t, o in zip(transports, outcomes, strict=True) if isinstance(o, Exception)
        }
        if monitor is None:
            # Commands watch their paths the way multipathd does: periodic checks of
            # idle paths, flap damping, failback (docs/checkers.md) -- with a 1 s base
            # interval and a 1 s login bound, so a restored path is back within seconds.
            from mpath.checkers.monitor import CheckerMonitor
            from mpath.checkers.settings import CheckerSettings

            monitor = CheckerMonitor.factory(
                CheckerSettings(polling_interval=1.0, login_timeout=1.0)
            )
        settings = resolution.device_settings()
        if request.path_args is not None:
            settings = replace(settings, path_args=request.path_args)
        if request.priorities is not None:
            settings = replace(settings, priorities=request.priorities)
        if not reserve and settings.reservation_key is not None:
            settings = replace(settings, reservation_key=None, fence_method="auto")
        device = await MultipathDevice.open(
            transports, settings, monitor=monitor, login_failures=failed
        )
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


__all__ = ["DeviceRequest", "OpenedDevice", "devnode_name", "open_device"]
