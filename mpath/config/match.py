"""INQUIRY vendor/product expressions: the one matcher of ``[[devices]]`` entries and
``[blacklist] device`` rules.

multipath.conf writes both the same way (a ``vendor`` and/or a ``product`` regular
expression) and means the same by them, so they are one type here: an expression
given must be *found* in the text (searched, like multipath-tools' ``regexec``, not
anchored), both given must match, and a vendor or product the LUN did not report
matches no expression.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class VendorProduct:
    """A ``vendor`` and/or ``product`` expression, and the file line it was written on."""

    vendor: re.Pattern[str] | None
    product: re.Pattern[str] | None
    line: int | None = None

    def matches(self, vendor: str | None, product: str | None) -> bool:
        """Every expression given is found in the LUN's vendor / product."""
        if self.vendor is not None and (vendor is None or self.vendor.search(vendor) is None):
            return False
        return self.product is None or (
            product is not None and self.product.search(product) is not None
        )

    def describe(self, *, quoted: bool = False) -> str:
        """``vendor X product Y`` (with the expressions quoted for messages)."""
        parts = []
        for name, pattern in (("vendor", self.vendor), ("product", self.product)):
            if pattern is not None:
                text = repr(pattern.pattern) if quoted else pattern.pattern
                parts.append(f"{name} {text}")
        return " ".join(parts)
