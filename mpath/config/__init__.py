"""mpath's configuration file: device settings, blacklist and CHAP (docs/config.md).

A TOML file shaped like multipath.conf (``[defaults]``, ``[overrides]``,
``[[devices]]``, ``[[multipaths]]``, ``[blacklist]``, ``[blacklist_exceptions]``) plus
``[[chap]]`` for iSCSI logins. Every resolved setting carries its origin::

    config = load_config()                     # --config / $MPATH_CONFIG / /etc/mpath.toml
    resolution = config.resolve(wwid=lun.wwid, vendor=lun.vendor, product=lun.product)
    resolution.settings["policy"]              # ResolvedSetting(value='share', origin=...)
    settings = resolution.device_settings()    # for MultipathDevice.open(urls, settings)
    creds = config.chap.credentials_for("198.18.1.2:3260", "iqn....")
"""

from __future__ import annotations

from mpath.config.blacklist import RuleSet
from mpath.config.chap import ChapCredentials, ChapTable, Secret
from mpath.config.errors import ConfigError
from mpath.config.load import (
    CONFIG_ENV,
    DEFAULT_CONFIG_PATH,
    config_path,
    load_config,
    parse_config,
)
from mpath.config.model import (
    BUILT_IN,
    COMMAND_LINE,
    Config,
    DeviceEntry,
    MultipathEntry,
    Resolution,
    ResolvedSetting,
)
from mpath.config.resolve import resolve_settings, settings_for
from mpath.config.schema import SETTINGS, SettingSpec

__all__ = [
    "BUILT_IN",
    "COMMAND_LINE",
    "CONFIG_ENV",
    "DEFAULT_CONFIG_PATH",
    "SETTINGS",
    "ChapCredentials",
    "ChapTable",
    "Config",
    "ConfigError",
    "DeviceEntry",
    "MultipathEntry",
    "Resolution",
    "ResolvedSetting",
    "RuleSet",
    "Secret",
    "SettingSpec",
    "config_path",
    "load_config",
    "parse_config",
    "resolve_settings",
    "settings_for",
]
