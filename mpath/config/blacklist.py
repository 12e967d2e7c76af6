"""Which paths and devices mpath must leave alone: ``[blacklist]`` and its exceptions.

The rules follow multipath.conf's blacklist section, so an administrator's habits
carry over:

* ``wwid``: regular expressions matched against the LUN's WWID;
* ``devnode``: regular expressions matched against the path's device name (``sdb``
  for ``/dev/sdb``) or, for an iSCSI path, its URL;
* ``device``: tables with ``vendor`` and/or ``product`` expressions, matched against the
  INQUIRY vendor and product (both given must match) by the same matcher as
  ``[[devices]]`` entries (:class:`~mpath.config.match.VendorProduct`).

Expressions are Python regular expressions searched anywhere in the text (like
multipath-tools' ``regexec``): anchor them with ``^`` and ``$`` to match whole values.
As in multipath-tools, an exception rescues only from rules of its own kind: a path
blacklisted by ``devnode`` stays blacklisted even if its WWID is in
``[blacklist_exceptions] wwid``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from mpath.config.match import VendorProduct


@dataclass(frozen=True, slots=True)
class PatternRule:
    """One ``wwid`` or ``devnode`` expression and where it was written."""

    pattern: re.Pattern[str]
    line: int | None

    def matches(self, text: str) -> bool:
        return self.pattern.search(text) is not None

    def describe(self) -> str:
        return repr(self.pattern.pattern)


@dataclass(frozen=True, slots=True)
class RuleSet:
    """The rules of one section (``[blacklist]`` or ``[blacklist_exceptions]``)."""

    wwid: tuple[PatternRule, ...] = ()
    devnode: tuple[PatternRule, ...] = ()
    device: tuple[VendorProduct, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.wwid or self.devnode or self.device)


def _where(file: Path | None, line: int | None) -> str:
    if file is None:
        return ""
    return f" ({file}:{line})" if line is not None else f" ({file})"


def blacklist_reason(
    blacklist: RuleSet,
    exceptions: RuleSet,
    *,
    wwid: str | None = None,
    vendor: str | None = None,
    product: str | None = None,
    devnode: str | None = None,
    file: Path | None = None,
) -> str | None:
    """Why the described device is blacklisted, or None when mpath may use it.

    Only the properties given are checked; the kinds are tried in multipath-tools'
    order (devnode, device, wwid), and the first kind that blacklists decides.
    """
    if devnode is not None:
        for rule in blacklist.devnode:
            if rule.matches(devnode):
                if any(exc.matches(devnode) for exc in exceptions.devnode):
                    break
                return f"devnode {devnode!r} matches blacklist devnode {rule.describe()}" + (
                    _where(file, rule.line)
                )
    if vendor is not None or product is not None:
        vendor_text, product_text = vendor or "", product or ""
        for device_rule in blacklist.device:
            if device_rule.matches(vendor_text, product_text):
                if any(exc.matches(vendor_text, product_text) for exc in exceptions.device):
                    break
                return (
                    f"vendor {vendor_text!r} product {product_text!r} matches blacklist "
                    f"device {device_rule.describe(quoted=True)}" + _where(file, device_rule.line)
                )
    if wwid is not None:
        for rule in blacklist.wwid:
            if rule.matches(wwid):
                if any(exc.matches(wwid) for exc in exceptions.wwid):
                    break
                return f"wwid {wwid!r} matches blacklist wwid {rule.describe()}" + _where(
                    file, rule.line
                )
    return None
