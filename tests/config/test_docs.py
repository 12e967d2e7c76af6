"""docs/config.md documents every setting with its real default, and every section."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from mpath.config.load import CHAP_KEYS, SECTIONS
from mpath.config.schema import SETTINGS, default_for_display

DOCS = Path(__file__).resolve().parents[2] / "docs"
CONFIG_MD = (DOCS / "config.md").read_text()


def _row(name: str) -> list[str]:
    match = re.search(rf"^\| `{re.escape(name)}` \|(.*)\|$", CONFIG_MD, re.MULTILINE)
    assert match, f"docs/config.md has no table row for {name}"
    return [cell.strip() for cell in match.group(1).split("|")]


@pytest.mark.parametrize("name", list(SETTINGS))
def test_every_setting_has_a_row_with_its_default(name: str) -> None:
    kind, default, meaning = _row(name)
    assert kind and meaning
    value = default_for_display(name)
    spelled = f'`"{value}"`' if isinstance(value, str) else f"`{value}`"
    if isinstance(value, list):
        spelled = f"`{value!r}`".replace("'", '"')
    assert default.startswith(spelled), f"{name}: docs say {default}, code says {spelled}"


@pytest.mark.parametrize("name", [*SECTIONS, *CHAP_KEYS])
def test_every_section_and_chap_key_is_documented(name: str) -> None:
    assert f"`{name}`" in CONFIG_MD or f"`[{name}]`" in CONFIG_MD or f"`[[{name}]]`" in CONFIG_MD


def test_the_example_sets_every_setting_in_defaults() -> None:
    example = (DOCS / "mpath.toml.example").read_text()
    defaults = example.split("\n[defaults]\n", 1)[1].split("\n[", 1)[0]
    for name in SETTINGS:
        if name != "policy_args":
            assert re.search(rf"^{name} = ", defaults, re.MULTILINE), name
