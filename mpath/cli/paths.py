"""Options and argument handling shared by the commands that open a multipath device."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from mpath.errors import UsageError
from mpath.filter.settings import DEFAULT_NO_PATH_RETRY, DeviceSettings
from mpath.rig.model import Rig
from mpath.selectors import DEFAULT_POLICY, SELECTOR_NAMES

F = TypeVar("F", bound=Callable[..., Any])


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


def settings_from_options(options: dict[str, Any]) -> DeviceSettings:
    return DeviceSettings(
        policy=options["policy"],
        max_commands=options["max_commands"],
        no_path_retry=options["no_path_retry"],
    )


def resolve_paths(paths: tuple[str, ...], rig: Rig | None) -> list[str]:
    """The paths to open: as given, or the rig's when none are given."""
    if not paths:
        if rig is None:
            raise UsageError("give at least one PATH (iscsi://HOST/IQN/LUN) or --rig NAME")
        return list(rig.urls)
    for path in paths:
        if path.startswith("/dev/"):
            raise UsageError(
                f"{path}: block-device paths need the block transport, which this version "
                "does not have yet; give iscsi:// URLs"
            )
        if not path.startswith("iscsi://"):
            raise UsageError(f"bad path {path!r}: expected iscsi://HOST[:PORT]/TARGET-IQN/LUN")
    if len(set(paths)) != len(paths):
        raise UsageError("the same path is given twice")
    return list(paths)
