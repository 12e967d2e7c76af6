"""Parsing iSCSI URLs into typed records, with clear errors for bad ones (no rig)."""

from __future__ import annotations

import pytest

from mpath.errors import UsageError
from mpath.transports.urls import DEFAULT_PORT, IscsiUrl, parse_iscsi_url, portal_groups

RIG_URL = "iscsi://198.18.1.2/iqn.2026-11.org.mpath:rig.t-1a2b3c4d/1"


def test_rig_url_parses_into_its_parts() -> None:
    url = parse_iscsi_url(RIG_URL)
    assert url == IscsiUrl(
        host="198.18.1.2", port=DEFAULT_PORT, target="iqn.2026-11.org.mpath:rig.t-1a2b3c4d", lun=1
    )
    assert url.portal == "198.18.1.2:3260"
    assert str(url) == RIG_URL


def test_port_ipv6_and_hostname() -> None:
    url = parse_iscsi_url("iscsi://[fd00::2]:3261/iqn.2001-04.com.example:disk/0")
    assert (url.host, url.port, url.lun) == ("fd00::2", 3261, 0)
    assert url.portal == "[fd00::2]:3261"
    assert str(url) == "iscsi://[fd00::2]:3261/iqn.2001-04.com.example:disk/0"
    named = parse_iscsi_url("iscsi://array-a.example.com:860/iqn.2001-04.com.example:d/255")
    assert (named.host, named.port, named.lun) == ("array-a.example.com", 860, 255)


def test_percent_escapes_in_the_target_are_decoded_like_libiscsi() -> None:
    url = parse_iscsi_url("iscsi://10.0.0.1/iqn.2001-04.com.example%3Adisk/3")
    assert url.target == "iqn.2001-04.com.example:disk"


@pytest.mark.parametrize(
    "target",
    ["eui.02004567A425678D", "naa.52004567BA64678D", "naa.52004567BA64678D52004567BA64678D"],
)
def test_eui_and_naa_names_are_accepted(target: str) -> None:
    assert parse_iscsi_url(f"iscsi://10.0.0.1/{target}/0").target == target


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("http://10.0.0.1/iqn.2001-04.com.example:d/1", "does not start with 'iscsi://'"),
        ("iscsi://10.0.0.1", "no target name and LUN"),
        ("iscsi://10.0.0.1/iqn.2001-04.com.example:d", "no LUN"),
        ("iscsi://10.0.0.1/iqn.2001-04.com.example:d/", "LUN '' is not a number"),
        ("iscsi://10.0.0.1/iqn.2001-04.com.example:d/x", "LUN 'x' is not a number"),
        ("iscsi://10.0.0.1/iqn.2001-04.com.example:d/-1", "is not a number"),
        ("iscsi://10.0.0.1/iqn.2001-04.com.example:d/256", "LUN 256 above 255"),
        ("iscsi://10.0.0.1//1", "no target name"),
        ("iscsi://10.0.0.1/disk1/1", "'disk1' is not an iSCSI name"),
        ("iscsi://10.0.0.1/iqn.bad/1", "malformed iSCSI name"),
        ("iscsi://10.0.0.1/eui.123/1", "malformed iSCSI name"),
        ("iscsi://10.0.0.1/a/b/1", "too many '/'"),
        ("iscsi://:3260/iqn.2001-04.com.example:d/1", "no host"),
        ("iscsi://10.0.0.1:0/iqn.2001-04.com.example:d/1", "port '0'"),
        ("iscsi://10.0.0.1:70000/iqn.2001-04.com.example:d/1", "port '70000'"),
        ("iscsi://10.0.0.1:x/iqn.2001-04.com.example:d/1", "port 'x'"),
        ("iscsi://10.0.0.300/iqn.2001-04.com.example:d/1", "not a host name or IPv4"),
        ("iscsi://bad_host/iqn.2001-04.com.example:d/1", "not a host name or IPv4"),
        ("iscsi://[fd00::2/iqn.2001-04.com.example:d/1", "unclosed '['"),
        ("iscsi://[nope]/iqn.2001-04.com.example:d/1", "not an IPv6 address"),
        ("iscsi://[fd00::2]x/iqn.2001-04.com.example:d/1", "after the IPv6 address"),
        ("iscsi://user%pw@10.0.0.1/iqn.2001-04.com.example:d/1", "no CHAP"),
        ("iscsi://10.0.0.1/iqn.2001-04.com.example:d/1?header_digest=crc32c", "query"),
        ("iscsi://10.0.0.1/iqn.2001-04.com.example:d /1", "white space"),
        ("iscsi://10.0.0.1/iqn.2001-04.com.example%ff/1", "not valid UTF-8"),
        (f"iscsi://10.0.0.1/iqn.2001-04.com.example:{'x' * 220}/1", "longer than 223"),
    ],
)
def test_bad_urls_raise_one_clear_usage_error(text: str, why: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse_iscsi_url(text)
    message = str(caught.value)
    assert why in message
    assert "\n" not in message
    assert "iscsi://HOST[:PORT]/TARGET-IQN/LUN" in message
    assert caught.value.exit_code == 2


def test_portal_groups_read_sendtargets_addresses_as_a_url_spells_the_portal() -> None:
    addresses = ["198.18.1.2:3260,1", "[fd00::2]:3261,7", "198.18.2.2:3260,2"]
    groups = portal_groups(addresses)
    assert groups == {"198.18.1.2:3260": 1, "[fd00::2]:3261": 7, "198.18.2.2:3260": 2}
    url = parse_iscsi_url("iscsi://[fd00::2]:3261/iqn.2026-11.org.mpath:t/1")
    assert groups[url.portal] == 7


@pytest.mark.parametrize(
    "text",
    ["198.18.1.2:3260", "198.18.1.2:3260,", "198.18.1.2:3260,x", "198.18.1.2,1",
     ":3260,1", "198.18.1.2:0,1", "198.18.1.2:3260,70000", "[fd00::2:3260,1"],
)  # fmt: skip
def test_a_portal_without_a_readable_group_is_left_out(text: str) -> None:
    assert portal_groups([text]) == {}
