"""Data-in and sense bytes captured from the project's tgt rig, for the parser tests.

Captured once from ``mpath rig up --name scsi-dev --paths 1 --size 64M`` (tgt backend,
LUN 1), by sending the commands below and recording the data-in verbatim. The values
libiscsi's own tools printed for the same rig are recorded next to them
(``iscsi-inq``, ``iscsi-inq -e 1 -c <page>``, ``iscsi-readcapacity16``), so the tests
check our parsers against an independent reading of the same bytes.

Since ``mpath rig up`` draws a fresh WWID and serial per rig, these are one rig's
values; the *layout* is what tgt produces for every rig.
"""

from __future__ import annotations

# INQUIRY (standard), alloc 256. iscsi-inq: qualifier CONNECTED, DIRECT_ACCESS, version 5
# (SPC-3), HiSup 1, ResponseDataFormat 2, TPGS 0, CmdQue 1, Vendor "MPATH   ",
# Product "RIG-LUN         ", Revision "0001".
STANDARD_INQUIRY = bytes.fromhex(
    "000005123d0000024d504154482020205249472d4c554e2020202020202020203030303100000000"
    "00000000000000000000000000000000000004c0096003000000"
)

# INQUIRY EVPD page 0x00. iscsi-inq: 0x00, 0x80, 0x83, 0xb0, 0xb1, 0xb2.
VPD_SUPPORTED_PAGES = bytes.fromhex("00000006008083b0b1b2")

# INQUIRY EVPD page 0x80. iscsi-inq: "                   MPATH1F2C7DDDCD4F" (right-aligned).
VPD_UNIT_SERIAL = bytes.fromhex("00800024" + "20" * 19 + "4d50415448314632433744444443443446")
RIG_SERIAL = "MPATH1F2C7DDDCD4F"

# INQUIRY EVPD page 0x83: T10 vendor ID (ASCII, 36 bytes: the WWID hex + 4 NULs),
# NAA type 3 locally assigned (8 bytes), NAA type 6 (16 bytes), all associated with
# the LU. `mpath rig up --json` reported wwid "362f461bbfdc43634f4f288adff22bcdd".
VPD_DEVICE_IDENTIFICATION = bytes.fromhex(
    "00830048"
    "02010024" + "3632663436316262666463343336333466346632383861646666323262636464" + "00000000"
    "01030008" + "3000000100000001"
    "01030010" + "62f461bbfdc43634f4f288adff22bcdd"
)
RIG_WWID = "362f461bbfdc43634f4f288adff22bcdd"

# INQUIRY EVPD page 0xb0. iscsi-inq: maximum compare and write length 128, every
# other field 0.
VPD_BLOCK_LIMITS = bytes.fromhex("00b0003c0080" + "00" * 58)

# READ CAPACITY (16), alloc 32. iscsi-readcapacity16: last LBA 131071, block length
# 512, P_TYPE 0, PROT_EN 0, P_I_EXPONENT 0, LBPPBE 3, LBPME 0, LBPRZ 0, lowest aligned
# LBA 0, total size 67108864.
READ_CAPACITY_16 = bytes.fromhex("000000000001ffff00000200000300" + "00" * 17)

# REPORT LUNS, alloc 4096: tgt's controller LUN 0 and the disk at LUN 1.
REPORT_LUNS = bytes.fromhex("00000010000000000000000000000000" + "0001000000000000")

# Sense data tgt returned (fixed format, 18 bytes), with libiscsi's decoding:
SENSE_INVALID_FIELD_IN_CDB = bytes.fromhex(
    "700005000000000a00000000240000000000"
)  # INQUIRY page 0xc7
SENSE_LBA_OUT_OF_RANGE = bytes.fromhex(
    "700005000000000a00000000210000000000"
)  # READ (16) past the end
SENSE_INVALID_OPCODE = bytes.fromhex("700005000000000a00000000200000000000")  # opcode 0xc0
