"""Settings for a command that opens a device: file, command line, origins.

The device-opening commands (``bench``, ``show``, ...) take ``--policy``,
``--max-commands`` and ``--no-path-retry`` (mpath/cli/paths.py). Those options always
have a value in click, so "given on the command line" must be asked of click itself
(:func:`command_line_overrides`); only options the user actually typed (or set through
their environment variable) override the configuration file.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from mpath.config.load import load_config
from mpath.config.model import Resolution
from mpath.settings import DeviceSettings


def command_line_overrides(ctx: Any, names: Iterable[str] | None = None) -> dict[str, object]:
    """The settings the user gave on this click command line (or via an envvar).

    ``ctx`` is the ``click.Context``; ``names`` limits the check to these parameters
    (default: every setting name the command has). Defaults click filled in are left
    out, so the configuration file can supply them.
    """
    import click
    from click.core import ParameterSource

    from mpath.config.schema import SETTINGS

    assert isinstance(ctx, click.Context)
    wanted = list(names) if names is not None else [n for n in SETTINGS if n in ctx.params]
    given: dict[str, object] = {}
    for name in wanted:
        source = ctx.get_parameter_source(name)
        if source in (ParameterSource.COMMANDLINE, ParameterSource.ENVIRONMENT):
            value = ctx.params.get(name)
            if value is not None:
                given[name] = value
    return given


def resolve_settings(
    *,
    wwid: str | None = None,
    vendor: str | None = None,
    product: str | None = None,
    command_line: Mapping[str, object] | None = None,
    config_path: str | Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> Resolution:
    """Load the configuration and resolve the settings of one device.

    ``config_path`` is ``--config`` (None: ``$MPATH_CONFIG``, else /etc/mpath.toml).
    """
    config = load_config(config_path, environ=environ)
    return config.resolve(wwid=wwid, vendor=vendor, product=product, command_line=command_line)


def settings_for(
    *,
    wwid: str | None = None,
    vendor: str | None = None,
    product: str | None = None,
    command_line: Mapping[str, object] | None = None,
    config_path: str | Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> tuple[DeviceSettings, dict[str, str]]:
    """The :class:`DeviceSettings` to open a device with, and each setting's origin.

    Before a device is opened its identity is unknown: call this without ``wwid`` /
    ``vendor`` / ``product`` to get the defaults-level settings, and again with the
    identity the device reports (``device.lun``) to get the per-device ones.
    """
    resolution = resolve_settings(
        wwid=wwid,
        vendor=vendor,
        product=product,
        command_line=command_line,
        config_path=config_path,
        environ=environ,
    )
    return resolution.device_settings(), resolution.origins()
