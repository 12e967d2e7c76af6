"""The one place mpath touches pyscsi (python-scsi 2.1).

pyscsi is useful for two things here: its tables (SPC's ASC/ASCQ names) and its
declarative command layouts, which serve as an *independent reference* against which
our own encoders and decoders are checked. It is not used on the I/O path, and three of
its traits are kept behind this module:

* ``SCSI(dev)`` runs an INQUIRY in its constructor, so it is never constructed here;
  only command classes and their class-level layout tables are used.
* Its exceptions are nested classes made per command class by a metaclass
  (``Read16.OpcodeException`` is not ``SCSICommand.OpcodeException``), so they cannot be
  caught by type; :func:`pyscsi_errors` recognises them by their defining module and
  turns them (and CHECK CONDITION) into :class:`~mpath.scsi.errors.PyscsiError`.
* Command constructors write class attributes shared by every command
  (``SCSICommand._cdb``, ``_cdb_bits``), so constructing commands is serialised by a
  lock, and READ/WRITE references are marshalled from the class layout directly (their
  constructors would allocate a buffer of the whole transfer size).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Literal

from pyscsi.pyscsi import scsi_sense
from pyscsi.pyscsi.scsi_cdb_inquiry import Inquiry
from pyscsi.pyscsi.scsi_cdb_read10 import Read10
from pyscsi.pyscsi.scsi_cdb_read16 import Read16
from pyscsi.pyscsi.scsi_cdb_readcapacity16 import ReadCapacity16
from pyscsi.pyscsi.scsi_cdb_report_luns import ReportLuns
from pyscsi.pyscsi.scsi_cdb_testunitready import TestUnitReady
from pyscsi.pyscsi.scsi_cdb_write10 import Write10
from pyscsi.pyscsi.scsi_cdb_write16 import Write16
from pyscsi.pyscsi.scsi_enum_command import sbc
from pyscsi.utils.converter import encode_dict

from mpath.scsi.errors import PyscsiCheckConditionError, PyscsiError
from mpath.scsi.sense import encode_sense

_PYSCSI_EXCEPTION_MODULE = "pyscsi.pyscsi.scsi_exception"
_construct_lock = threading.Lock()

RwCommand = Literal["READ_10", "WRITE_10", "READ_16", "WRITE_16"]
_RW_CLASSES: dict[str, tuple[Any, int]] = {
    "READ_10": (Read10, 10),
    "WRITE_10": (Write10, 10),
    "READ_16": (Read16, 16),
    "WRITE_16": (Write16, 16),
}


def asc_description(asc: int, ascq: int) -> str | None:
    """SPC's name for an ASC/ASCQ pair, e.g. 0x25/0x00 -> "LOGICAL UNIT NOT SUPPORTED"."""
    description = scsi_sense.sense_ascq_dict.get((asc << 8) | ascq)
    if description is not None:
        return str(description)
    if asc >= 0x80 or ascq >= 0x80:
        return "vendor specific"
    return None


def sense_key_description(key: int) -> str | None:
    """pyscsi's name for a sense key ("Illegal Request"), when it has one."""
    description = scsi_sense.sense_key_dict.get(key)
    return None if description is None else str(description)


@contextmanager
def pyscsi_errors(operation: str) -> Iterator[None]:
    """Translate pyscsi's exceptions raised inside the block into mpath errors."""
    try:
        yield
    except scsi_sense.SCSICheckCondition as exc:
        raise PyscsiCheckConditionError(operation, _sense_of(exc)) from exc
    except Exception as exc:
        if type(exc).__module__ == _PYSCSI_EXCEPTION_MODULE:
            raise PyscsiError(operation, type(exc).__name__, str(exc)) from exc
        if isinstance(exc, (IndexError, KeyError, ValueError, TypeError)):
            # pyscsi's decoders index blindly; a short buffer surfaces as one of these.
            raise PyscsiError(operation, type(exc).__name__, str(exc)) from exc
        raise


def _sense_of(exc: Any) -> bytes:
    """Sense bytes for a pyscsi CheckCondition, which keeps only its decoded fields."""
    fields: dict[str, int] = getattr(exc, "data", None) or {}
    if "sense_key" not in fields:
        return b""
    return encode_sense(
        fields["sense_key"],
        fields.get("additional_sense_code", 0),
        fields.get("additional_sense_code_qualifier", 0),
    )


def _built_cdb(operation: str, factory: Any, *args: Any, **kwargs: Any) -> bytes:
    with pyscsi_errors(operation), _construct_lock:
        command = factory(*args, **kwargs)
        return bytes(command.cdb)


def reference_test_unit_ready() -> bytes:
    """TEST UNIT READY as pyscsi's ``TestUnitReady`` encodes it."""
    return _built_cdb("TestUnitReady", TestUnitReady, sbc.TEST_UNIT_READY)


def reference_inquiry(page: int | None, alloc_len: int) -> bytes:
    """INQUIRY (standard when ``page`` is None, else EVPD) as pyscsi encodes it."""
    evpd = 0 if page is None else 1
    return _built_cdb(
        "Inquiry", Inquiry, sbc.INQUIRY, evpd=evpd, page_code=page or 0, alloclen=alloc_len
    )


def reference_read_capacity16(alloc_len: int) -> bytes:
    """READ CAPACITY (16) as pyscsi's ``ReadCapacity16`` encodes it."""
    return _built_cdb("ReadCapacity16", ReadCapacity16, sbc.SBC_OPCODE_9E, alloc_len)


def reference_report_luns(alloc_len: int, select_report: int = 0) -> bytes:
    """REPORT LUNS as pyscsi's ``ReportLuns`` encodes it."""
    return _built_cdb("ReportLuns", ReportLuns, sbc.REPORT_LUNS, select_report, alloc_len)


def reference_rw(command: RwCommand, lba: int, blocks: int, *, fua: bool = False) -> bytes:
    """READ/WRITE (10)/(16) marshalled from pyscsi's own field layout for that command.

    The layout table (``_cdb_bits``) is pyscsi's declaration of the CDB; marshalling it
    directly avoids the constructor, which allocates a buffer of the whole transfer.
    """
    cls, length = _RW_CLASSES[command]
    opcode = getattr(sbc, command).value
    fields = {"opcode": opcode, "lba": lba, "tl": blocks, "fua": int(fua)}
    with pyscsi_errors(command):
        cdb = bytearray(length)
        encode_dict(fields, cls._cdb_bits, cdb)
        return bytes(cdb)


def reference_decode_inquiry(data: bytes, *, evpd: bool) -> dict[str, object]:
    """pyscsi's reading of INQUIRY data (standard or a VPD page), for cross-checks."""
    with pyscsi_errors("Inquiry.unmarshall_datain"):
        result = Inquiry.unmarshall_datain(bytearray(data), evpd=int(evpd))
    return dict(result)


def reference_decode_read_capacity16(data: bytes) -> dict[str, object]:
    """pyscsi's reading of READ CAPACITY (16) data, for cross-checks."""
    with pyscsi_errors("ReadCapacity16.unmarshall_datain"):
        result = ReadCapacity16.unmarshall_datain(bytearray(data))
    return dict(result)


def reference_decode_report_luns(data: bytes) -> list[int]:
    """The raw 8-byte LUN entries pyscsi finds in REPORT LUNS data, as integers."""
    with pyscsi_errors("ReportLuns.unmarshall_datain"):
        result = ReportLuns.unmarshall_datain(bytearray(data))
    return [int(value) for entry in result["luns"] for value in entry.values()]


def reference_decode_fixed_sense(data: bytes) -> dict[str, object]:
    """pyscsi's reading of fixed-format sense data (it has no descriptor decoder)."""
    with pyscsi_errors("SCSICheckCondition.unmarshall_fixed_format_sense_data"):
        result = scsi_sense.SCSICheckCondition.unmarshall_fixed_format_sense_data(bytearray(data))
    return dict(result)
