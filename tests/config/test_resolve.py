"""Resolution: multipaths > overrides > devices > defaults > built-in, with origins."""

from __future__ import annotations

from pathlib import Path

import pytest

from mpath.config import (
    BUILT_IN,
    COMMAND_LINE,
    Config,
    ConfigError,
    parse_config,
    settings_for,
)
from mpath.errors import UsageError
from mpath.settings import DeviceSettings

FILE = "/etc/mpath.toml"
TEXT = """\
[defaults]
policy = "round-robin"
no_path_retry = 10
same_path_retries = 2

[[devices]]
vendor = "^MPATH$"
policy = "quota"
policy_args = ["quantum=64K"]
no_path_retry = 7
max_io_bytes = "256K"

[[devices]]
vendor = "^MPATH$"
product = "^RIG-LUN$"
no_path_retry = 3

[[multipaths]]
wwid = "36001405aaaa"
alias = "fast"
max_commands = 16
"""


def config() -> Config:
    return parse_config(TEXT, FILE)


def test_nothing_matches_defaults_then_built_in() -> None:
    resolution = config().resolve(wwid="3other", vendor="ACME", product="X")
    settings = resolution.settings
    assert settings["policy"].value == "round-robin"
    assert settings["policy"].origin == f"defaults section ({FILE})"
    assert settings["policy"].location == f"{FILE}:2"
    assert settings["io_timeout_max"].value == 3.0
    assert settings["io_timeout_max"].origin == BUILT_IN
    assert settings["io_timeout_max"].location is None
    assert resolution.alias.value is None


def test_devices_override_defaults_and_later_entries_win() -> None:
    settings = config().resolve(vendor="MPATH", product="RIG-LUN").settings
    assert settings["no_path_retry"].value == 3.0
    assert settings["no_path_retry"].origin == "devices section (vendor ^MPATH$ product ^RIG-LUN$)"
    assert settings["no_path_retry"].location == f"{FILE}:16"
    # the first entry still supplies what the second does not set
    assert settings["policy"].value == "quota"
    assert settings["policy"].origin == "devices section (vendor ^MPATH$)"
    assert settings["max_io_bytes"].value == 256 * 1024
    assert settings["same_path_retries"].origin == f"defaults section ({FILE})"


def test_multipaths_beat_devices() -> None:
    resolution = config().resolve(wwid="36001405aaaa", vendor="MPATH", product="RIG-LUN")
    assert resolution.settings["max_commands"].value == 16
    assert resolution.settings["max_commands"].origin == "multipaths section (wwid 36001405aaaa)"
    assert resolution.alias.value == "fast"
    assert resolution.alias.location == f"{FILE}:20"


def test_overrides_beat_devices_but_not_multipaths() -> None:
    text = TEXT + "\n[overrides]\nmax_commands = 8\nno_path_retry = 1\n"
    resolution = parse_config(text, FILE).resolve(
        wwid="36001405aaaa", vendor="MPATH", product="RIG-LUN"
    )
    assert resolution.settings["no_path_retry"].value == 1.0
    assert resolution.settings["no_path_retry"].origin == f"overrides section ({FILE})"
    assert resolution.settings["max_commands"].value == 16


def test_command_line_beats_everything() -> None:
    resolution = config().resolve(
        wwid="36001405aaaa",
        vendor="MPATH",
        product="RIG-LUN",
        command_line={"max_commands": 4, "no_path_retry": None},
    )
    assert resolution.settings["max_commands"].value == 4
    assert resolution.settings["max_commands"].origin == COMMAND_LINE
    assert resolution.settings["no_path_retry"].value == 3.0  # None = not given


def test_policy_args_travel_with_their_policy() -> None:
    by_device = config().resolve(vendor="MPATH", product="X").settings
    assert by_device["policy_args"].value == ("quantum=64K",)
    assert by_device["policy_args"].origin == by_device["policy"].origin
    # a policy from the command line does not inherit the file's quota arguments
    by_cli = (
        config()
        .resolve(vendor="MPATH", product="X", command_line={"policy": "service-time"})
        .settings
    )
    assert by_cli["policy"].value == "service-time"
    assert by_cli["policy_args"].value == ()
    assert by_cli["policy_args"].origin == COMMAND_LINE


def test_device_settings_come_out_whole() -> None:
    settings = config().resolve(vendor="MPATH", product="RIG-LUN").device_settings()
    assert settings == DeviceSettings(
        policy="quota",
        policy_args=("quantum=64K",),
        no_path_retry=3.0,
        same_path_retries=2,
        max_io_bytes=256 * 1024,
    )


def test_bad_command_line_values_are_usage_errors() -> None:
    with pytest.raises(UsageError, match="command line max_commands"):
        config().resolve(command_line={"max_commands": 0})
    with pytest.raises(UsageError, match="unknown setting 'speed'"):
        config().resolve(command_line={"speed": 1})


def test_a_combination_made_at_run_time_is_checked_with_origins() -> None:
    text = "[defaults]\nio_timeout_max = 1\n"
    with pytest.raises(ConfigError) as caught:
        parse_config(text, FILE).resolve(command_line={"io_timeout_min": 2})
    assert "command line" in str(caught.value)
    assert caught.value.line == 2


def test_settings_for_reads_the_file_and_returns_origins(tmp_path: Path) -> None:
    file = tmp_path / "mpath.toml"
    file.write_text(TEXT)
    settings, origins = settings_for(
        wwid="36001405aaaa",
        vendor="MPATH",
        product="RIG-LUN",
        command_line={"policy": "failover"},
        config_path=file,
    )
    assert settings.policy == "failover"
    assert settings.max_commands == 16
    assert origins["policy"] == COMMAND_LINE
    assert origins["max_commands"] == "multipaths section (wwid 36001405aaaa)"
    assert origins["io_timeout_min"] == BUILT_IN
