"""iSCSI discovery without a target: portal parsing, grouping, what CHAP a discovery
session uses. The real thing (SendTargets, logins, CHAP on tgt) is in
tests/cli/test_discover.py."""

from __future__ import annotations

import asyncio

import pytest

from mpath.config.chap import ChapCredentials, Secret
from mpath.discovery.iscsi import (
    DiscoveredPath,
    _one_way,
    discover,
    group_paths,
    parse_portal,
    parse_target_address,
    portal_text,
)
from mpath.errors import UsageError
from mpath.scsi.probe import LunInfo


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("198.18.1.2", ("198.18.1.2", 3260)),
        ("198.18.1.2:3261", ("198.18.1.2", 3261)),
        ("[fd00::1]:3260", ("fd00::1", 3260)),
        ("Array-A.example", ("array-a.example", 3260)),
    ],
)
def test_portals_are_host_and_port(text: str, expected: tuple[str, int]) -> None:
    assert parse_portal(text) == expected


@pytest.mark.parametrize("text", ["", "198.18.1.2:0", "198.18.1.2:x", "fd00::1", "a b"])
def test_bad_portals_are_usage_errors(text: str) -> None:
    with pytest.raises(UsageError, match="bad portal"):
        parse_portal(text)


def test_target_addresses_lose_their_portal_group_tag() -> None:
    assert parse_target_address("198.18.1.2:3260,1") == ("198.18.1.2", 3260)
    assert parse_target_address("[fd00::2]:3261,7") == ("fd00::2", 3261)
    assert parse_target_address("garbage here,1") is None
    assert portal_text("fd00::2", 3261) == "[fd00::2]:3261"


def _path(url: str, wwid: str, window: int | None) -> DiscoveredPath:
    info = LunInfo(wwid, "vpd83-naa6", "MPATH", "RIG-LUN", "0001", 512, 1 << 26, None, None)
    return DiscoveredPath(url, "p", "t", 1, info, window)


def test_paths_are_grouped_by_wwid_and_the_cap_is_the_smallest_window() -> None:
    devices = group_paths(
        [
            _path("iscsi://a/t/1", "3600a", 129),
            _path("iscsi://b/t/2", "3600b", None),
            _path("iscsi://b/t/1", "3600a", 64),
        ]
    )
    assert [d.wwid for d in devices] == ["3600a", "3600b"]
    first = devices[0].describe()
    assert first["paths"] == ["iscsi://a/t/1", "iscsi://b/t/1"]
    assert first["max_commands"] == 64
    assert first["size_bytes"] == 1 << 26 and first["block_size"] == 512
    assert devices[1].describe()["max_commands"] == 64  # none known: the filter default


def test_discovery_sessions_use_one_way_chap_only() -> None:
    mutual = ChapCredentials("host1", Secret("s1"), "array1", Secret("s2"))
    one_way = _one_way(mutual)
    assert one_way is not None and not one_way.mutual
    assert one_way.username == "host1" and one_way.password.reveal() == "s1"
    assert _one_way(None) is None


def test_bad_portal_text_is_refused_before_anything_is_contacted() -> None:
    with pytest.raises(UsageError, match="bad portal"):
        asyncio.run(discover(["127.0.0.1:1", "198.18.1.2:99999"]))
    with pytest.raises(UsageError, match="give at least one PORTAL"):
        asyncio.run(discover([]))


def test_a_refused_portal_is_one_problem_not_an_exception() -> None:
    result = asyncio.run(discover(["127.0.0.1:1"], timeout=2))
    assert result.devices == []
    assert len(result.problems) == 1
    problem = result.problems[0]
    assert problem.portal == "127.0.0.1:1"
    assert "SendTargets discovery failed" in problem.line()
    assert "Connection refused" in problem.line()
