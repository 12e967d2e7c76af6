"""Loading the configuration file: which file, and strict, located validation."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from mpath.config import ConfigError, load_config, parse_config
from mpath.config.load import DEFAULT_CONFIG_PATH, config_path

EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "mpath.toml.example"


def error_of(text: str, tmp_path: Path) -> ConfigError:
    file = tmp_path / "mpath.toml"
    file.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_config(file)
    assert caught.value.file == file
    assert caught.value.exit_code == 2
    assert str(caught.value).startswith(f"{file}:")
    return caught.value


# -- which file ----------------------------------------------------------------------------


def test_the_documented_example_loads() -> None:
    config = load_config(EXAMPLE)
    assert config.found
    assert [d.describe() for d in config.devices] == [
        "vendor ^MPATH$ product ^RIG-LUN$",
        "vendor ^LIO-ORG$",
    ]
    assert config.multipaths[0].alias == "db-data"
    assert len(config.chap.entries) == 2
    assert config.blacklist and config.blacklist_exceptions


def test_explicit_beats_environment_beats_default() -> None:
    assert config_path("/x.toml", {"MPATH_CONFIG": "/y.toml"}) == (Path("/x.toml"), True)
    assert config_path(None, {"MPATH_CONFIG": "/y.toml"}) == (Path("/y.toml"), True)
    assert config_path(None, {}) == (DEFAULT_CONFIG_PATH, False)
    assert Path("/etc/mpath.toml") == DEFAULT_CONFIG_PATH


def test_a_missing_default_file_means_built_in_defaults(tmp_path: Path) -> None:
    missing = tmp_path / "absent.toml"
    if DEFAULT_CONFIG_PATH.exists():  # pragma: no cover - only on a configured host
        pytest.skip("/etc/mpath.toml exists on this host")
    config = load_config(None, environ={})
    assert not config.found
    assert config.resolve().settings["policy"].origin == "built-in default"
    with pytest.raises(ConfigError, match="configuration file not found"):
        load_config(missing)
    with pytest.raises(ConfigError, match="configuration file not found"):
        load_config(None, environ={"MPATH_CONFIG": str(missing)})


def test_a_directory_or_non_utf8_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is a directory"):
        load_config(tmp_path)
    file = tmp_path / "latin1.toml"
    file.write_bytes(b"[defaults]\n# caf\xe9\n")
    with pytest.raises(ConfigError, match="not UTF-8") as caught:
        load_config(file)
    assert caught.value.line == 2


def test_an_empty_file_is_valid(tmp_path: Path) -> None:
    file = tmp_path / "empty.toml"
    file.write_text("# nothing yet\n")
    config = load_config(file)
    assert config.found
    assert config.resolve().settings["policy"].value == "share"


# -- syntax errors: line and column from tomllib ----------------------------------------------


def test_syntax_error_has_line_and_column(tmp_path: Path) -> None:
    error = error_of('[defaults]\npolicy = "share\n', tmp_path)
    assert (error.line, error.column) == (2, 16)
    assert "TOML syntax" in error.problem


def test_duplicate_key_is_a_syntax_error(tmp_path: Path) -> None:
    error = error_of("[defaults]\nno_path_retry = 1\nno_path_retry = 2\n", tmp_path)
    assert error.line == 3


# -- semantic errors: line found by the source scan -------------------------------------------

BAD = [
    ("[defualts]\n", 1, "unknown section 'defualts' (did you mean 'defaults'?)"),
    ("[defaults]\npolicy = 'share'\npolcy = 3\n", 3, "did you mean 'policy'?"),
    ("[defaults]\n\npolicy = 3\n", 3, "expected a policy name (a string), got an integer"),
    ("[defaults]\npolicy = 'fastest'\n", 2, "unknown policy 'fastest'"),
    ("[defaults]\nno_path_retry = true\n", 2, "expected a number, got a boolean"),
    ("[defaults]\nno_path_retry = 'queue'\n", 2, "bounded wait"),
    ("[defaults]\nno_path_retry = 7200\n", 2, "out of range [0, 3600]"),
    ("[defaults]\nmax_commands = 1.5\n", 2, "expected an integer, got a number"),
    ("[defaults]\nmax_commands = 0\n", 2, "out of range [1, 65535]"),
    ("[defaults]\nmax_commands = 'many'\n", 2, 'expected an integer or "auto"'),
    ("[defaults]\nio_timeout_min = 0\n", 2, "out of range (0, 600]"),
    ("[defaults]\nio_timeout_factor = 0.5\n", 2, "out of range [1, 1000]"),
    ("[defaults]\nsame_path_retries = -1\n", 2, "out of range [0, 100]"),
    ("[defaults]\nmax_io_bytes = 1000\n", 2, "a multiple of 512"),
    ("[defaults]\nmax_io_bytes = '1 banana'\n", 2, "bad size"),
    ("[defaults]\npolicy_args = ['1']\n", 2, "policy_args needs policy in the same section"),
    ("[defaults]\npolicy = 'round-robin'\npolicy_args = ['1']\n", 3, "round-robin ps"),
    ("[defaults]\npolicy = 'quota'\npolicy_args = [true]\n", 3, "expected a string or an integer"),
    ("[defaults]\nio_timeout_min = 5\nio_timeout_max = 2\n", 3, "is above io_timeout_max"),
    ("defaults = 3\n", 1, "[defaults] must be a table"),
    ("[devices]\nvendor = 'x'\n", 1, "write [[devices]], not [devices]"),
    ("[[devices]]\npolicy = 'share'\n", 1, "needs vendor and/or product"),
    ("[[devices]]\nvendor = 'X'\n[[devices]]\n\nvendor = '(X'\n", 5, "bad regular expression"),
    ("[[devices]]\nvendor = ''\n", 2, "empty regular expression"),
    ("[[devices]]\nproduct = 3\n", 2, "product must be a string"),
    ("[[devices]]\nvendor = 'X'\nwwid = 'y'\n", 3, "unknown key 'wwid' in [[devices]] entry 1"),
    ("[[multipaths]]\nalias = 'a'\n", 1, "needs wwid"),
    ("[[multipaths]]\nwwid = 'has space'\n", 2, "printable characters without spaces"),
    (
        "[[multipaths]]\nwwid = '3a'\n[[multipaths]]\nwwid = '3a'\n",
        4,
        "already has an entry (line 2)",
    ),
    (
        "[[multipaths]]\nwwid = '3a'\nalias = 'x'\n[[multipaths]]\nwwid = '3b'\nalias = 'x'\n",
        6,
        "already used (line 3)",
    ),
    ("[[multipaths]]\nwwid = '3a'\nalias = '../etc'\n", 3, "no '/'"),
    ("[[multipaths]]\nwwid = '3a'\nvendor = 'X'\n", 3, "unknown key 'vendor'"),
    ("[blacklist]\nwwid = ['ok',\n  '[unclosed']\n", 3, "bad regular expression '[unclosed'"),
    ("[blacklist]\nwwids = []\n", 2, "did you mean 'wwid'?"),
    ("[blacklist]\ndevnode = 3\n", 2, "devnode must be an array of regular expressions"),
    ("[blacklist]\ndevice = [{ vendr = 'X' }]\n", 2, "did you mean 'vendor'?"),
    ("[blacklist]\ndevice = [{}]\n", 2, "needs vendor and/or product"),
    ("[blacklist_exceptions]\ndevnode = ['(']\n", 2, "bad regular expression"),
]


@pytest.mark.parametrize(("text", "line", "message"), BAD)
def test_semantic_errors_name_the_line(text: str, line: int, message: str, tmp_path: Path) -> None:
    error = error_of(text, tmp_path)
    assert message in error.problem
    assert error.line == line, str(error)


def test_conflict_across_sections_points_at_the_more_specific_line(tmp_path: Path) -> None:
    text = (
        "[defaults]\nio_timeout_min = 2.5\n\n[[devices]]\nvendor = '^MPATH$'\nio_timeout_max = 1\n"
    )
    error = error_of(text, tmp_path)
    assert error.line == 6
    assert "defaults section" in error.problem
    assert "devices section (vendor ^MPATH$)" in error.problem


def test_parse_config_names_the_given_file() -> None:
    with pytest.raises(ConfigError, match=r"^/etc/x\.toml:1: unknown section 'x'"):
        parse_config("[x]\n", "/etc/x.toml")


# -- CHAP validation -----------------------------------------------------------------------

CHAP_BAD = [
    ("[[chap]]\npassword_env = 'P'\n", 1, "needs username"),
    ("[[chap]]\nusername = 'u'\n", 1, "needs password_env (or password)"),
    ("[[chap]]\nusername = 'u'\npassword = 'p'\npassword_env = 'P'\n", 4, "not both"),
    ("[[chap]]\nusername = 'u'\npassword_env = 'not a name'\n", 3, "is not a variable name"),
    ("[[chap]]\nusername = 'u'\npassword = ''\n", 3, "1 to 255 bytes"),
    ("[[chap]]\nusername = 'u u'\npassword_env = 'P'\n", 2, "without white space"),
    (
        "[[chap]]\nportal = '198.18.1.2:99999'\nusername = 'u'\npassword_env = 'P'\n",
        2,
        "between 1 and 65535",
    ),
    ("[[chap]]\nportal = 'fd00::1'\nusername = 'u'\npassword_env = 'P'\n", 2, "in brackets"),
    (
        "[[chap]]\nusername = 'u'\npassword_env = 'P'\ntarget_username = 't'\n",
        1,
        "target_password_env is missing",
    ),
    (
        "[[chap]]\nusername = 'u'\npassword_env = 'P'\ntarget_password_env = 'T'\n",
        1,
        "target_username is missing",
    ),
    ("[[chap]]\nusername = 'u'\npasswd = 'x'\n", 3, "did you mean 'password'?"),
    (
        "[[chap]]\nportal = '198.18.1.2'\nusername = 'u'\npassword_env = 'P'\n"
        "[[chap]]\nportal = '198.18.1.2:3260'\nusername = 'v'\npassword_env = 'Q'\n",
        5,
        "same portal and target",
    ),
]


@pytest.mark.parametrize(("text", "line", "message"), CHAP_BAD)
def test_chap_errors_name_the_line(text: str, line: int, message: str, tmp_path: Path) -> None:
    error = error_of(text, tmp_path)
    assert message in error.problem
    assert error.line == line, str(error)


def test_literal_secret_in_a_readable_file_warns(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    file = tmp_path / "mpath.toml"
    file.write_text("[[chap]]\nusername = 'u'\npassword = 'supersecret12'\n")
    file.chmod(0o644)
    with caplog.at_level(logging.WARNING):
        load_config(file)
    assert "readable by others" in caplog.text
    assert "supersecret12" not in caplog.text
    caplog.clear()
    file.chmod(0o600)
    with caplog.at_level(logging.WARNING):
        load_config(file)
    assert caplog.text == ""


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[[multipaths]]\nwwid = "3a\\n"\n', "printable characters"),
        ('[[multipaths]]\nwwid = "3a"\nalias = "db\\n"\n', "alias"),
        ('[[chap]]\nusername = "u"\npassword_env = "P\\n"\n', "is not a variable name"),
    ],
)
def test_a_trailing_newline_is_not_accepted(text: str, message: str, tmp_path: Path) -> None:
    assert message in error_of(text, tmp_path).problem
