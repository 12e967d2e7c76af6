"""The pure SCSI layer: bytes in, typed values out; no I/O anywhere in this package.

* :mod:`~mpath.scsi.cdb`: CDB builders (READ/WRITE (16) on a precompiled struct).
* :mod:`~mpath.scsi.sense`: fixed and descriptor sense data -> :class:`Sense`.
* :mod:`~mpath.scsi.classify`: the one table deciding path error / target error /
  retry for a status and sense data.
* :mod:`~mpath.scsi.checker_table`: the TUR checker's reading of a TEST UNIT READY.
* :mod:`~mpath.scsi.states`: :class:`CheckerState` and checker message codes.
* :mod:`~mpath.scsi.inquiry`, :mod:`~mpath.scsi.vpd`, :mod:`~mpath.scsi.identity`,
  :mod:`~mpath.scsi.capacity`, :mod:`~mpath.scsi.luns`, :mod:`~mpath.scsi.alua`:
  data-in parsers, the WWID, and ALUA states.
* :mod:`~mpath.scsi.pyscsi_adapter`: the only module that imports pyscsi (reference
  encodings, ASC names). Not imported here, so ``import mpath.scsi`` stays light.

The names below are the stable public API; other modules import them from here.
"""

from __future__ import annotations

from mpath.scsi.alua import (
    AluaState,
    TargetPortGroup,
    TargetPortGroups,
    alua_priority,
    parse_target_port_groups,
)
from mpath.scsi.capacity import Capacity, parse_read_capacity10, parse_read_capacity16
from mpath.scsi.cdb import (
    Opcode,
    RwCommand,
    decode_rw,
    inquiry,
    read10,
    read16,
    read_capacity10,
    read_capacity16,
    report_luns,
    report_target_port_groups,
    synchronize_cache10,
    synchronize_cache16,
    test_unit_ready,
    write10,
    write16,
)
from mpath.scsi.checker_table import CheckerVerdict, checker_state, final_verdict
from mpath.scsi.classify import Disposition, Recheck, Verdict, classify, explain
from mpath.scsi.errors import (
    CdbFieldError,
    NoIdentityError,
    ScsiDataError,
    ScsiError,
    ScsiTruncatedError,
)
from mpath.scsi.identity import Identity, lun_identity
from mpath.scsi.inquiry import StandardInquiry, Tpgs, parse_standard_inquiry
from mpath.scsi.luns import decode_lun, encode_lun, parse_report_luns
from mpath.scsi.sense import Sense, SenseKey, decode_sense, encode_sense
from mpath.scsi.states import CheckerMsg, CheckerState
from mpath.scsi.status import ScsiStatus
from mpath.scsi.vpd import (
    BlockLimits,
    Designator,
    DesignatorType,
    VpdPage,
    parse_block_limits,
    parse_designators,
    parse_supported_pages,
    parse_unit_serial,
    vpd_page_length,
)

__all__ = [
    "AluaState",
    "BlockLimits",
    "Capacity",
    "CdbFieldError",
    "CheckerMsg",
    "CheckerState",
    "CheckerVerdict",
    "Designator",
    "DesignatorType",
    "Disposition",
    "Identity",
    "NoIdentityError",
    "Opcode",
    "Recheck",
    "RwCommand",
    "ScsiDataError",
    "ScsiError",
    "ScsiStatus",
    "ScsiTruncatedError",
    "Sense",
    "SenseKey",
    "StandardInquiry",
    "TargetPortGroup",
    "TargetPortGroups",
    "Tpgs",
    "Verdict",
    "VpdPage",
    "alua_priority",
    "checker_state",
    "classify",
    "decode_lun",
    "decode_rw",
    "decode_sense",
    "encode_lun",
    "encode_sense",
    "explain",
    "final_verdict",
    "inquiry",
    "lun_identity",
    "parse_block_limits",
    "parse_designators",
    "parse_read_capacity10",
    "parse_read_capacity16",
    "parse_report_luns",
    "parse_standard_inquiry",
    "parse_supported_pages",
    "parse_target_port_groups",
    "parse_unit_serial",
    "read10",
    "read16",
    "read_capacity10",
    "read_capacity16",
    "report_luns",
    "report_target_port_groups",
    "synchronize_cache10",
    "synchronize_cache16",
    "test_unit_ready",
    "vpd_page_length",
    "write10",
    "write16",
]
