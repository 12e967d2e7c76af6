"""SourceMap: the line of every table, key and array element of a TOML text."""

from __future__ import annotations

import json
import tomllib

from hypothesis import given
from hypothesis import strategies as st

from mpath.config.source import SourceMap

TEXT = """\
# comment with key = "value" inside
[defaults]
policy = "share"   # trailing comment
"quoted key" = 1
dotted.inner = 2

[[devices]]
vendor = '''
multi-line literal
fake = 3
'''
product = "x"

[[devices]]
vendor = "y"
policy_args = [
  "a",   # first
  "b", "c",
]

[blacklist]
device = [{ vendor = "ATA" },
          { product = "P" }]
wwid = ["w1", "w2"]
"""


def test_tables_keys_and_elements_have_their_lines() -> None:
    tomllib.loads(TEXT)  # the scanner only ever sees valid TOML
    source = SourceMap(TEXT)
    assert source.line_of(("defaults",)) == 2
    assert source.line_of(("defaults", "policy")) == 3
    assert source.line_of(("defaults", "quoted key")) == 4
    assert source.line_of(("defaults", "dotted", "inner")) == 5
    assert source.line_of(("devices", 0)) == 7
    assert source.line_of(("devices", 0, "vendor")) == 8
    assert source.line_of(("devices", 0, "product")) == 12
    assert source.line_of(("devices", 1)) == 14
    assert source.line_of(("devices", 1, "policy_args")) == 16
    assert source.line_of(("devices", 1, "policy_args", 0)) == 17
    assert source.line_of(("devices", 1, "policy_args", 2)) == 18
    assert source.line_of(("blacklist", "device", 1)) == 23
    assert source.line_of(("blacklist", "device", 1, "product")) == 23
    assert source.line_of(("blacklist", "wwid", 1)) == 24


def test_text_inside_strings_is_not_taken_for_keys() -> None:
    source = SourceMap(TEXT)
    assert not source.has(("devices", 0, "fake"))
    assert not source.has(("key",))


def test_unknown_paths_fall_back_to_the_enclosing_table() -> None:
    source = SourceMap(TEXT)
    assert source.line_of(("devices", 1, "missing")) == 14
    assert source.line_of(("nowhere",)) is None


def test_array_of_tables_nested_under_a_table() -> None:
    text = "[[a]]\nx = 1\n[a.b]\ny = 2\n[[a]]\nx = 3\n"
    source = SourceMap(text)
    assert source.line_of(("a", 0, "b", "y")) == 4
    assert source.line_of(("a", 1, "x")) == 6


@given(st.text(max_size=200))
def test_never_raises_on_any_text(text: str) -> None:
    SourceMap(text).line_of(("a", 0, "b"))


@given(
    st.dictionaries(
        st.from_regex(r"[a-z_]{1,8}", fullmatch=True),
        st.one_of(
            st.integers(),
            st.text(st.characters(exclude_categories=["Cs"]), max_size=10),
            st.lists(st.integers(), max_size=3),
        ),
        min_size=1,
        max_size=6,
    )
)
def test_each_key_of_a_generated_table_is_on_its_own_line(table: dict[str, object]) -> None:
    def render(value: object) -> str:
        if isinstance(value, str):
            return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")
        if isinstance(value, list):
            return "[" + ", ".join(render(v) for v in value) + "]"
        return str(value)

    lines = ["[section]", *(f"{key} = {render(value)}" for key, value in table.items())]
    text = "\n".join(lines) + "\n"
    assert tomllib.loads(text)["section"] == table
    source = SourceMap(text)
    for number, key in enumerate(table, start=2):
        assert source.line_of(("section", key)) == number
