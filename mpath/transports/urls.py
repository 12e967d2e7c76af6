"""iSCSI path URLs: ``iscsi://HOST[:PORT]/TARGET-IQN/LUN`` as a typed, validated record.

Users and configuration name paths by URL (the form libiscsi and its tools use), and
the filter layer groups and reports paths by it, so a URL is parsed once, strictly,
into an :class:`IscsiUrl`. Anything that cannot be exactly right raises
:class:`~mpath.errors.UsageError` saying what is wrong, instead of reaching libiscsi,
whose parser accepts more than it should (a trailing ``?`` query, credentials, CHAP
secrets from the environment) and reports problems as multi-line text.

What is accepted:

* ``HOST``: an IPv4 address, an IPv6 address in brackets (``[fd00::1]``), or a DNS name;
* ``PORT``: 1-65535, default 3260 (the iSCSI well-known port);
* ``TARGET-IQN``: an iSCSI name (``iqn.YYYY-MM.authority[:id]``, ``eui.`` + 16 hex
  digits, ``naa.`` + 16 or 32 hex digits), percent-escapes decoded (``%3A`` is ``:``)
  as libiscsi does;
* ``LUN``: 0-255. libiscsi 1.19.0 writes the LUN into the PDU as a raw 16-bit value,
  which is SAM's peripheral device addressing only below 256, so larger numbers would
  silently address another unit.

User names and passwords in the URL (CHAP) are refused: mpath does not do CHAP yet, and
a secret in a URL ends up in logs and ``ps`` output.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from urllib.parse import unquote

from mpath.errors import UsageError

SCHEME = "iscsi://"
DEFAULT_PORT = 3260
MAX_LUN = 255
#: RFC 7143 section 4.2.7.1: an iSCSI name is at most 223 bytes.
MAX_NAME_BYTES = 223
SYNTAX = "iscsi://HOST[:PORT]/TARGET-IQN/LUN"

_HOSTNAME_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")
_IQN = re.compile(r"^iqn\.\d{4}-\d{2}\.[A-Za-z0-9][A-Za-z0-9.\-:_]*$")
_EUI = re.compile(r"^eui\.[0-9A-Fa-f]{16}$")
_NAA = re.compile(r"^naa\.(?:[0-9A-Fa-f]{16}|[0-9A-Fa-f]{32})$")


@dataclass(frozen=True, slots=True)
class IscsiUrl:
    """One path to one logical unit: portal (host, port), target name and LUN."""

    host: str
    port: int
    target: str
    lun: int

    @property
    def portal(self) -> str:
        """The portal as libiscsi's connect calls take it (``host:port``, IPv6 bracketed)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    def __str__(self) -> str:
        """The canonical URL: the default port omitted, as the rig and iscsi-* tools print it."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        port = "" if self.port == DEFAULT_PORT else f":{self.port}"
        return f"{SCHEME}{host}{port}/{self.target}/{self.lun}"


def _bad(text: str, why: str) -> UsageError:
    return UsageError(f"bad iSCSI URL {text!r}: {why} (expected {SYNTAX})")


def _parse_host_port(text: str, authority: str) -> tuple[str, int]:
    if authority.startswith("["):
        end = authority.find("]")
        if end < 0:
            raise _bad(text, "unclosed '[' in the IPv6 address")
        host, rest = authority[1:end], authority[end + 1 :]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise _bad(text, f"{host!r} is not an IPv6 address") from None
        if rest and not rest.startswith(":"):
            raise _bad(text, f"unexpected {rest!r} after the IPv6 address")
        port_text = rest[1:] if rest else None
    else:
        host, sep, port_text_or_empty = authority.partition(":")
        port_text = port_text_or_empty if sep else None
        if not host:
            raise _bad(text, "no host")
        if not _valid_hostname_or_ipv4(host):
            raise _bad(text, f"{host!r} is not a host name or IPv4 address")
    if port_text is None:
        return host, DEFAULT_PORT
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise _bad(text, f"port {port_text!r} is not a number between 1 and 65535")
    return host, int(port_text)


def _valid_hostname_or_ipv4(host: str) -> bool:
    if re.fullmatch(r"[0-9.]+", host):
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            return False
        return True
    name = host[:-1] if host.endswith(".") else host
    return len(name) <= 253 and all(_HOSTNAME_LABEL.match(label) for label in name.split("."))


def _parse_target(text: str, raw: str) -> str:
    if not raw:
        raise _bad(text, "no target name")
    try:
        target = unquote(raw, errors="strict")
    except UnicodeDecodeError:
        raise _bad(text, "percent-escapes in the target name are not valid UTF-8") from None
    if len(target.encode()) > MAX_NAME_BYTES:
        raise _bad(text, f"target name longer than {MAX_NAME_BYTES} bytes")
    lowered = target.lower()
    if not (_IQN.match(target) or _EUI.match(target) or _NAA.match(target)):
        if lowered.startswith(("iqn.", "eui.", "naa.")):
            why = f"malformed iSCSI name {target!r}"
        else:
            why = f"{target!r} is not an iSCSI name (iqn., eui. or naa.)"
        raise _bad(text, why)
    return target


def parse_iscsi_url(text: str) -> IscsiUrl:
    """Parse and validate an iSCSI URL; raise UsageError saying what is wrong.

    >>> parse_iscsi_url("iscsi://198.18.1.2/iqn.2026-11.org.mpath:rig.a/1").portal
    '198.18.1.2:3260'
    """
    if not isinstance(text, str):
        raise UsageError(f"bad iSCSI URL {text!r}: not a string")
    if any(ch.isspace() for ch in text):
        raise _bad(text, "contains white space")
    if not text.startswith(SCHEME):
        raise _bad(text, f"does not start with {SCHEME!r}")
    rest = text[len(SCHEME) :]
    if "?" in rest or "#" in rest:
        raise _bad(text, "query or fragment ('?', '#') not supported")
    authority, slash, path = rest.partition("/")
    if "@" in authority:
        raise _bad(text, "user names and passwords in the URL are not supported (no CHAP)")
    if not slash:
        raise _bad(text, "no target name and LUN")
    host, port = _parse_host_port(text, authority)
    target_raw, slash, lun_text = path.rpartition("/")
    if not slash:
        raise _bad(text, "no LUN after the target name")
    if "/" in target_raw:
        raise _bad(text, "too many '/' (a target name cannot contain '/')")
    target = _parse_target(text, target_raw)
    if not lun_text.isdigit():
        raise _bad(text, f"LUN {lun_text!r} is not a number")
    lun = int(lun_text)
    if lun > MAX_LUN:
        raise _bad(text, f"LUN {lun} above {MAX_LUN} (libiscsi addresses LUNs 0-{MAX_LUN} only)")
    return IscsiUrl(host=host, port=port, target=target, lun=lun)


def portal_groups(addresses: list[str]) -> dict[str, int]:
    """SendTargets ``TargetAddress`` texts as {portal: target portal group tag}.

    A TargetAddress is ``HOST:PORT,TPGT`` (RFC 7143 section 13.8; IPv6 bracketed);
    the portal is spelled as :attr:`IscsiUrl.portal` spells it, so a path's portal can
    be looked up directly. Entries without a tag, with a port or tag out of range, or
    that cannot be read are left out: a portal whose group is not known is never taken
    to share a group with anything.
    """
    groups: dict[str, int] = {}
    for text in addresses:
        address, comma, tag = text.rpartition(",")
        if not comma or not tag.isdigit() or not 0 <= int(tag) <= 0xFFFF:
            continue
        host, colon, port = address.rpartition(":")
        if not colon or not port.isdigit() or not 0 < int(port) <= 0xFFFF or not host:
            continue
        if host.startswith("[") != host.endswith("]"):
            continue
        groups[f"{host}:{int(port)}"] = int(tag)
    return groups
