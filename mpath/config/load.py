"""Reading and validating the configuration file (docs/config.md).

Which file: ``--config FILE`` if given, else ``$MPATH_CONFIG`` if set, else
``/etc/mpath.toml``. The default file may be missing (mpath then runs on built-in
defaults); a file named explicitly must exist, because a typo in a path should not
silently drop every setting.

Validation is strict and located: unknown sections and keys (with a "did you mean"),
values of the wrong type or out of range, regular expressions that do not compile,
duplicate WWIDs or aliases, and CHAP entries missing half of a pair all raise
:class:`~mpath.config.errors.ConfigError` with the file and line (and for TOML syntax
errors the column, from tomllib).
"""

from __future__ import annotations

import difflib
import logging
import os
import re
import stat
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mpath.config.blacklist import PatternRule, RuleSet
from mpath.config.chap import ChapEntry, ChapTable, Secret, SecretSource, parse_portal
from mpath.config.errors import ConfigError
from mpath.config.match import VendorProduct
from mpath.config.model import Config, DeviceEntry, MultipathEntry, SettingsBlock
from mpath.config.schema import SETTINGS, SettingValueError, type_name
from mpath.config.source import KeyPath, SourceMap

log = logging.getLogger(__name__)

DEFAULT_CONFIG_PATH = Path("/etc/mpath.toml")
CONFIG_ENV = "MPATH_CONFIG"

SECTIONS = (
    "defaults",
    "overrides",
    "devices",
    "multipaths",
    "blacklist",
    "blacklist_exceptions",
    "chap",
    "daemon",  # read by mpath.daemon.config (the service's own settings)
)
BLACKLIST_KEYS = ("wwid", "devnode", "device")
CHAP_KEYS = (
    "portal",
    "target",
    "username",
    "password",
    "password_env",
    "target_username",
    "target_password",
    "target_password_env",
)
_ALIAS = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+-]{0,63}")
_WWID = re.compile(r"[\x21-\x7e]{1,256}")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_TOML_POSITION = re.compile(r"\s*\(at line (\d+), column (\d+)\)\s*$|\s*\(at end of document\)\s*$")
MAX_NAME_BYTES = 255


def config_path(
    explicit: str | Path | None = None, environ: Mapping[str, str] | None = None
) -> tuple[Path, bool]:
    """The file to read and whether it was named explicitly (then it must exist)."""
    env = os.environ if environ is None else environ
    if explicit is not None and str(explicit) != "":
        return Path(explicit), True
    named = env.get(CONFIG_ENV)
    if named:
        return Path(named), True
    return DEFAULT_CONFIG_PATH, False


def load_config(
    path: str | Path | None = None, *, environ: Mapping[str, str] | None = None
) -> Config:
    """Load the configuration mpath runs with (see :func:`config_path`)."""
    file, explicit = config_path(path, environ)
    try:
        data = file.read_bytes()
    except FileNotFoundError:
        if explicit:
            raise ConfigError("configuration file not found", file=file) from None
        return Config(file=file, found=False)
    except IsADirectoryError:
        raise ConfigError("is a directory, not a configuration file", file=file) from None
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc.strerror or exc}", file=file) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ConfigError("not UTF-8 text", file=file, line=line) from None
    config = parse_config(text, file)
    _warn_if_secrets_exposed(file, config)
    return config


def parse_config(text: str, file: Path | str = "<config>") -> Config:
    """Parse and validate configuration text; ``file`` is named in every error."""
    path = Path(file)
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        match = _TOML_POSITION.search(message)
        problem = _TOML_POSITION.sub("", message) or "invalid TOML"
        if match and match.group(1):
            raise ConfigError(
                f"TOML syntax: {problem}",
                file=path,
                line=int(match.group(1)),
                column=int(match.group(2)),
            ) from None
        last_line = text.count("\n") + (0 if text.endswith("\n") else 1)
        raise ConfigError(f"TOML syntax: {problem}", file=path, line=max(1, last_line)) from None
    return _Validator(path, SourceMap(text)).config(document)


def _warn_if_secrets_exposed(file: Path, config: Config) -> None:
    """CHAP secrets written in the file should be readable by its owner only."""
    literal = any(
        entry.password.literal is not None
        or (entry.target_password is not None and entry.target_password.literal is not None)
        for entry in config.chap.entries
    )
    if not literal:
        return
    try:
        mode = file.stat().st_mode
    except OSError:
        return
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        log.warning(
            "%s holds CHAP secrets but is readable by others (mode %o): chmod 600 it, "
            "or use password_env",
            file,
            stat.S_IMODE(mode),
        )


class _Validator:
    """Turns a parsed TOML document into a :class:`Config`, or a located ConfigError."""

    def __init__(self, file: Path, source: SourceMap) -> None:
        self.file = file
        self.source = source

    # -- helpers -------------------------------------------------------------------------

    def error(self, path: KeyPath, problem: str) -> ConfigError:
        return ConfigError(problem, file=self.file, line=self.source.line_of(path))

    def line(self, path: KeyPath) -> int | None:
        return self.source.line_of(path)

    def table(self, value: object, path: KeyPath, what: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.error(path, f"{what} must be a table, not {type_name(value)}")
        return value

    def array_of_tables(self, value: object, path: KeyPath, what: str) -> list[dict[str, Any]]:
        if isinstance(value, dict):
            raise self.error(
                path, f"{what} must be an array of tables: write [[{path[-1]}]], not [{path[-1]}]"
            )
        if not isinstance(value, list):
            raise self.error(path, f"{what} must be an array of tables, not {type_name(value)}")
        for index, item in enumerate(value):
            if not isinstance(item, dict):
                raise self.error((*path, index), f"{what} item {index + 1} must be a table")
        return value

    def unknown(self, path: KeyPath, key: str, where: str, allowed: tuple[str, ...]) -> ConfigError:
        close = difflib.get_close_matches(key, allowed, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else f" (known: {', '.join(allowed)})"
        return self.error((*path, key), f"unknown key {key!r} in {where}{hint}")

    def string(self, value: object, path: KeyPath, what: str) -> str:
        if not isinstance(value, str):
            raise self.error(path, f"{what} must be a string, not {type_name(value)}")
        return value

    def vendor_product(self, item: dict[str, Any], path: KeyPath) -> VendorProduct:
        """The ``vendor``/``product`` expressions of a ``[[devices]]`` entry or a
        blacklist ``device`` rule (the caller checked that one is given)."""
        vendor = (
            self.regex(item["vendor"], (*path, "vendor"), "vendor") if "vendor" in item else None
        )
        product = (
            self.regex(item["product"], (*path, "product"), "product")
            if "product" in item
            else None
        )
        return VendorProduct(vendor, product, self.line(path))

    def regex(self, value: object, path: KeyPath, what: str) -> re.Pattern[str]:
        text = self.string(value, path, what)
        if text == "":
            raise self.error(
                path, f'{what}: empty regular expression (it matches everything; write ".*")'
            )
        try:
            return re.compile(text)
        except re.error as exc:
            raise self.error(path, f"{what}: bad regular expression {text!r}: {exc}") from None

    def name(self, value: object, path: KeyPath, what: str) -> str:
        text = self.string(value, path, what)
        if not text or len(text.encode()) > MAX_NAME_BYTES or any(c.isspace() for c in text):
            raise self.error(
                path, f"{what} must be 1 to {MAX_NAME_BYTES} bytes without white space"
            )
        return text

    # -- the document ----------------------------------------------------------------------

    def config(self, document: dict[str, Any]) -> Config:
        for key in document:
            if key not in SECTIONS:
                close = difflib.get_close_matches(key, SECTIONS, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise self.error(
                    (key,), f"unknown section {key!r}{hint}; sections: {', '.join(SECTIONS)}"
                )
        defaults = self.settings_table(document.get("defaults", {}), ("defaults",), "[defaults]")
        overrides = self.settings_table(
            document.get("overrides", {}), ("overrides",), "[overrides]"
        )
        devices = tuple(
            self.device(item, index)
            for index, item in enumerate(
                self.array_of_tables(document.get("devices", []), ("devices",), "devices")
            )
        )
        multipaths = self.multipaths(document.get("multipaths", []))
        blacklist = self.rules(document.get("blacklist", {}), "blacklist")
        exceptions = self.rules(document.get("blacklist_exceptions", {}), "blacklist_exceptions")
        chap = ChapTable(
            tuple(
                self.chap(item, index)
                for index, item in enumerate(
                    self.array_of_tables(document.get("chap", []), ("chap",), "chap")
                )
            ),
            self.file,
        )
        self.check_chap_duplicates(chap)
        config = Config(
            file=self.file,
            found=True,
            defaults=defaults,
            overrides=overrides,
            devices=devices,
            multipaths=multipaths,
            blacklist=blacklist,
            blacklist_exceptions=exceptions,
            chap=chap,
        )
        self.check_combinations(config)
        return config

    def settings_table(
        self, value: object, path: KeyPath, where: str, extra: tuple[str, ...] = ()
    ) -> SettingsBlock:
        """The device settings of one section; keys in ``extra`` are left to the caller."""
        table = self.table(value, path, where)
        values: dict[str, Any] = {}
        lines: dict[str, int | None] = {}
        for key, raw in table.items():
            if key in extra:
                continue
            spec = SETTINGS.get(key)
            if spec is None:
                raise self.unknown(path, key, where, (*SETTINGS, *extra))
            try:
                values[key] = spec.convert(raw)
            except SettingValueError as exc:
                raise self.error((*path, key), f"{key}: {exc}") from None
            lines[key] = self.line((*path, key))
        if "policy_args" in values and "policy" not in values:
            raise self.error(
                (*path, "policy_args"),
                "policy_args needs policy in the same section (arguments belong to one "
                'policy, as in multipath.conf\'s "service-time 0")',
            )
        return SettingsBlock(values, lines)

    def device(self, item: dict[str, Any], index: int) -> DeviceEntry:
        path: KeyPath = ("devices", index)
        where = f"[[devices]] entry {index + 1}"
        if "vendor" not in item and "product" not in item:
            raise self.error(path, f"{where} needs vendor and/or product (regular expressions)")
        device = self.vendor_product(item, path)
        settings = self.settings_table(item, path, where, extra=("vendor", "product"))
        return DeviceEntry(index, device, settings)

    def multipaths(self, value: object) -> tuple[MultipathEntry, ...]:
        entries: list[MultipathEntry] = []
        seen_wwids: dict[str, int | None] = {}
        seen_aliases: dict[str, int | None] = {}
        for index, item in enumerate(self.array_of_tables(value, ("multipaths",), "multipaths")):
            path: KeyPath = ("multipaths", index)
            where = f"[[multipaths]] entry {index + 1}"
            if "wwid" not in item:
                raise self.error(path, f"{where} needs wwid (the LUN's WWID, matched exactly)")
            wwid = self.string(item["wwid"], (*path, "wwid"), "wwid")
            if not _WWID.fullmatch(wwid):
                raise self.error(
                    (*path, "wwid"), "wwid must be 1 to 256 printable characters without spaces"
                )
            if wwid in seen_wwids:
                raise self.error(
                    (*path, "wwid"),
                    f"wwid {wwid} already has an entry (line {seen_wwids[wwid]}); merge them",
                )
            seen_wwids[wwid] = self.line((*path, "wwid"))
            alias = None
            if "alias" in item:
                alias = self.string(item["alias"], (*path, "alias"), "alias")
                if not _ALIAS.fullmatch(alias):
                    raise self.error(
                        (*path, "alias"),
                        f"alias {alias!r}: use 1 to 64 letters, digits and _ . + - "
                        "(no '/', no leading '.' or '-')",
                    )
                if alias in seen_aliases:
                    raise self.error(
                        (*path, "alias"),
                        f"alias {alias!r} is already used (line {seen_aliases[alias]})",
                    )
                seen_aliases[alias] = self.line((*path, "alias"))
            settings = self.settings_table(item, path, where, extra=("wwid", "alias"))
            entries.append(
                MultipathEntry(
                    index, self.line(path), wwid, alias, self.line((*path, "alias")), settings
                )
            )
        return tuple(entries)

    def rules(self, value: object, section: str) -> RuleSet:
        path: KeyPath = (section,)
        table = self.table(value, path, f"[{section}]")
        for key in table:
            if key not in BLACKLIST_KEYS:
                raise self.unknown(path, key, f"[{section}]", BLACKLIST_KEYS)
        patterns: dict[str, tuple[PatternRule, ...]] = {}
        for kind in ("wwid", "devnode"):
            raw = table.get(kind, [])
            if isinstance(raw, str):
                raw = [raw]
            if not isinstance(raw, list):
                raise self.error((*path, kind), f"{kind} must be an array of regular expressions")
            patterns[kind] = tuple(
                PatternRule(self.regex(item, (*path, kind, i), kind), self.line((*path, kind, i)))
                for i, item in enumerate(raw)
            )
        devices: list[VendorProduct] = []
        raw_devices = table.get("device", [])
        if isinstance(raw_devices, dict):
            raw_devices = [raw_devices]
        if not isinstance(raw_devices, list):
            raise self.error(
                (*path, "device"), "device must be an array of {vendor = ..., product = ...} tables"
            )
        for i, item in enumerate(raw_devices):
            item_path = (*path, "device", i)
            rule = self.table(item, item_path, "a device rule")
            for key in rule:
                if key not in ("vendor", "product"):
                    raise self.unknown(item_path, key, f"[{section}] device", ("vendor", "product"))
            if not rule:
                raise self.error(item_path, "a device rule needs vendor and/or product")
            devices.append(self.vendor_product(rule, item_path))
        return RuleSet(patterns["wwid"], patterns["devnode"], tuple(devices))

    def secret(
        self, item: dict[str, Any], path: KeyPath, key: str, where: str, *, required: bool
    ) -> SecretSource | None:
        env_key = f"{key}_env"
        if key in item and env_key in item:
            raise self.error(
                (*path, env_key), f"give {key} or {env_key}, not both (prefer {env_key})"
            )
        if env_key in item:
            name = self.string(item[env_key], (*path, env_key), env_key)
            if not _ENV_NAME.fullmatch(name):
                raise self.error((*path, env_key), f"{env_key}: {name!r} is not a variable name")
            return SecretSource(None, name, env_key, self.line((*path, env_key)))
        if key in item:
            value = self.string(item[key], (*path, key), key)
            if not value or len(value.encode()) > MAX_NAME_BYTES:
                raise self.error((*path, key), f"{key} must be 1 to {MAX_NAME_BYTES} bytes")
            return SecretSource(Secret(value), None, key, self.line((*path, key)))
        if required:
            raise self.error(path, f"{where} needs {env_key} (or {key})")
        return None

    def chap(self, item: dict[str, Any], index: int) -> ChapEntry:
        path: KeyPath = ("chap", index)
        where = f"[[chap]] entry {index + 1}"
        for key in item:
            if key not in CHAP_KEYS:
                raise self.unknown(path, key, where, CHAP_KEYS)
        portal = None
        if "portal" in item:
            text = self.string(item["portal"], (*path, "portal"), "portal")
            try:
                portal = parse_portal(text)
            except ValueError as exc:
                raise self.error((*path, "portal"), f"portal {text!r}: {exc}") from None
        target = (
            self.name(item["target"], (*path, "target"), "target") if "target" in item else None
        )
        if "username" not in item:
            raise self.error(path, f"{where} needs username")
        username = self.name(item["username"], (*path, "username"), "username")
        password = self.secret(item, path, "password", where, required=True)
        assert password is not None
        target_username = (
            self.name(item["target_username"], (*path, "target_username"), "target_username")
            if "target_username" in item
            else None
        )
        target_password = self.secret(item, path, "target_password", where, required=False)
        if (target_username is None) != (target_password is None):
            missing = "target_password_env" if target_password is None else "target_username"
            raise self.error(
                path,
                f"{where}: mutual CHAP needs target_username and "
                f"target_password_env together ({missing} is missing)",
            )
        return ChapEntry(
            index,
            self.line(path),
            portal,
            target,
            username,
            password,
            target_username,
            target_password,
        )

    def check_chap_duplicates(self, chap: ChapTable) -> None:
        seen: dict[tuple[object, object], int | None] = {}
        for entry in chap.entries:
            scope = (entry.portal, entry.target)
            if scope in seen:
                raise self.error(
                    ("chap", entry.index),
                    f"[[chap]] entry {entry.index + 1} has the same portal and target as the "
                    f"entry at line {seen[scope]}",
                )
            seen[scope] = entry.line

    def check_combinations(self, config: Config) -> None:
        """Each section must combine with the sections below it into valid settings.

        Every [[devices]] and [[multipaths]] entry is checked over [defaults] and
        [overrides], as if it matched; combinations that only arise at run time
        (several device entries at once, the command line) are checked again by
        :meth:`Config.resolve`.
        """
        config.resolve()
        for device in config.devices:
            config.resolve(devices=(device,))
        for entry in config.multipaths:
            config.resolve(wwid=entry.wwid)
