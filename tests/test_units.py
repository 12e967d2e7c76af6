from __future__ import annotations

import pytest

from mpath.errors import UsageError
from mpath.units import Rate, format_size, parse_rate, parse_size


@pytest.mark.parametrize(
    ("text", "expected"),
    [("512", 512), ("4k", 4096), ("256K", 262144), ("1G", 1024**3), ("1GiB", 1024**3),
     ("64MiB", 64 * 1024**2), (" 2 m ", 2 * 1024**2), ("1kib", 1024)],
)  # fmt: skip
def test_parse_size(text: str, expected: int) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["", "1.5G", "-1", "12Q", "G", "1 GG", "12iB"])
def test_parse_size_rejects_junk(text: str) -> None:
    with pytest.raises(UsageError, match="bad size"):
        parse_size(text)


@pytest.mark.parametrize("text", ["64MB", "1kB", "1GB", "2tb"])
def test_decimal_looking_suffixes_are_refused_saying_what_to_write(text: str) -> None:
    """mpath prints MB as 10^6 bytes (MB/s): a size "1MB" would mean two things."""
    with pytest.raises(UsageError, match=r"ambiguous; write \d+[KMGT] or \d+[KMGT]iB for"):
        parse_size(text)


def test_the_refusal_gives_both_readings() -> None:
    with pytest.raises(UsageError) as caught:
        parse_size("64MB")
    assert str(caught.value) == (
        "bad size '64MB': ambiguous; write 64M or 64MiB for 67108864 bytes (binary, as dd), "
        "or 64000000 for 64000000 bytes"
    )


def test_format_size_round_trips() -> None:
    for text in ("256K", "1G", "3M", "1000"):
        assert format_size(parse_size(text)) == text


@pytest.mark.parametrize(
    ("text", "bits"),
    [("400mbit", 400_000_000), ("1gbit", 10**9), ("1.5gbit", 1_500_000_000),
     ("50mbps", 400_000_000), ("100kbit", 100_000)],
)  # fmt: skip
def test_parse_rate(text: str, bits: int) -> None:
    assert parse_rate(text).bits_per_second == bits


@pytest.mark.parametrize("text", ["fast", "400", "400mb", "mbit", "1kbit"])
def test_parse_rate_rejects_junk(text: str) -> None:
    with pytest.raises(UsageError, match="bad rate"):
        parse_rate(text)


def test_rate_text_forms() -> None:
    rate = parse_rate("400mbit")
    assert str(rate) == "400mbit"
    assert rate.tc_text() == "400000000bit"
    assert rate.bytes_per_second == 50e6
    assert str(Rate(1_234_567)) == "1234567bit"
