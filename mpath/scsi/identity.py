"""LU identity: the WWID by which paths are grouped, chosen and written as multipath does.

Paths are put in one multipath device only when their identities are equal, so the
choice of designator and its rendering follow multipath-tools' ``parse_vpd_pg83``
(libmultipath/discovery.c) exactly: the same LU gives the same WWID string under mpath
and under multipathd, and ``mpath`` output can be matched against ``multipath -ll``.

Only designators associated with the logical unit count (not port or device ones).
Among those, the highest rank wins; on a tie, the first listed:

====  ==========================================  ===========================  ============
rank  designator                                  WWID                         source
====  ==========================================  ===========================  ============
8     NAA IEEE Registered Extended (type 6, 16 B)  ``3`` + hex                  vpd83-naa6
7     NAA IEEE Registered (type 5, 8 B)            ``3`` + hex                  vpd83-naa5
6     NAA IEEE Extended (type 2, 8 B)              ``3`` + hex                  vpd83-naa2
4     EUI-64 (8, 12 or 16 B)                       ``2`` + hex                  vpd83-eui64
3     SCSI name string ``eui.``/``naa.``/``iqn.``  ``2``/``3``/``8`` + name     vpd83-scsi-name
2     T10 vendor ID (>= 8 B)                       ``1`` + text, spaces -> _    vpd83-t10
1     NAA Locally Assigned (type 3, 8 B)           ``3`` + hex                  vpd83-naa3
====  ==========================================  ===========================  ============

Hex is lower case. A SCSI name string loses its 4-character prefix (``eui.``/``naa.``
names are lower-cased, so ``naa.6001...`` gives the same WWID as the binary NAA).
A designator whose length does not fit its type is skipped.

This differs from udev's ``scsi_id`` (which multipathd uses by default through
``ID_SERIAL``) only for LUs without an NAA 6/5/2 designator: ``scsi_id`` ranks every NAA
(the local type 3 too) above EUI-64 and T10 and ignores SCSI name strings. A locally
assigned NAA is unique only within one target (tgt gives ``3`` + ``3000000100000001``
to LUN 1 of every target), so it comes last here.

With no usable designator, the unit serial number (VPD 0x80) is the fallback, rendered
as ``scsi_id`` renders it: ``S`` + vendor (8) + product (16) + serial, runs of
whitespace turned into ``_``. Source ``vpd80-serial``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Final

from mpath.scsi.errors import NoIdentityError
from mpath.scsi.vpd import Association, Designator, DesignatorType

_NAA_RANK: Final[dict[int, tuple[int, int]]] = {
    # NAA type: (rank, required designator length)
    6: (8, 16),
    5: (7, 8),
    2: (6, 8),
    3: (1, 8),
}
_EUI64_RANK: Final = 4
_EUI64_LENGTHS: Final = frozenset({8, 12, 16})
_SCSI_NAME_RANK: Final = 3
_SCSI_NAME_PREFIXES: Final[dict[bytes, str]] = {b"eui.": "2", b"naa.": "3", b"iqn.": "8"}
_T10_RANK: Final = 2
_T10_MIN_LENGTH: Final = 8
_WHITESPACE: Final = re.compile(r"\s+")
_ASCII_LOWER: Final = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


@dataclass(frozen=True, order=True, slots=True)
class Identity:
    """A LU's identity. Two paths lead to the same LU iff their identities are equal.

    Equality and order use ``wwid`` only: ``source`` says which designator gave it
    (``"vpd83-naa6"``, ``"vpd80-serial"``, ...) and is kept for messages.
    """

    wwid: str
    source: str = field(compare=False)

    def __str__(self) -> str:
        return self.wwid


def _text(raw: bytes) -> str:
    """Designator bytes as text: cut at the first NUL, every byte kept (latin-1)."""
    return raw.split(b"\x00", 1)[0].decode("latin-1")


def _ascii_lower(text: str) -> str:
    """Lower-case ASCII letters only, as C's ``tolower`` does in multipath-tools."""
    return text.translate(_ASCII_LOWER)


def _rank(designator: Designator) -> int:
    """multipath-tools' priority for a designator; 0 when it cannot be a WWID."""
    if designator.association != Association.LOGICAL_UNIT:
        return 0
    kind, value = designator.designator_type, designator.value
    if kind == DesignatorType.NAA and value:
        rank, length = _NAA_RANK.get(value[0] >> 4, (0, -1))
        return rank if len(value) == length else 0
    if kind == DesignatorType.EUI64:
        return _EUI64_RANK if len(value) in _EUI64_LENGTHS else 0
    if kind == DesignatorType.SCSI_NAME_STRING:
        return _SCSI_NAME_RANK if value[:4] in _SCSI_NAME_PREFIXES else 0
    if kind == DesignatorType.T10_VENDOR_ID:
        return _T10_RANK if len(value) >= _T10_MIN_LENGTH else 0
    return 0


def _render_t10(value: bytes) -> str:
    """``1`` + the vendor ID with each run of spaces turned into one ``_`` (none at the end)."""
    text = _text(value)
    words = text.split(" ")
    rendered = "_".join(word for word in words if word)
    if text.startswith(" ") and rendered:
        rendered = "_" + rendered  # multipath-tools keeps a leading run as one "_"
    return "1" + rendered


def designator_wwid(designator: Designator) -> tuple[str, str] | None:
    """The WWID and source a designator would give, or None if it cannot give one."""
    if not _rank(designator):
        return None
    kind, value = designator.designator_type, designator.value
    if kind == DesignatorType.NAA:
        return "3" + value.hex(), f"vpd83-naa{value[0] >> 4}"
    if kind == DesignatorType.EUI64:
        return "2" + value.hex(), "vpd83-eui64"
    if kind == DesignatorType.SCSI_NAME_STRING:
        prefix = _SCSI_NAME_PREFIXES[value[:4]]
        name = _text(value[4:])
        return prefix + (name if prefix == "8" else _ascii_lower(name)), "vpd83-scsi-name"
    return _render_t10(value), "vpd83-t10"


def serial_wwid(unit_serial: str, vendor: str, product: str) -> str | None:
    """The VPD 0x80 fallback WWID (``S`` + vendor + product + serial), or None if blank."""
    if not unit_serial.strip():
        return None
    raw = "S" + vendor.ljust(8)[:8] + product.ljust(16)[:16] + unit_serial
    return _WHITESPACE.sub("_", raw.strip())


def lun_identity(
    designators: Iterable[Designator],
    *,
    unit_serial: str | None = None,
    vendor: str = "",
    product: str = "",
) -> Identity:
    """Choose the LU's identity from its VPD 0x83 designators, else its VPD 0x80 serial.

    ``vendor``/``product`` (from standard INQUIRY) are needed only for the serial
    fallback. Raises :class:`NoIdentityError` when neither page gives a WWID: such a
    path must not be grouped with any other.
    """
    best: Designator | None = None
    best_rank = 0
    for designator in designators:
        rank = _rank(designator)
        if rank > best_rank:
            best, best_rank = designator, rank
    if best is not None:
        rendered = designator_wwid(best)
        if rendered is not None:
            return Identity(*rendered)
    if unit_serial is not None:
        wwid = serial_wwid(unit_serial, vendor, product)
        if wwid is not None:
            return Identity(wwid, "vpd80-serial")
    raise NoIdentityError(
        "no LU designator in VPD page 0x83 can serve as a WWID and "
        + ("the unit serial number is blank" if unit_serial is not None else "no serial given")
    )
