"""Blacklist rules and exceptions, with multipath-tools' per-kind semantics."""

from __future__ import annotations

from mpath.config import parse_config

TEXT = """\
[blacklist]
wwid = ["^3600508b1"]
devnode = ["^(ram|loop)[0-9]+$", "^iscsi://198\\\\.18\\\\.9\\\\."]
device = [{ vendor = "^ATA$" }, { vendor = "^QEMU$", product = "HARDDISK" }]

[blacklist_exceptions]
wwid = ["^3600508b1ff$"]
devnode = ["^loop7$"]
device = [{ product = "^SPECIAL$" }]
"""


def reason(**identity: str) -> str | None:
    return parse_config(TEXT, "/etc/mpath.toml").blacklist_reason(**identity)


def test_each_kind_blacklists() -> None:
    assert reason(wwid="3600508b1aa") == (
        "wwid '3600508b1aa' matches blacklist wwid '^3600508b1' (/etc/mpath.toml:2)"
    )
    assert reason(devnode="loop3") is not None
    assert reason(devnode="iscsi://198.18.9.2/iqn.2026-11.x:y/1") is not None
    assert reason(vendor="ATA", product="disk") is not None
    found = reason(vendor="QEMU", product="QEMU HARDDISK")
    assert found is not None and "/etc/mpath.toml:4" in found


def test_unmatched_or_partial_device_rules_do_not_blacklist() -> None:
    assert reason(wwid="36001405aa", devnode="sdb", vendor="MPATH", product="RIG-LUN") is None
    assert reason(vendor="QEMU", product="QEMU CD-ROM") is None  # both must match
    assert reason(devnode="loop3x") is None  # anchored by the rule


def test_exceptions_rescue_their_own_kind_only() -> None:
    assert reason(devnode="loop7") is None
    assert reason(wwid="3600508b1ff") is None
    assert reason(vendor="ATA", product="SPECIAL") is None
    # a devnode exception does not rescue a WWID match, nor the reverse
    assert reason(devnode="loop7", wwid="3600508b1aa") is not None
    assert reason(devnode="loop3", wwid="3600508b1ff") is not None


def test_no_rules_no_blacklisting() -> None:
    assert parse_config("").blacklist_reason(wwid="3", devnode="sda") is None
