"""Settings for a command that opens a device: file, command line, origins.

``command_line`` holds only the settings the user actually gave (the CLI asks click
which options were typed, mpath/cli/paths.py); they override the configuration file.
Nothing here knows the CLI: every mistake is a :class:`~mpath.config.errors.ConfigError`
(an :class:`~mpath.errors.MpathError`), which the CLI turns into one line and exit 2
at its one boundary.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from mpath.config.load import load_config
from mpath.config.model import Resolution
from mpath.settings import DeviceSettings


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
