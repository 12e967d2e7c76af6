"""``mpath config``: what the configuration file says for a device, and why."""

from __future__ import annotations

import tomllib
from typing import Any

import click

from mpath.cli.common import emit_json, json_option
from mpath.config import Config, Resolution, load_config
from mpath.config.schema import SETTINGS
from mpath.errors import UsageError
from mpath.units import format_size

config_file_option = click.option(
    "--config",
    "config_file",
    metavar="FILE",
    default=None,
    help="Configuration file (default: $MPATH_CONFIG, else /etc/mpath.toml).",
)


@click.group("config")
def config() -> None:
    """Inspect and check mpath's configuration file (docs/config.md).

    \b
    Examples:
      mpath config check --config ./mpath.toml
      mpath config show --wwid 36001405... --origin
      mpath config show --vendor MPATH --product RIG-LUN --json
    """


def _parse_set(items: tuple[str, ...]) -> dict[str, object]:
    """``--set KEY=VALUE``: VALUE is read as a TOML value, else taken as a string."""
    values: dict[str, object] = {}
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise UsageError(f"bad --set {item!r}: expected KEY=VALUE, e.g. policy=round-robin")
        if key not in SETTINGS:
            raise UsageError(f"bad --set {item!r}: unknown setting {key!r}")
        try:
            values[key] = tomllib.loads(f"v = {text}")["v"]
        except tomllib.TOMLDecodeError:
            values[key] = text
    return values


def _display(name: str, value: Any) -> Any:
    """A value the way the file spells it (and JSON can carry)."""
    if name == "max_commands" and value is None:
        return "auto"
    if name == "reservation_key":
        return "none" if value is None else f"{value:#018x}"  # as the file spells it
    if isinstance(value, tuple):
        return list(value)
    return value


def _text(name: str, value: Any) -> str:
    if name == "max_io_bytes" and isinstance(value, int):
        return format_size(value)
    if isinstance(value, list):
        return " ".join(str(v) for v in value) if value else "(none)"
    if value is None:
        return "(none)"
    return f"{value:g}" if isinstance(value, float) else str(value)


def _document(
    loaded: Config, resolution: Resolution, origin: bool, blacklisted: str | None
) -> dict[str, Any]:
    document: dict[str, Any] = {
        "config_file": str(loaded.file) if loaded.file else None,
        "config_found": loaded.found,
        "device": {
            "wwid": resolution.wwid,
            "vendor": resolution.vendor,
            "product": resolution.product,
        },
        "blacklisted": blacklisted,
        "alias": resolution.alias.value,
        "settings": {
            name: _display(name, setting.value) for name, setting in resolution.settings.items()
        },
    }
    if origin:
        origins = {"alias": resolution.alias, **resolution.settings}
        document["origins"] = {
            name: {"origin": setting.origin, "location": setting.location}
            for name, setting in origins.items()
        }
    return document


@config.command("show")
@config_file_option
@click.option("--wwid", default=None, help="The LUN's WWID (matches [[multipaths]]).")
@click.option("--vendor", default=None, help="INQUIRY vendor (matches [[devices]]).")
@click.option("--product", default=None, help="INQUIRY product (matches [[devices]]).")
@click.option("--devnode", default=None, help="Device name or URL (checked against [blacklist]).")
@click.option(
    "--set",
    "set_items",
    multiple=True,
    metavar="KEY=VALUE",
    help="Pretend KEY=VALUE was given on the command line (origin: command line). Repeatable.",
)
@click.option("--origin", is_flag=True, help="Show where each setting came from.")
@json_option
def show(
    config_file: str | None,
    wwid: str | None,
    vendor: str | None,
    product: str | None,
    devnode: str | None,
    set_items: tuple[str, ...],
    origin: bool,
    as_json: bool,
) -> None:
    """Print the settings a device would run with, resolved like multipath-tools'
    propsel: command line > [[multipaths]] (WWID) > [overrides] > [[devices]]
    (vendor/product) > [defaults] > built-in.

    \b
    Examples:
      mpath config show                                   the defaults
      mpath config show --wwid 36001405deadbeef --origin  one LUN, with origins
      mpath config show --vendor MPATH --product RIG-LUN --set policy=round-robin
      mpath config show --config ./mpath.toml --wwid 36001405deadbeef --json
    """
    loaded = load_config(config_file)
    resolution = loaded.resolve(
        wwid=wwid, vendor=vendor, product=product, command_line=_parse_set(set_items)
    )
    blacklisted = loaded.blacklist_reason(
        wwid=wwid, vendor=vendor, product=product, devnode=devnode
    )
    if as_json:
        emit_json(_document(loaded, resolution, origin, blacklisted))
        return
    if loaded.found:
        click.echo(f"config file: {loaded.file}")
    else:
        click.echo(f"config file: {loaded.file} (not found: built-in defaults only)")
    described = [
        f"{label} {value}"
        for label, value in (("wwid", wwid), ("vendor", vendor), ("product", product))
        if value is not None
    ]
    click.echo(f"device: {', '.join(described) if described else '(any)'}")
    if blacklisted:
        click.echo(f"blacklisted: {blacklisted}")
    rows = [("alias", resolution.alias), *resolution.settings.items()]
    width = max(len(name) for name, _ in rows)
    values = [_text(name, _display(name, setting.value)) for name, setting in rows]
    value_width = max(len(v) for v in values)
    for (name, setting), value in zip(rows, values, strict=True):
        line = f"{name:<{width}}  {value}"
        if origin:
            where = f" [{setting.location}]" if setting.location else ""
            line = f"{name:<{width}}  {value:<{value_width}}  {setting.origin}{where}"
        click.echo(line.rstrip())


@config.command("check")
@config_file_option
@json_option
def check(config_file: str | None, as_json: bool) -> None:
    """Check the configuration file: exit 0 if it is valid, else exit 2 with
    FILE:LINE: what is wrong.

    \b
    Examples:
      mpath config check
      mpath config check --config /etc/mpath.toml.new && mv /etc/mpath.toml.new /etc/mpath.toml
    """
    loaded = load_config(config_file)
    summary = {
        "config_file": str(loaded.file) if loaded.file else None,
        "found": loaded.found,
        "valid": True,
        "devices": len(loaded.devices),
        "multipaths": len(loaded.multipaths),
        "chap": len(loaded.chap.entries),
        "blacklist_rules": sum(
            len(rules)
            for rules in (loaded.blacklist.wwid, loaded.blacklist.devnode, loaded.blacklist.device)
        ),
    }
    if as_json:
        emit_json(summary)
    elif not loaded.found:
        click.echo(f"{loaded.file}: not found (mpath uses the built-in defaults)")
    else:
        click.echo(
            f"{loaded.file}: valid ({summary['devices']} device entries, "
            f"{summary['multipaths']} multipath entries, {summary['chap']} CHAP entries, "
            f"{summary['blacklist_rules']} blacklist rules)"
        )
