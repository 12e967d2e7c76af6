"""CHAP entries: most specific match, secrets from the environment, never printed."""

from __future__ import annotations

import pytest

from mpath.config import ConfigError, Secret, parse_config
from mpath.config.chap import parse_portal

FILE = "/etc/mpath.toml"
IQN = "iqn.2026-11.org.mpath:rig.a"
TEXT = f"""\
[[chap]]
username = "anyone"
password_env = "GLOBAL_SECRET"

[[chap]]
portal = "198.18.1.2"
username = "by-portal"
password = "portal-secret"

[[chap]]
target = "{IQN}"
username = "by-target"
password_env = "TARGET_SECRET"

[[chap]]
portal = "[fd00::1]:3261"
target = "{IQN}"
username = "both"
password_env = "BOTH_SECRET"
target_username = "array"
target_password_env = "ARRAY_SECRET"
"""
ENV = {
    "GLOBAL_SECRET": "g" * 12,
    "TARGET_SECRET": "t" * 12,
    "BOTH_SECRET": "b" * 12,
    "ARRAY_SECRET": "a" * 12,
}


def test_most_specific_entry_wins() -> None:
    chap = parse_config(TEXT, FILE).chap

    def user(portal: str, target: str) -> str | None:
        creds = chap.credentials_for(portal, target, environ=ENV)
        return creds.username if creds else None

    assert user("198.18.9.9:3260", "iqn.2026-11.org.other:x") == "anyone"
    assert user("198.18.1.2:3260", "iqn.2026-11.org.other:x") == "by-portal"
    assert user("198.18.1.2", "iqn.2026-11.org.other:x") == "by-portal"
    assert user("198.18.1.2:3261", "iqn.2026-11.org.other:x") == "anyone"  # other port
    assert user("198.18.1.2:3260", IQN) == "by-target"  # target beats portal
    assert user("[fd00:0::1]:3261", IQN) == "both"  # IPv6 compared as addresses


def test_mutual_credentials_and_literal_secrets() -> None:
    chap = parse_config(TEXT, FILE).chap
    mutual = chap.credentials_for("[fd00::1]:3261", IQN, environ=ENV)
    assert mutual is not None and mutual.mutual
    assert mutual.password.reveal() == "b" * 12
    assert mutual.target_username == "array"
    assert mutual.target_password == Secret("a" * 12)
    one_way = chap.credentials_for("198.18.1.2:3260", "iqn.2026-11.org.other:x", environ=ENV)
    assert one_way is not None and not one_way.mutual
    assert one_way.password.reveal() == "portal-secret"


def test_secrets_never_print() -> None:
    chap = parse_config(TEXT, FILE).chap
    creds = chap.credentials_for("[fd00::1]:3261", IQN, environ=ENV)
    for text in (repr(creds), str(creds), repr(chap), f"{creds}"):
        for secret in ENV.values():
            assert secret not in text
        assert "portal-secret" not in repr(chap)


def test_missing_environment_variable_names_file_and_line() -> None:
    chap = parse_config(TEXT, FILE).chap
    with pytest.raises(ConfigError) as caught:
        chap.credentials_for("198.18.1.2:3260", IQN, environ={})
    assert caught.value.line == 13
    assert "TARGET_SECRET, which is not set" in str(caught.value)
    assert caught.value.exit_code == 2
    with pytest.raises(ConfigError, match="ARRAY_SECRET, which is empty"):
        chap.credentials_for(
            "[fd00::1]:3261", IQN, environ={"BOTH_SECRET": "x" * 12, "ARRAY_SECRET": ""}
        )


def test_no_entry_no_credentials() -> None:
    chap = parse_config(f'[[chap]]\ntarget = "{IQN}"\nusername = "u"\npassword_env = "P"\n').chap
    assert chap.credentials_for("198.18.1.2:3260", "iqn.2026-11.org.other:x", environ={}) is None
    assert parse_config("").chap.credentials_for("198.18.1.2", IQN) is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("198.18.1.2", ("198.18.1.2", 3260)),
        ("198.18.1.2:3261", ("198.18.1.2", 3261)),
        ("Portal.Example.", ("portal.example", 3260)),
        ("[FD00::1]", ("fd00::1", 3260)),
        ("[fd00::1]:1", ("fd00::1", 1)),
    ],
)
def test_parse_portal(text: str, expected: tuple[str, int]) -> None:
    assert parse_portal(text) == expected


@pytest.mark.parametrize("text", ["", ":3260", "h:0", "h:x", "[fd00::1", "[nothex]:1", "a:b:c"])
def test_parse_portal_refuses(text: str) -> None:
    with pytest.raises(ValueError):
        parse_portal(text)
