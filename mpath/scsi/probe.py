"""What a path says about its LUN: identity, geometry and limits.

Run on every path at open and again before a failed path is reinstated, so a path
that now leads to a different LUN (a remap on the array) is never put back in use;
discovery runs it on every LUN it finds.

It needs nothing of a transport but "run this CDB, give me status, sense and data"
(:class:`CommandPath`), so it lives with the rest of the SCSI command set, below the
transports: a transport, the filter layer and discovery all use it without importing
each other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from mpath.errors import DeviceError
from mpath.scsi import cdb
from mpath.scsi.capacity import Capacity, parse_read_capacity16
from mpath.scsi.classify import Disposition, classify
from mpath.scsi.errors import ScsiError
from mpath.scsi.identity import lun_identity
from mpath.scsi.inquiry import DeviceType, StandardInquiry, parse_standard_inquiry
from mpath.scsi.provisioning import (
    LOGICAL_BLOCK_PROVISIONING_PAGE,
    Provisioning,
    parse_logical_block_provisioning,
)
from mpath.scsi.vpd import VpdPage, parse_block_limits, parse_designators, parse_unit_serial


class CommandResult(Protocol):
    """How a command ended (``mpath.transports.base.ScsiResult`` is one)."""

    @property
    def status(self) -> int: ...
    @property
    def sense(self) -> bytes: ...
    @property
    def data(self) -> bytes: ...
    @property
    def good(self) -> bool: ...


class CommandPath(Protocol):
    """What the probe needs of a path (every ``mpath.transports.base.Transport`` is one)."""

    @property
    def url(self) -> str: ...

    async def execute(self, cdb: bytes, *, data_in_length: int = 0) -> CommandResult: ...


#: Unit attentions (e.g. "power on, reset" after login) are retried this often.
PROBE_RETRIES = 4
VPD_ALLOC_LEN = 1024
STANDARD_INQUIRY_LEN = 96


@dataclass(frozen=True, slots=True)
class LunInfo:
    """The LUN as one path reports it."""

    wwid: str
    wwid_source: str
    vendor: str
    product: str
    revision: str
    block_size: int
    size_bytes: int
    max_transfer_bytes: int | None
    optimal_transfer_bytes: int | None
    #: The LU reports ALUA states (INQUIRY TPGS != 0): REPORT TARGET PORT GROUPS works.
    alua: bool = False
    #: This path's target port group (VPD 0x83 type-5 designator), when the LU names it.
    target_port_group: int | None = None
    provisioning: Provisioning = field(default_factory=Provisioning)


async def _command(transport: CommandPath, command: bytes, length: int) -> CommandResult | None:
    """Run a probe command; None when the target does not support it."""
    for _ in range(PROBE_RETRIES):
        result = await transport.execute(command, data_in_length=length)
        if result.good:
            return result
        disposition = classify(result.status, result.sense)
        if disposition is Disposition.TARGET_ERROR:
            return None
        if disposition in (Disposition.PATH_ERROR,):
            break
    raise DeviceError(f"{transport.url}: probe command 0x{command[0]:02x} keeps failing")


def not_a_disk(inquiry: StandardInquiry) -> str | None:
    """Why this LUN cannot carry mpath's I/O, in words (None: it is a disk).

    tgt puts its controller at LUN 0, and arrays answer unmapped LUNs with a
    qualifier: without this, the first sign would be a refused READ CAPACITY.
    """
    if not inquiry.lu_present:
        return (
            f"no logical unit at this LUN (peripheral qualifier {inquiry.peripheral_qualifier}); "
            "'mpath discover PORTAL' lists the target's disks"
        )
    if inquiry.is_disk:
        return None
    try:
        kind = DeviceType(inquiry.device_type).name.lower().replace("_", " ")
    except ValueError:
        kind = "device"
    where = f"{inquiry.vendor} {inquiry.product}".strip()
    return (
        f"not a disk: the LUN is a {kind}{f' ({where})' if where else ''}, SCSI device type "
        f"{inquiry.device_type:#04x}; 'mpath discover PORTAL' lists the target's disks"
    )


async def _read_capacity(transport: CommandPath) -> Capacity:
    result = await _command(transport, cdb.read_capacity16(), 32)
    if result is None:
        raise DeviceError(f"{transport.url}: READ CAPACITY (16) refused")
    return parse_read_capacity16(result.data)


async def read_capacity(transport: CommandPath) -> Capacity:
    """READ CAPACITY (16) through ``transport``, unit attentions retried (the one that
    says the capacity changed comes first after a LUN grew).

    Raises :class:`DeviceError` when the target refuses or keeps failing it.
    """
    try:
        return await _read_capacity(transport)
    except ScsiError as exc:
        raise DeviceError(f"{transport.url}: {exc}") from exc


async def probe_lun(transport: CommandPath) -> LunInfo:
    """Ask the LUN behind ``transport`` who it is and how big it is."""
    try:
        standard = await _command(
            transport, cdb.inquiry(alloc_len=STANDARD_INQUIRY_LEN), STANDARD_INQUIRY_LEN
        )
        if standard is None:
            raise DeviceError(f"{transport.url}: INQUIRY refused")
        inquiry = parse_standard_inquiry(standard.data)
        refusal = not_a_disk(inquiry)
        if refusal is not None:
            raise DeviceError(f"{transport.url}: {refusal}")
        page83 = await _command(
            transport, cdb.inquiry(VpdPage.DEVICE_IDENTIFICATION, VPD_ALLOC_LEN), VPD_ALLOC_LEN
        )
        page80 = await _command(
            transport, cdb.inquiry(VpdPage.UNIT_SERIAL_NUMBER, VPD_ALLOC_LEN), VPD_ALLOC_LEN
        )
        designators = parse_designators(page83.data) if page83 else ()
        identity = lun_identity(
            designators,
            unit_serial=parse_unit_serial(page80.data) if page80 else None,
            vendor=inquiry.vendor,
            product=inquiry.product,
        )
        capacity = await _read_capacity(transport)
        limits_page = await _command(
            transport, cdb.inquiry(VpdPage.BLOCK_LIMITS, VPD_ALLOC_LEN), VPD_ALLOC_LEN
        )
        limits = parse_block_limits(limits_page.data) if limits_page else None
        provisioning = Provisioning(
            write_same=True,  # tried on first use; refused -> zeroes are written instead
            max_write_same_blocks=limits.max_write_same_length if limits else None,
        )
        if capacity.lbpme:
            page_b2 = await _command(
                transport,
                cdb.inquiry(LOGICAL_BLOCK_PROVISIONING_PAGE, VPD_ALLOC_LEN),
                VPD_ALLOC_LEN,
            )
            lbp = parse_logical_block_provisioning(page_b2.data) if page_b2 else None
            provisioning = Provisioning(
                write_same=True,
                unmap=bool(lbp and lbp.unmap),
                write_same_unmap=bool(
                    lbp and lbp.write_same16_unmap and (capacity.lbprz or lbp.read_zeroes)
                ),
                lba_status=True,
                holes_read_zeroes=bool(capacity.lbprz or (lbp and lbp.read_zeroes)),
                max_unmap_blocks=limits.max_unmap_lba_count if limits else None,
                max_unmap_descriptors=limits.max_unmap_block_descriptor_count if limits else None,
                max_write_same_blocks=provisioning.max_write_same_blocks,
            )
    except ScsiError as exc:
        raise DeviceError(f"{transport.url}: {exc}") from exc
    block = capacity.block_size
    max_transfer = limits.max_transfer_length if limits else None
    optimal = limits.optimal_transfer_length if limits else None
    return LunInfo(
        wwid=identity.wwid,
        wwid_source=identity.source,
        vendor=inquiry.vendor,
        product=inquiry.product,
        revision=inquiry.revision,
        block_size=block,
        size_bytes=capacity.size_bytes,
        max_transfer_bytes=max_transfer * block if max_transfer else None,
        optimal_transfer_bytes=optimal * block if optimal else None,
        alua=inquiry.alua,
        target_port_group=next(
            (d.target_port_group for d in designators if d.target_port_group is not None), None
        ),
        provisioning=provisioning,
    )
