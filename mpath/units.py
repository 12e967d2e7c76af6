"""Parsing of the sizes and rates users type (``1G``, ``256KiB``, ``400mbit``).

Both parsers are strict: anything they cannot read exactly raises
:class:`~mpath.errors.UsageError` naming the bad text, so a typo never silently turns
into a different size or speed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from mpath.errors import UsageError

_SIZE_RE = re.compile(r"^\s*(\d+)\s*([kmgt]?)(i?b?)\s*$", re.IGNORECASE)
_SIZE_POWERS = {"": 0, "k": 1, "m": 2, "g": 3, "t": 4}


def parse_size(text: str) -> int:
    """Return the number of bytes in ``text``.

    Suffixes K, M, G, T (optionally followed by ``iB``) are binary multiples, as in dd,
    fio and tgtadm: ``4k`` is 4096 bytes, ``1G`` is 1073741824. ``MB`` and its kin are
    refused: mpath's own output counts MB as 10^6 bytes (MB/s), so "1MB" would mean
    1048576 here and 1000000 there; the message says what to write instead.

    >>> parse_size("256K")
    262144
    >>> parse_size("1GiB")
    1073741824
    """
    match = _SIZE_RE.match(text)
    if not match:
        raise UsageError(f"bad size {text!r}: expected a number with an optional K/M/G/T suffix")
    number, unit, tail = match.groups()
    if tail.lower() == "b" and unit:
        binary = f"{number}{unit.upper()}"
        decimal = int(number) * 1000 ** _SIZE_POWERS[unit.lower()]
        raise UsageError(
            f"bad size {text!r}: ambiguous; write {binary} or {binary}iB for "
            f"{int(number) << (10 * _SIZE_POWERS[unit.lower()])} bytes (binary, as dd), "
            f"or {decimal} for {decimal} bytes"
        )
    if tail.lower() == "ib" and not unit:
        raise UsageError(f"bad size {text!r}: expected a number with an optional K/M/G/T suffix")
    return int(number) * (1 << (10 * _SIZE_POWERS[unit.lower()]))


def format_size(nbytes: int) -> str:
    """Render a byte count the short way users type it (``256K``, ``1G``)."""
    for suffix, power in (("T", 4), ("G", 3), ("M", 2), ("K", 1)):
        unit = 1024**power
        if nbytes >= unit and nbytes % unit == 0:
            return f"{nbytes // unit}{suffix}"
    return str(nbytes)


_RATE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(bit|bps)\s*$", re.IGNORECASE)
_RATE_POWERS = {"": 0, "k": 1, "m": 2, "g": 3, "t": 4}


@dataclass(frozen=True, slots=True)
class Rate:
    """A link speed, as tc understands it.

    Units follow tc(8): ``bit`` is bits per second, ``bps`` is *bytes* per second,
    with decimal k/m/g/t multipliers (``400mbit`` = 400,000,000 bit/s = 50 MB/s).
    """

    bits_per_second: int

    @property
    def bytes_per_second(self) -> float:
        return self.bits_per_second / 8

    def tc_text(self) -> str:
        """The rate written for tc, exact to the bit."""
        return f"{self.bits_per_second}bit"

    def __str__(self) -> str:
        for suffix, power in (("gbit", 3), ("mbit", 2), ("kbit", 1)):
            unit = 1000**power
            if self.bits_per_second % unit == 0:
                return f"{self.bits_per_second // unit}{suffix}"
        return f"{self.bits_per_second}bit"


def parse_rate(text: str) -> Rate:
    """Parse a tc-style rate such as ``400mbit``, ``1gbit`` or ``50mbps``.

    >>> parse_rate("400mbit").bytes_per_second
    50000000.0
    """
    match = _RATE_RE.match(text)
    if not match:
        raise UsageError(
            f"bad rate {text!r}: expected a number and a unit such as 400mbit, 1gbit or 50mbps"
        )
    number, prefix, unit = match.groups()
    value = float(number) * 1000 ** _RATE_POWERS[prefix.lower()]
    if unit.lower() == "bps":
        value *= 8
    bits = round(value)
    if bits < 8000:
        raise UsageError(f"bad rate {text!r}: below 8kbit, too slow to carry iSCSI")
    return Rate(bits)
