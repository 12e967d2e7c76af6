"""Paths and device requests for the commands that open a multipath device.

A path is an ``iscsi://HOST[:PORT]/TARGET-IQN/LUN`` URL or a block device node
``/dev/...`` (a kernel name such as ``sdb`` is made a node here). The commands open
devices through the library's one opener, :func:`mpath.api.open_device`; this module
only turns what was typed into its :class:`~mpath.api.DeviceRequest`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import click
from click.core import ParameterSource

from mpath.api import DeviceRequest, OpenedDevice, open_device
from mpath.errors import UsageError
from mpath.rig.model import Rig
from mpath.selectors import DEFAULT_POLICY, SELECTOR_NAMES
from mpath.settings import DEFAULT_NO_PATH_RETRY
from mpath.transports import is_block_path

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
        click.option(
            "--path-args",
            "path_args",
            multiple=True,
            metavar="ARGS",
            help="The policy's per-path arguments, once per path in path order, e.g. "
            "--policy quota --path-args 1 --path-args 4 (docs/selectors.md).",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def device_nodes(paths: Sequence[str]) -> tuple[str, ...]:
    """The paths with kernel names made nodes: ``sdb`` and ``8:16`` (as ``mpath prio``
    and ``dm-config`` take them) become ``/dev/sdb``; URLs and ``/dev/...`` stay."""
    from mpath.dm.devices import parse_device
    from mpath.sysfs.tree import Sysfs, parse_devnum, valid_block_name

    nodes = []
    for path in paths:
        if not (valid_block_name(path) or parse_devnum(path)):
            nodes.append(path)  # a URL or /dev/...: checked where it is used
            continue
        ref = parse_device(path, Sysfs())
        node = f"/dev/{ref.key}"
        if not os.path.exists(node):
            raise UsageError(f"{path}: no such block device ({node} does not exist)")
        nodes.append(node)
    return tuple(nodes)


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
                f"bad path {path!r}: expected iscsi://HOST[:PORT]/TARGET-IQN/LUN, /dev/NODE, "
                "a kernel name (sdb) or MAJ:MIN"
            )
        if key in seen:
            raise UsageError(
                "the same path is given twice"
                + (f" ({seen[key]} and {path})" if seen[key] != path else "")
            )
        seen[key] = path
    return list(paths)


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


def request_from_context(
    ctx: click.Context, paths: list[str], config_file: str | None
) -> DeviceRequest:
    """The request of a click command using :func:`open_settings_options`: only the
    settings the user really typed override the configuration file."""
    typed = command_line_overrides(ctx, [n for n in SETTING_OPTIONS if n in ctx.params])
    given: tuple[str, ...] = ctx.params.get("path_args") or ()
    if given and len(given) != len(paths):
        raise UsageError(f"--path-args given {len(given)} times for {len(paths)} paths")
    path_args = tuple(tuple(text.split()) for text in given) if given else None
    return DeviceRequest(
        paths=paths, config_file=config_file, command_line=typed, path_args=path_args
    )


__all__ = [
    "DeviceRequest",
    "OpenedDevice",
    "command_line_overrides",
    "device_nodes",
    "open_device",
    "open_settings_options",
    "request_from_context",
    "resolve_paths",
]
