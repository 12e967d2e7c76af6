"""``mpath config show`` / ``config check``: output, origins, and exit 2 on bad files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from mpath.cli import main

EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "mpath.toml.example"
WWID = "36001405deadbeef0000000000000001"


def invoke(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, ["config", *args], env=env)
    return result.exit_code, result.stdout, result.stderr


def test_show_json_resolves_with_origins() -> None:
    code, out, err = invoke(
        "show",
        "--config",
        str(EXAMPLE),
        "--wwid",
        WWID,
        "--vendor",
        "MPATH",
        "--product",
        "RIG-LUN",
        "--origin",
        "--json",
    )
    assert code == 0, err
    document = json.loads(out)
    assert document["config_file"] == str(EXAMPLE)
    assert document["config_found"] is True
    assert document["alias"] == "db-data"
    assert document["blacklisted"] is None
    assert document["settings"]["policy"] == "failover"
    assert document["settings"]["max_commands"] == 32
    assert document["settings"]["io_timeout_max"] == 2
    assert document["settings"]["max_io_bytes"] == 1024 * 1024
    origins = document["origins"]
    assert origins["policy"]["origin"] == f"multipaths section (wwid {WWID})"
    assert origins["policy"]["location"].startswith(f"{EXAMPLE}:")
    assert origins["io_timeout_max"]["origin"] == (
        "devices section (vendor ^MPATH$ product ^RIG-LUN$)"
    )
    assert origins["no_path_retry"]["origin"] == f"defaults section ({EXAMPLE})"
    assert set(origins) == {"alias", *document["settings"]}


def test_show_without_origin_has_no_origins_key() -> None:
    code, out, _ = invoke("show", "--config", str(EXAMPLE), "--json")
    assert code == 0
    assert "origins" not in json.loads(out)


def test_show_text_with_origin_and_command_line() -> None:
    code, out, _ = invoke(
        "show",
        "--config",
        str(EXAMPLE),
        "--vendor",
        "MPATH",
        "--product",
        "RIG-LUN",
        "--set",
        "policy=round-robin",
        "--set",
        "max_commands=8",
        "--origin",
    )
    assert code == 0
    lines = {line.split()[0]: line for line in out.splitlines()[2:]}
    assert "round-robin" in lines["policy"] and lines["policy"].endswith("command line")
    assert lines["max_commands"].split()[1] == "8"
    assert "devices section (vendor ^MPATH$ product ^RIG-LUN$)" in lines["io_timeout_max"]
    assert lines["max_io_bytes"].split()[1] == "1M"


def test_show_reports_blacklisting() -> None:
    code, out, _ = invoke("show", "--config", str(EXAMPLE), "--devnode", "loop3", "--json")
    assert code == 0
    assert "matches blacklist devnode" in json.loads(out)["blacklisted"]


def test_config_from_environment_and_missing_default(tmp_path: Path) -> None:
    code, out, _ = invoke("show", "--json", env={"MPATH_CONFIG": str(EXAMPLE)})
    assert code == 0 and json.loads(out)["config_found"] is True
    code, _, err = invoke("show", env={"MPATH_CONFIG": str(tmp_path / "none.toml")})
    assert code == 2
    assert err == f"mpath: error: {tmp_path / 'none.toml'}: configuration file not found\n"


def test_check_valid_file() -> None:
    code, out, _ = invoke("check", "--config", str(EXAMPLE))
    assert code == 0
    assert out.startswith(f"{EXAMPLE}: valid (2 device entries, 1 multipath entries")
    code, out, _ = invoke("check", "--config", str(EXAMPLE), "--json")
    assert json.loads(out) == {
        "config_file": str(EXAMPLE),
        "found": True,
        "valid": True,
        "devices": 2,
        "multipaths": 1,
        "chap": 2,
        "blacklist_rules": 4,
    }


@pytest.mark.parametrize("command", ["check", "show"])
@pytest.mark.parametrize(
    ("text", "location", "message"),
    [
        ("[defaults]\npolicy = 'share'\nmax_commands = 0\n", ":3: ", "out of range [1, 65535]"),
        ("[defaults]\n\n\npolicy = share\n", ":4:10: ", "TOML syntax"),
        ("[[devices]]\nvendor = '(MPATH'\n", ":2: ", "bad regular expression"),
        ("[defaults]\nspeed = 3\n", ":2: ", "unknown key 'speed'"),
    ],
)
def test_bad_file_exits_2_with_file_and_line(
    command: str, text: str, location: str, message: str, tmp_path: Path
) -> None:
    file = tmp_path / "bad.toml"
    file.write_text(text)
    code, out, err = invoke(command, "--config", str(file))
    assert code == 2
    assert out == ""
    assert err.startswith(f"mpath: error: {file}{location}")
    assert message in err
    assert err.count("\n") == 1
    assert "Traceback" not in err


def test_bad_set_is_a_usage_error() -> None:
    code, _, err = invoke("show", "--set", "policy")
    assert code == 2 and "expected KEY=VALUE" in err
    code, _, err = invoke("show", "--set", "nope=1")
    assert code == 2 and "unknown setting 'nope'" in err
    code, _, err = invoke("show", "--set", "max_commands=0")
    assert code == 2 and "command line max_commands" in err


def test_help_has_examples() -> None:
    for args in (["--help"], ["show", "--help"], ["check", "--help"]):
        code, out, _ = invoke(*args)
        assert code == 0 and "Examples:" in out
