"""The one vendor/product matcher of [[devices]] entries and blacklist device rules."""

from __future__ import annotations

import re
from pathlib import Path

from mpath.config import load_config
from mpath.config.match import VendorProduct


def test_expressions_are_searched_and_both_given_must_match() -> None:
    rule = VendorProduct(re.compile("^MPATH$"), re.compile("RIG"))
    assert rule.matches("MPATH", "RIG-LUN")
    assert not rule.matches("MPATHX", "RIG-LUN")
    assert not rule.matches("MPATH", "DISK")
    assert not rule.matches(None, "RIG-LUN")  # an unknown vendor matches no expression
    assert VendorProduct(None, re.compile("LUN")).matches(None, "RIG-LUN")
    assert rule.describe() == "vendor ^MPATH$ product RIG"
    assert rule.describe(quoted=True) == "vendor '^MPATH$' product 'RIG'"


def test_devices_entries_and_blacklist_rules_are_the_same_matcher(tmp_path: Path) -> None:
    file = tmp_path / "mpath.toml"
    file.write_text(
        "[[devices]]\nvendor = 'MPATH'\nproduct = 'RIG'\npolicy = 'quota'\n\n"
        "[blacklist]\ndevice = [{vendor = 'MPATH', product = 'RIG'}]\n"
    )
    config = load_config(file)
    entry, rule = config.devices[0].device, config.blacklist.device[0]
    assert type(entry) is type(rule) is VendorProduct
    assert (entry.vendor, entry.product) == (rule.vendor, rule.product)
    assert (entry.line, rule.line) == (1, 7)
    for vendor, product in (("MPATH", "RIG-LUN"), ("LIO", "RIG-LUN"), ("MPATH", None)):
        assert entry.matches(vendor, product) == rule.matches(vendor, product)
