"""The selector registry's helpers (mpath/selectors/__init__.py)."""

from __future__ import annotations

import pytest

from mpath.selectors import UnknownPolicyError, create_selector, split_policy


def test_split_policy_gives_the_name_and_its_selector_arguments() -> None:
    assert split_policy("share fill=bdp") == ("share", ("fill=bdp",))
    assert split_policy("  service-time   0 ") == ("service-time", ("0",))
    assert split_policy("round-robin") == ("round-robin", ())
    assert split_policy("") == ("", ())


def test_a_split_policy_builds_its_selector_and_a_bad_name_is_refused() -> None:
    name, args = split_policy("share fill=bdp")
    assert create_selector(name, args).status()["fill"] == "bdp"
    with pytest.raises(UnknownPolicyError, match="unknown policy 'nope'"):
        create_selector(*split_policy("nope 1"))
