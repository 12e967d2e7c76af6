"""A loaded configuration and the resolution of one device's settings from it.

Resolution follows multipath-tools' ``propsel.c``: for each setting the most specific
place that sets it wins, and the answer records that place, because "which setting
won?" is the question administrators of multipath.conf ask most (research/
user-issues.md, item 5). From most to least specific:

1. the command line;
2. ``[[multipaths]]``: the entry whose ``wwid`` equals the LUN's WWID;
3. ``[overrides]``: applies to every device, above the per-product entries;
4. ``[[devices]]``: entries whose ``vendor``/``product`` expressions match the LUN's
   INQUIRY vendor and product; when several match, later entries in the file win;
5. ``[defaults]``;
6. the built-in default (:class:`~mpath.settings.DeviceSettings`).

``policy_args`` belong to ``policy``: they are taken from the same place as the policy
(a policy named on the command line runs with no arguments unless they are given there
too), so arguments written for one selector never reach another.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

from mpath.config.blacklist import RuleSet, blacklist_reason
from mpath.config.chap import ChapTable
from mpath.config.errors import ConfigError
from mpath.config.match import VendorProduct
from mpath.config.schema import SETTINGS, SettingValueError
from mpath.errors import UsageError
from mpath.selectors import create_selector
from mpath.settings import DeviceSettings

T = TypeVar("T")

BUILT_IN = "built-in default"
COMMAND_LINE = "command line"


@dataclass(frozen=True, slots=True)
class ResolvedSetting(Generic[T]):
    """A setting's value and where it came from.

    ``origin`` names the place the way ``config show --origin`` prints it (e.g.
    ``"devices section (vendor MPATH product RIG-LUN)"``); ``location`` is
    ``FILE:LINE`` when the value was written in a file, else None.
    """

    value: T
    origin: str
    location: str | None = None


@dataclass(frozen=True, slots=True)
class SettingsBlock:
    """The device settings one section sets (converted values) and their lines."""

    values: Mapping[str, Any] = field(default_factory=dict)
    lines: Mapping[str, int | None] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class DeviceEntry:
    """One ``[[devices]]`` table: vendor/product expressions plus settings."""

    index: int
    device: VendorProduct
    settings: SettingsBlock

    @property
    def line(self) -> int | None:
        return self.device.line

    def matches(self, vendor: str | None, product: str | None) -> bool:
        return self.device.matches(vendor, product)

    def describe(self) -> str:
        return self.device.describe()


@dataclass(frozen=True, slots=True)
class MultipathEntry:
    """One ``[[multipaths]]`` table: a WWID, an optional alias, settings."""

    index: int
    line: int | None
    wwid: str
    alias: str | None
    alias_line: int | None
    settings: SettingsBlock


@dataclass(frozen=True, slots=True)
class _Layer:
    origin: str
    block: SettingsBlock
    file: Path | None

    def location(self, name: str) -> str | None:
        if self.file is None:
            return None
        line = self.block.lines.get(name)
        return f"{self.file}:{line}" if line is not None else str(self.file)


@dataclass(frozen=True, slots=True)
class Resolution:
    """Every setting of one device, resolved, each with its origin."""

    settings: dict[str, ResolvedSetting[Any]]
    alias: ResolvedSetting[str | None]
    config_file: Path | None
    wwid: str | None = None
    vendor: str | None = None
    product: str | None = None

    def device_settings(self) -> DeviceSettings:
        """The :class:`DeviceSettings` a :class:`MultipathDevice` runs with."""
        return DeviceSettings(**{name: s.value for name, s in self.settings.items()})

    def origins(self) -> dict[str, str]:
        """Setting name -> origin, for reports and ``--origin``."""
        return {name: s.origin for name, s in self.settings.items()}


@dataclass(frozen=True, slots=True)
class Config:
    """A parsed, validated configuration file (or the empty one when there is none).

    ``file`` is the file read, None when none was; ``found`` tells a missing default
    file (``file`` set, ``found`` False: built-in defaults only) from a file read.
    """

    file: Path | None = None
    found: bool = False
    defaults: SettingsBlock = field(default_factory=SettingsBlock)
    overrides: SettingsBlock = field(default_factory=SettingsBlock)
    devices: tuple[DeviceEntry, ...] = ()
    multipaths: tuple[MultipathEntry, ...] = ()
    blacklist: RuleSet = field(default_factory=RuleSet)
    blacklist_exceptions: RuleSet = field(default_factory=RuleSet)
    chap: ChapTable = field(default_factory=ChapTable)

    # -- lookups -----------------------------------------------------------------------

    def multipath_entry(self, wwid: str | None) -> MultipathEntry | None:
        if wwid is None:
            return None
        for entry in self.multipaths:
            if entry.wwid == wwid:
                return entry
        return None

    def matching_devices(self, vendor: str | None, product: str | None) -> list[DeviceEntry]:
        """The ``[[devices]]`` entries that apply, in file order (later ones win)."""
        if vendor is None and product is None:
            return []
        return [entry for entry in self.devices if entry.matches(vendor, product)]

    def blacklist_reason(
        self,
        *,
        wwid: str | None = None,
        vendor: str | None = None,
        product: str | None = None,
        devnode: str | None = None,
    ) -> str | None:
        """Why mpath must not use this device (blacklist), or None."""
        return blacklist_reason(
            self.blacklist,
            self.blacklist_exceptions,
            wwid=wwid,
            vendor=vendor,
            product=product,
            devnode=devnode,
            file=self.file if self.found else None,
        )

    # -- resolution ----------------------------------------------------------------------

    def _layers(self, wwid: str | None, devices: Sequence[DeviceEntry]) -> list[_Layer]:
        """The places settings come from, most specific first (the command line aside)."""
        file = self.file if self.found else None
        layers: list[_Layer] = []
        entry = self.multipath_entry(wwid)
        if entry is not None:
            layers.append(_Layer(f"multipaths section (wwid {entry.wwid})", entry.settings, file))
        layers.append(_Layer(f"overrides section ({file})", self.overrides, file))
        for device in reversed(devices):
            layers.append(_Layer(f"devices section ({device.describe()})", device.settings, file))
        layers.append(_Layer(f"defaults section ({file})", self.defaults, file))
        return layers

    def resolve(
        self,
        *,
        wwid: str | None = None,
        vendor: str | None = None,
        product: str | None = None,
        command_line: Mapping[str, object] | None = None,
        devices: Sequence[DeviceEntry] | None = None,
    ) -> Resolution:
        """Resolve every setting for the device with this identity.

        ``command_line`` maps setting names to values given on the command line (raw:
        they are converted and checked like file values; None values are ignored).
        Unknown identity parts are simply not matched (no WWID: no multipaths entry).
        ``devices`` replaces the vendor/product match with these entries (the loader
        uses it to check each entry as if it matched).
        Raises :class:`ConfigError` (exit 2) when the combination is invalid, naming
        where the conflicting values came from.
        """
        cli_values: dict[str, Any] = {}
        for name, raw in (command_line or {}).items():
            if raw is None:
                continue
            spec = SETTINGS.get(name)
            if spec is None:
                raise UsageError(f"unknown setting {name!r} (settings: {', '.join(SETTINGS)})")
            try:
                cli_values[name] = spec.convert(raw)
            except SettingValueError as exc:
                raise UsageError(f"command line {name}: {exc}") from None
        matched = self.matching_devices(vendor, product) if devices is None else devices
        layers = self._layers(wwid, matched)
        if cli_values:
            layers.insert(0, _Layer(COMMAND_LINE, SettingsBlock(cli_values, {}), None))
        resolved: dict[str, ResolvedSetting[Any]] = {}
        for name, spec in SETTINGS.items():
            if name == "policy_args":
                continue
            for layer in layers:
                if name in layer.block.values:
                    resolved[name] = ResolvedSetting(
                        layer.block.values[name], layer.origin, layer.location(name)
                    )
                    if name == "policy":
                        args = layer.block.values.get("policy_args", ())
                        where = layer.location("policy_args") if args else layer.location(name)
                        resolved["policy_args"] = ResolvedSetting(args, layer.origin, where)
                    break
            else:
                resolved[name] = ResolvedSetting(spec.default, BUILT_IN)
                if name == "policy":
                    resolved["policy_args"] = ResolvedSetting(
                        SETTINGS["policy_args"].default, BUILT_IN
                    )
        ordered = {name: resolved[name] for name in SETTINGS}
        entry = self.multipath_entry(wwid)
        if entry is not None and entry.alias is not None:
            file = self.file if self.found else None
            where = f"{file}:{entry.alias_line}" if file and entry.alias_line else None
            alias: ResolvedSetting[str | None] = ResolvedSetting(
                entry.alias, f"multipaths section (wwid {entry.wwid})", where
            )
        else:
            alias = ResolvedSetting(None, BUILT_IN)
        resolution = Resolution(
            ordered, alias, self.file if self.found else None, wwid, vendor, product
        )
        check_combination(resolution)
        return resolution


def _error_at(setting: ResolvedSetting[Any], problem: str) -> ConfigError:
    """A ConfigError located at the file line a resolved setting came from."""
    if setting.location is None:
        return ConfigError(problem)
    file, _, line = setting.location.rpartition(":")
    if line.isdigit():
        return ConfigError(problem, file=file, line=int(line))
    return ConfigError(problem, file=setting.location)


def check_combination(resolution: Resolution) -> None:
    """Checks that need several settings at once (they may come from different places)."""
    values = resolution.settings
    low, high = values["io_timeout_min"], values["io_timeout_max"]
    if low.value > high.value:
        culprit = high if high.origin != BUILT_IN else low
        raise _error_at(
            culprit,
            f"io_timeout_min {low.value:g} ({low.origin}) is above io_timeout_max "
            f"{high.value:g} ({high.origin})",
        )
    policy, args = values["policy"], values["policy_args"]
    try:
        create_selector(policy.value, args.value, max_commands=values["max_commands"].value)
    except UsageError as exc:
        culprit = args if args.value else policy
        raise _error_at(culprit, f"policy_args ({culprit.origin}): {exc}") from None
    try:
        resolution.device_settings()
    except UsageError as exc:  # DeviceSettings' own checks: keep them authoritative
        raise ConfigError(f"settings do not combine: {exc}") from None
