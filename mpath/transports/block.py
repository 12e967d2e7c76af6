"""The block transport: a block device node as one path, carrying SCSI commands.

The filter layer speaks SCSI to every path. For a block device (``/dev/sdb``,
``/dev/nvme0n1``, ``/dev/loop0``) the kernel already owns the SCSI (or NVMe, or file)
protocol, so this transport *decodes* the handful of commands the filter layer sends
and carries them out on the device node:

==============================  ==========================================================
command                         carried out as
==============================  ==========================================================
READ / WRITE (10), (16)         ``preadv`` / ``pwritev`` on the node opened ``O_DIRECT``,
                                page-aligned buffers (``mmap``); FUA as ``RWF_DSYNC``
SYNCHRONIZE CACHE (10), (16)    ``fdatasync`` (a cache flush sent to the device)
TEST UNIT READY                 ``SG_IO`` where the device is SCSI; else the node's
                                capacity and (loop) backing file, read again
INQUIRY, VPD 0x00/80/83/B0      answered from the identity udev/sysfs give
                                (:mod:`mpath.discovery.block`) and the queue limits
READ CAPACITY (10), (16)        ``BLKGETSIZE64`` / ``BLKSSZGET`` / ``BLKPBSZGET``
REPORT LUNS                     one LUN, 0
anything else                   ILLEGAL REQUEST, INVALID COMMAND OPERATION CODE
==============================  ==========================================================

**Threads.** Block I/O blocks, so every command that touches the device runs in a
thread pool owned by the session: ``max_commands`` threads (the device's
``queue_depth``, else :data:`DEFAULT_WORKERS`), so the commands the filter layer
keeps in flight really are in the kernel at once, and a path whose device hangs ties
up only its own threads, never another path's. Completions come back to the event
loop with ``call_soon_threadsafe``.

**Failures.** The kernel reports what happened to a bio as an errno
(``blk_status_to_errno``); the errors that mean *the medium or the request* (ENODATA:
medium error; EILSEQ: protection information; EREMOTEIO: target error; ENOSPC:
thin pool full; EROFS) become CHECK CONDITION with matching sense data, which the
filter layer returns to the caller. Everything else (EIO, ENOLINK, ETIMEDOUT, ENXIO,
ENODEV...) is a path failure: :class:`~mpath.transports.base.TransportError`, and the
filter layer fails the path over, as dm-multipath does with ``blk_path_error``.

**Close** marks the session closed, drops every queued command (none can reach the
device afterwards), fails every outstanding ``execute`` with
:class:`~mpath.transports.base.PathDisconnectedError`, and closes the file
descriptor once the last system call already in the kernel has returned (closing it
earlier would let a reused descriptor number receive a stale write).

**Exclusive open.** The node is opened with ``O_EXCL``: the kernel then refuses it
while a filesystem is mounted on it or a driver (dm, md) holds it, so mpath never
writes under someone else's feet; such a path fails to connect with "in use".

**The LUN cap.** ``max_commands`` is sysfs ``device/queue_depth`` (SCSI devices).
Loop, NVMe and virtio devices have none: it is then None ("unknown"), and the filter
layer uses the configured ``max_commands`` or its default of 64. The block layer's
``queue/nr_requests`` is not used: it is the I/O scheduler's queue, not what the
device can hold.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import ctypes
import errno
import fcntl
import mmap
import os
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Final, TypeVar

from mpath.errors import MpathError
from mpath.scsi.cdb import (
    DEFAULT_INQUIRY_ALLOC_LEN,
    SA_READ_CAPACITY_16,
    Opcode,
    RwCommand,
    decode_rw,
)
from mpath.scsi.sense import SenseKey, encode_sense
from mpath.scsi.vpd import VpdPage
from mpath.sysfs.identity import (
    BlockIdentity,
    LoopBacking,
    identify,
    read_loop_backing,
    resolve_node,
)
from mpath.sysfs.tree import sysfs_reader
from mpath.transports.base import (
    FenceError,
    LoginError,
    PathDisconnectedError,
    ScsiResult,
    ScsiStatus,
    Transport,
    TransportError,
)

T = TypeVar("T")

#: Threads per session when the device reports no queue depth.
DEFAULT_WORKERS: Final = 32
#: How long a fence waits for a closed session's running system calls to return.
FENCE_DRAIN_TIMEOUT: Final = 5.0
#: At most this many threads per session, whatever the queue depth says.
MAX_WORKERS: Final = 128
#: The largest single command this transport accepts (its VPD 0xB0 says so too).
MAX_TRANSFER_BYTES: Final = 8 * 1024 * 1024
#: Milliseconds an SG_IO TEST UNIT READY may take in the kernel.
SG_TIMEOUT_MS: Final = 10_000

# ioctls (linux/fs.h, scsi/sg.h)
BLKGETSIZE64: Final = 0x80081272
BLKSSZGET: Final = 0x1268
BLKPBSZGET: Final = 0x127B
SG_GET_VERSION_NUM: Final = 0x2282
SG_IO: Final = 0x2285
SG_DXFER_NONE: Final = -1
SENSE_BUFFER_LEN: Final = 32
#: sg_io_hdr driver_status values that are no failure: DRIVER_OK, DRIVER_SENSE.
_DRIVER_FINE: Final = frozenset({0x00, 0x08})

_STANDARD_INQUIRY_LEN: Final = 96
_REVISION: Final = b"MPTH"
_SUPPORTED_VPD: Final = (
    VpdPage.SUPPORTED_PAGES,
    VpdPage.UNIT_SERIAL_NUMBER,
    VpdPage.DEVICE_IDENTIFICATION,
    VpdPage.BLOCK_LIMITS,
)
# SAM status + sense for the outcomes this transport synthesises (the one sense
# encoder, mpath.scsi.sense; the filter classifies them with the one sense table).
_KEY_NOT_READY = SenseKey.NOT_READY
_KEY_MEDIUM_ERROR = SenseKey.MEDIUM_ERROR
_KEY_HARDWARE_ERROR = SenseKey.HARDWARE_ERROR
_KEY_ILLEGAL_REQUEST = SenseKey.ILLEGAL_REQUEST
_KEY_DATA_PROTECT = SenseKey.DATA_PROTECT
_KEY_ABORTED_COMMAND = SenseKey.ABORTED_COMMAND


def check_condition(key: int, asc: int, ascq: int) -> ScsiResult:
    return ScsiResult(ScsiStatus.CHECK_CONDITION, sense=encode_sense(key, asc, ascq))


INVALID_OPCODE = check_condition(_KEY_ILLEGAL_REQUEST, 0x20, 0x00)
LBA_OUT_OF_RANGE = check_condition(_KEY_ILLEGAL_REQUEST, 0x21, 0x00)
INVALID_FIELD = check_condition(_KEY_ILLEGAL_REQUEST, 0x24, 0x00)
WRITE_PROTECTED = check_condition(_KEY_DATA_PROTECT, 0x27, 0x00)
MEDIUM_NOT_PRESENT = check_condition(_KEY_NOT_READY, 0x3A, 0x00)
#: Answer when a loop device now has another file behind it. NOT READY / LOGICAL UNIT
#: NOT SUPPORTED is not a standard pairing, so use 05/25/00: LUN not supported, which
#: the sense table treats as "this path no longer reaches the LU" (path error).
LU_GONE = check_condition(_KEY_ILLEGAL_REQUEST, 0x25, 0x00)

#: errno of a failed read/write -> the target-error answer; others are path errors.
_ERRNO_ANSWERS: Final[dict[int, tuple[ScsiResult, ScsiResult]]] = {
    # errno: (answer to a read, answer to a write)
    errno.ENODATA: (
        check_condition(_KEY_MEDIUM_ERROR, 0x11, 0x00),  # unrecovered read error
        check_condition(_KEY_MEDIUM_ERROR, 0x0C, 0x00),  # write error
    ),
    errno.EILSEQ: (
        check_condition(_KEY_ABORTED_COMMAND, 0x10, 0x01),  # guard check failed
        check_condition(_KEY_ABORTED_COMMAND, 0x10, 0x01),
    ),
    errno.EREMOTEIO: (
        check_condition(_KEY_HARDWARE_ERROR, 0x44, 0x00),  # internal target failure
        check_condition(_KEY_HARDWARE_ERROR, 0x44, 0x00),
    ),
    errno.ENOSPC: (
        check_condition(_KEY_DATA_PROTECT, 0x27, 0x07),  # space allocation failed
        check_condition(_KEY_DATA_PROTECT, 0x27, 0x07),
    ),
    errno.EROFS: (WRITE_PROTECTED, WRITE_PROTECTED),
    errno.EPERM: (WRITE_PROTECTED, WRITE_PROTECTED),
    errno.EINVAL: (INVALID_FIELD, INVALID_FIELD),
}
#: errno values that mean "busy for now": answered BUSY (the filter retries).
_BUSY_ERRNOS: Final = frozenset({errno.EAGAIN, errno.ENOMEM, errno.EBUSY})


class _SgIoHeader(ctypes.Structure):
    """``struct sg_io_hdr`` (scsi/sg.h) for LP64 Linux: 88 bytes."""

    _fields_ = (
        ("interface_id", ctypes.c_int),
        ("dxfer_direction", ctypes.c_int),
        ("cmd_len", ctypes.c_ubyte),
        ("mx_sb_len", ctypes.c_ubyte),
        ("iovec_count", ctypes.c_ushort),
        ("dxfer_len", ctypes.c_uint),
        ("dxferp", ctypes.c_void_p),
        ("cmdp", ctypes.c_void_p),
        ("sbp", ctypes.c_void_p),
        ("timeout", ctypes.c_uint),
        ("flags", ctypes.c_uint),
        ("pack_id", ctypes.c_int),
        ("usr_ptr", ctypes.c_void_p),
        ("status", ctypes.c_ubyte),
        ("masked_status", ctypes.c_ubyte),
        ("msg_status", ctypes.c_ubyte),
        ("sb_len_wr", ctypes.c_ubyte),
        ("host_status", ctypes.c_ushort),
        ("driver_status", ctypes.c_ushort),
        ("resid", ctypes.c_int),
        ("duration", ctypes.c_uint),
        ("info", ctypes.c_uint),
    )


def sg_io_no_data(fd: int, cdb: bytes, timeout_ms: int = SG_TIMEOUT_MS) -> ScsiResult:
    """Send ``cdb`` (no data transfer) through ``SG_IO``; blocking.

    A host or driver error (the HBA lost the device, the transport timed out) is a
    path failure and raises :class:`OSError` (EIO) for the caller to translate; the
    SCSI status and sense come back as a :class:`ScsiResult`.
    """
    command = ctypes.create_string_buffer(cdb, len(cdb))
    sense = ctypes.create_string_buffer(SENSE_BUFFER_LEN)
    header = _SgIoHeader()
    header.interface_id = ord("S")
    header.dxfer_direction = SG_DXFER_NONE
    header.cmd_len = len(cdb)
    header.mx_sb_len = SENSE_BUFFER_LEN
    header.cmdp = ctypes.cast(command, ctypes.c_void_p)
    header.sbp = ctypes.cast(sense, ctypes.c_void_p)
    header.timeout = timeout_ms
    fcntl.ioctl(fd, SG_IO, header)
    if header.host_status or (header.driver_status & 0x0F) not in _DRIVER_FINE:
        raise OSError(
            errno.EIO,
            f"SG_IO: host status {header.host_status:#x}, driver status {header.driver_status:#x}",
        )
    return ScsiResult(header.status, sense=sense.raw[: header.sb_len_wr])


def sg_io_supported(fd: int) -> bool:
    """The device takes SCSI commands through ``SG_IO`` (a SCSI disk, not loop/NVMe)."""
    try:
        fcntl.ioctl(fd, SG_GET_VERSION_NUM, bytearray(4), True)
    except OSError:
        return False
    return True


@dataclass(frozen=True, slots=True)
class Geometry:
    """Size and queue limits of the device, read at connect."""

    size_bytes: int
    block_size: int
    physical_block_size: int
    max_transfer_bytes: int
    optimal_transfer_bytes: int
    queue_depth: int | None

    @property
    def blocks(self) -> int:
        return self.size_bytes // self.block_size


def _ioctl_u64(fd: int, request: int) -> int:
    value: int = struct.unpack("=Q", fcntl.ioctl(fd, request, bytes(8)))[0]
    return value


def _ioctl_int(fd: int, request: int) -> int:
    value: int = struct.unpack("=i", fcntl.ioctl(fd, request, bytes(4)))[0]
    return value


def read_geometry(fd: int, sys_folder: Path) -> Geometry:
    """The device's size and block sizes (ioctls on ``fd``) and queue limits (sysfs)."""
    attribute = sysfs_reader(sys_folder)
    block = _ioctl_int(fd, BLKSSZGET)
    try:
        physical = _ioctl_int(fd, BLKPBSZGET)
    except OSError:
        physical = block
    max_kb = attribute("queue/max_sectors_kb")
    max_bytes = int(max_kb) * 1024 if max_kb and max_kb.isdigit() else MAX_TRANSFER_BYTES
    optimal = attribute("queue/optimal_io_size")
    depth = attribute("device/queue_depth")
    return Geometry(
        size_bytes=_ioctl_u64(fd, BLKGETSIZE64),
        block_size=block,
        physical_block_size=max(physical, block),
        max_transfer_bytes=max(block, min(max_bytes, MAX_TRANSFER_BYTES)),
        optimal_transfer_bytes=int(optimal) if optimal and optimal.isdigit() else 0,
        queue_depth=int(depth) if depth and depth.isdigit() and int(depth) > 0 else None,
    )


# -- answers made from the identity --------------------------------------------------------


def _field(text: str, width: int) -> bytes:
    return text.encode("ascii", "replace")[:width].ljust(width)


def standard_inquiry(identity: BlockIdentity) -> bytes:
    """Standard INQUIRY data: a direct-access LU, SPC-4, command queueing, no ALUA."""
    head = bytes([0x00, 0x00, 0x06, 0x12, _STANDARD_INQUIRY_LEN - 5, 0x00, 0x00, 0x02])
    body = _field(identity.vendor, 8) + _field(identity.product, 16) + _REVISION
    return (head + body).ljust(_STANDARD_INQUIRY_LEN, b"\x00")


def _vpd(page: int, payload: bytes) -> bytes:
    return bytes([0x00, page]) + struct.pack(">H", len(payload)) + payload


def vpd_page(page: int, identity: BlockIdentity, geometry: Geometry) -> bytes | None:
    """The VPD page ``page``, or None when this transport does not offer it."""
    if page == VpdPage.SUPPORTED_PAGES:
        return _vpd(page, bytes(_SUPPORTED_VPD))
    if page == VpdPage.UNIT_SERIAL_NUMBER:
        return _vpd(page, identity.serial.encode("ascii", "replace")[:252])
    if page == VpdPage.DEVICE_IDENTIFICATION:
        designator = identity.designator
        header = bytes(
            [
                designator.code_set & 0x0F,
                ((designator.association & 0x03) << 4) | (designator.designator_type & 0x0F),
                0x00,
                len(designator.value),
            ]
        )
        return _vpd(page, header + designator.value)
    if page == VpdPage.BLOCK_LIMITS:
        block = geometry.block_size
        payload = bytearray(60)
        struct.pack_into(">I", payload, 4, geometry.max_transfer_bytes // block)
        struct.pack_into(">I", payload, 8, geometry.optimal_transfer_bytes // block)
        return _vpd(page, bytes(payload))
    return None


def read_capacity16_data(geometry: Geometry) -> bytes:
    exponent = max(0, (geometry.physical_block_size // geometry.block_size).bit_length() - 1)
    head = struct.pack(">QIBB", geometry.blocks - 1, geometry.block_size, 0, exponent & 0x0F)
    return head.ljust(32, b"\x00")


def read_capacity10_data(geometry: Geometry) -> bytes:
    return struct.pack(">II", min(geometry.blocks - 1, 0xFFFFFFFF), geometry.block_size)


def _answer(data: bytes, allocation: int, data_in_length: int) -> ScsiResult:
    """Data-in cut to the CDB's allocation length and the buffer the caller offered."""
    sent = data[: min(allocation, data_in_length)]
    return ScsiResult(ScsiStatus.GOOD, data=sent, residual=max(0, data_in_length - len(sent)))


# -- the session: one open file descriptor and its threads -----------------------------------

_buffers = threading.local()


def _aligned_buffer(size: int) -> mmap.mmap:
    """This thread's page-aligned I/O buffer, at least ``size`` bytes (O_DIRECT needs
    the buffer aligned to the logical block size; mmap gives page alignment)."""
    buffer: mmap.mmap | None = getattr(_buffers, "buffer", None)
    if buffer is None or len(buffer) < size:
        if buffer is not None:
            buffer.close()
        buffer = mmap.mmap(-1, max(size, mmap.PAGESIZE))
        _buffers.buffer = buffer
    return buffer


class _ClosedError(Exception):
    """The session was closed before this command reached the device."""


class _Session:
    """One open of the device node and the threads that do its system calls.

    The descriptor is closed only when the session is closed *and* no system call on
    it is running, so a descriptor number is never reused under a running call.
    """

    def __init__(self, fd: int, workers: int, name: str) -> None:
        self.fd = fd
        self.lock = threading.Lock()
        self.active = 0
        self.closed = False
        #: Set once the session is closed and no system call on it is running any
        #: more: from then on nothing this session was given can reach the device.
        self.idle = threading.Event()
        self.pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=workers, thread_name_prefix=f"mpath-block-{name}"
        )

    def run(self, work: Callable[[int], T]) -> T:
        """In a worker thread: run ``work(fd)`` unless the session closed meanwhile."""
        with self.lock:
            if self.closed:
                raise _ClosedError
            self.active += 1
        try:
            return work(self.fd)
        finally:
            with self.lock:
                self.active -= 1
                release = self.closed and self.active == 0
            if release:
                self._release()

    def close(self) -> None:
        with self.lock:
            if self.closed:
                return
            self.closed = True
            release = self.active == 0
        self.pool.shutdown(wait=False, cancel_futures=True)
        if release:
            self._release()

    def _release(self) -> None:
        with self.lock:
            fd, self.fd = self.fd, -1
        if fd >= 0:
            os.close(fd)
        self.idle.set()


def _open_node(node: str) -> tuple[int, bool]:
    """Open ``node`` O_DIRECT|O_EXCL, read-write if allowed; (fd, read_only)."""
    flags = os.O_DIRECT | os.O_EXCL | os.O_CLOEXEC
    try:
        return os.open(node, os.O_RDWR | flags), False
    except OSError as exc:
        if exc.errno not in (errno.EROFS, errno.EACCES, errno.EPERM):
            raise
    return os.open(node, os.O_RDONLY | flags), True


def _open_reason(exc: OSError) -> str:
    if exc.errno == errno.EBUSY:
        return "in use (mounted, or held by dm/md or another exclusive user)"
    if exc.errno == errno.ENOENT:
        return "the device node is gone"
    if exc.errno == errno.EINVAL:
        return "the device refuses O_DIRECT"
    return exc.strerror or str(exc)


@dataclass(frozen=True, slots=True)
class _Opened:
    fd: int
    read_only: bool
    identity: BlockIdentity
    geometry: Geometry
    sg: bool
    loop: LoopBacking | None


class BlockTransport:
    """One block device node as one path (see the module docstring).

    ``node`` is the device node (``/dev/sdb``); it is also the path's ``url``.
    ``workers`` overrides the number of I/O threads (default: the device's queue
    depth, else :data:`DEFAULT_WORKERS`). ``identify`` reads the device's identity
    (tests pass a fake).
    """

    def __init__(
        self,
        node: str,
        *,
        workers: int | None = None,
        identify: Callable[[str], BlockIdentity] = identify,
    ) -> None:
        self._node = node
        self._workers = workers
        self._identify = identify
        self._session: _Session | None = None
        self._opened: _Opened | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pending: set[asyncio.Future[Any]] = set()
        self._last_reason = "not connected"
        self._connecting = False
        #: Closed sessions whose system calls a fence has not yet seen return.
        self._closing: list[_Session] = []

    # -- the Transport protocol --------------------------------------------------------

    @property
    def url(self) -> str:
        return self._node

    @property
    def connected(self) -> bool:
        return self._session is not None

    @property
    def max_commands(self) -> int | None:
        """sysfs ``device/queue_depth`` (SCSI); None for devices without one (loop)."""
        opened = self._opened
        return opened.geometry.queue_depth if opened is not None and self.connected else None

    @property
    def identity(self) -> BlockIdentity | None:
        """The identity read at the last connect."""
        return self._opened.identity if self._opened is not None else None

    @property
    def sg_io(self) -> bool:
        """TEST UNIT READY goes to the device through SG_IO (a SCSI device)."""
        return self._opened is not None and self._opened.sg

    async def connect(self) -> None:
        """Read the identity, open the node (O_DIRECT, O_EXCL) and its geometry.

        Raises :class:`LoginError` when the node is gone, in use, has no identity or
        cannot be opened. Calling it while connected does nothing; after
        :meth:`close` it opens the node afresh (and reads the identity again, so a
        loop device rebound to another file is noticed).
        """
        if self._session is not None:
            return
        if self._connecting:
            raise LoginError(self._node, "a connect is already in progress")
        self._connecting = True
        try:
            opened = await asyncio.to_thread(self._open)
        finally:
            self._connecting = False
        workers = self._workers or opened.geometry.queue_depth or DEFAULT_WORKERS
        self._loop = asyncio.get_running_loop()
        self._opened = opened
        name = os.path.basename(self._node)
        self._session = _Session(opened.fd, max(1, min(workers, MAX_WORKERS)), name)

    def _open(self) -> _Opened:
        """Blocking part of connect (runs in a thread)."""
        try:
            identity = self._identify(self._node)
        except MpathError as exc:
            raise LoginError(self._node, str(exc).removeprefix(f"{self._node}: ")) from None
        try:
            fd, read_only = _open_node(self._node)
        except OSError as exc:
            raise LoginError(self._node, f"cannot open: {_open_reason(exc)}") from None
        try:
            device = resolve_node(self._node)
            geometry = read_geometry(fd, device.sys_path)
            loop = None
            if os.path.basename(str(device.sys_path.resolve())).startswith("loop"):
                loop = read_loop_backing(self._node, sysfs_reader(device.sys_path))
            sg = sg_io_supported(fd)
        except (OSError, MpathError) as exc:
            os.close(fd)
            raise LoginError(self._node, f"cannot read the device's geometry: {exc}") from None
        if geometry.size_bytes == 0:
            os.close(fd)
            raise LoginError(self._node, "no medium (size 0)")
        return _Opened(fd, read_only, identity, geometry, sg, loop)

    async def execute(
        self,
        cdb: bytes,
        *,
        data_out: bytes | memoryview | None = None,
        data_in_length: int = 0,
    ) -> ScsiResult:
        """Carry out one command on the device (see the table in the module docstring)."""
        session, opened = self._session, self._opened
        if session is None or opened is None:
            raise PathDisconnectedError(self._node, self._last_reason, sent=False)
        rw = decode_rw(cdb)
        if rw is not None:
            return await self._read_write(session, opened, rw, data_out, data_in_length)
        opcode = cdb[0] if cdb else -1
        if opcode == Opcode.INQUIRY:
            return self._inquiry(cdb, opened, data_in_length)
        if opcode == Opcode.TEST_UNIT_READY:
            return await self._submit(session, lambda fd: self._test_unit_ready(fd, opened))
        if opcode in (Opcode.SYNCHRONIZE_CACHE_10, Opcode.SYNCHRONIZE_CACHE_16):
            return await self._submit(session, _flush)
        if opcode == Opcode.SERVICE_ACTION_IN_16 and len(cdb) >= 14:
            if cdb[1] & 0x1F != SA_READ_CAPACITY_16:
                return INVALID_FIELD
            geometry = await self._submit(
                session, lambda fd: read_geometry(fd, resolve_node(self._node).sys_path)
            )
            if geometry != opened.geometry and self._opened is opened:
                # The device was resized (a loop device's backing file grew): I/O is
                # checked against the size READ CAPACITY reports from now on.
                self._opened = replace(opened, geometry=geometry)
            allocation = int.from_bytes(cdb[10:14], "big")
            return _answer(read_capacity16_data(geometry), allocation, data_in_length)
        if opcode == Opcode.READ_CAPACITY_10:
            return _answer(read_capacity10_data(opened.geometry), 8, data_in_length)
        if opcode == Opcode.REPORT_LUNS and len(cdb) >= 12:
            allocation = int.from_bytes(cdb[6:10], "big")
            return _answer(struct.pack(">I4x", 8) + bytes(8), allocation, data_in_length)
        return INVALID_OPCODE

    @property
    def relogin_fences(self) -> bool:
        """Opening the node again says nothing about calls still running on the old open."""
        return False

    @property
    def fence_method(self) -> str:
        return "drain"

    @property
    def fence_identity(self) -> str | None:
        return None

    @property
    def fence_scope(self) -> str | None:
        return None

    async def prepare_fence(self) -> None:
        """Nothing to learn: a drain needs no other path."""

    async def fence(self, through: Transport | None) -> None:
        """Return once no system call of a closed session is still running.

        A write handed to the kernel either completed or failed when its ``pwritev``
        returned; after that nothing of it can reach the device. ``through`` is not
        needed. Raises :class:`FenceError` if a call has not returned within
        :data:`FENCE_DRAIN_TIMEOUT` seconds (the kernel still holds it).
        """
        for session in list(self._closing):
            if not await asyncio.to_thread(session.idle.wait, FENCE_DRAIN_TIMEOUT):
                raise FenceError(
                    self._node,
                    f"a system call on {self._node} has not returned after "
                    f"{FENCE_DRAIN_TIMEOUT:g} s (the kernel still holds it)",
                )
            with contextlib.suppress(ValueError):
                self._closing.remove(session)

    async def close(self) -> None:
        """Stop at once: nothing queued reaches the device, outstanding commands fail."""
        session, self._session = self._session, None
        if session is None:
            return
        self._last_reason = "session closed"
        session.close()
        self._closing.append(session)
        pending, self._pending = self._pending, set()
        for future in pending:
            if not future.done():
                future.set_exception(PathDisconnectedError(self._node, "session closed"))

    # -- commands --------------------------------------------------------------------------

    def _inquiry(self, cdb: bytes, opened: _Opened, data_in_length: int) -> ScsiResult:
        allocation = int.from_bytes(cdb[3:5], "big") if len(cdb) >= 5 else 0
        allocation = allocation or DEFAULT_INQUIRY_ALLOC_LEN
        if len(cdb) >= 3 and cdb[1] & 0x01:
            page = vpd_page(cdb[2], opened.identity, opened.geometry)
            if page is None:
                return INVALID_FIELD
            return _answer(page, allocation, data_in_length)
        if len(cdb) >= 3 and (cdb[1] & 0x02 or cdb[2]):
            return INVALID_FIELD  # CmdDt, or a page code without EVPD
        return _answer(standard_inquiry(opened.identity), allocation, data_in_length)

    async def _read_write(
        self,
        session: _Session,
        opened: _Opened,
        rw: RwCommand,
        data_out: bytes | memoryview | None,
        data_in_length: int,
    ) -> ScsiResult:
        geometry = opened.geometry
        block = geometry.block_size
        nbytes = rw.blocks * block
        if rw.lba + rw.blocks > geometry.blocks:
            return LBA_OUT_OF_RANGE
        if nbytes > MAX_TRANSFER_BYTES:
            return INVALID_FIELD
        if rw.blocks == 0:
            return ScsiResult(ScsiStatus.GOOD)
        offset = rw.lba * block
        if rw.is_write:
            if data_out is None or len(data_out) != nbytes:
                return INVALID_FIELD
            if opened.read_only:
                return WRITE_PROTECTED
            payload = data_out
            return await self._submit(
                session, lambda fd: _write(fd, offset, payload, rw.fua, self._node)
            )
        length = min(nbytes, data_in_length)
        if length % block:
            return INVALID_FIELD
        return await self._submit(session, lambda fd: _read(fd, offset, length, self._node))

    def _test_unit_ready(self, fd: int, opened: _Opened) -> ScsiResult:
        """TEST UNIT READY, in a worker thread."""
        if opened.sg:
            return sg_io_no_data(fd, bytes(6))
        if _ioctl_u64(fd, BLKGETSIZE64) == 0:
            return MEDIUM_NOT_PRESENT
        if opened.loop is not None:
            device = resolve_node(self._node)
            now = read_loop_backing(self._node, sysfs_reader(device.sys_path))
            if now is None:
                return MEDIUM_NOT_PRESENT
            if now != opened.loop:
                return LU_GONE
        return ScsiResult(ScsiStatus.GOOD)

    async def _submit(self, session: _Session, work: Callable[[int], T]) -> T:
        """Run ``work(fd)`` in the session's threads; path errors become TransportError."""
        loop = self._loop
        assert loop is not None
        future: asyncio.Future[T] = loop.create_future()
        try:
            job = session.pool.submit(session.run, work)
        except RuntimeError:  # the pool was shut down: the session is closed
            raise PathDisconnectedError(self._node, self._last_reason, sent=False) from None
        self._pending.add(future)

        def finished(done: concurrent.futures.Future[T]) -> None:
            with contextlib.suppress(RuntimeError):  # the event loop is gone
                loop.call_soon_threadsafe(self._deliver, future, done)

        job.add_done_callback(finished)
        try:
            return await future
        except asyncio.CancelledError:
            job.cancel()  # still queued: it never reaches the device
            raise
        finally:
            self._pending.discard(future)

    def _deliver(self, future: asyncio.Future[T], done: concurrent.futures.Future[T]) -> None:
        if future.done():
            return
        if done.cancelled():  # still queued when the session closed: never ran
            future.set_exception(PathDisconnectedError(self._node, "session closed", sent=False))
            return
        error = done.exception()
        if error is None:
            future.set_result(done.result())
        elif isinstance(error, _ClosedError):
            future.set_exception(PathDisconnectedError(self._node, "session closed", sent=False))
        elif isinstance(error, OSError):
            future.set_exception(
                TransportError(self._node, f"I/O error: {error.strerror or error}")
            )
        elif isinstance(error, MpathError):  # e.g. the node vanished (re-read for TUR)
            future.set_exception(TransportError(self._node, str(error)))
        else:
            future.set_exception(error)

    def __repr__(self) -> str:
        state = "connected" if self.connected else "disconnected"
        return f"<BlockTransport {self._node} {state}, {len(self._pending)} outstanding>"


# -- the system calls (worker threads) -------------------------------------------------------


def _errno_answer(exc: OSError, write: bool) -> ScsiResult:
    """A target-error or busy answer for ``exc``; re-raise it when it is a path error."""
    if exc.errno in _BUSY_ERRNOS:
        return ScsiResult(ScsiStatus.BUSY)
    answers = _ERRNO_ANSWERS.get(exc.errno or 0)
    if answers is None:
        raise exc
    return answers[1 if write else 0]


def _read(fd: int, offset: int, length: int, node: str) -> ScsiResult:
    buffer = _aligned_buffer(length)
    view = memoryview(buffer)
    done = 0
    try:
        while done < length:
            got = os.preadv(fd, [view[done:length]], offset + done)
            if got <= 0:
                raise OSError(errno.EIO, f"{node}: read returned nothing at {offset + done}")
            done += got
        return ScsiResult(ScsiStatus.GOOD, data=bytes(view[:length]))
    except OSError as exc:
        return _errno_answer(exc, write=False)
    finally:
        view.release()


def _write(fd: int, offset: int, data: bytes | memoryview, fua: bool, node: str) -> ScsiResult:
    length = len(data)
    buffer = _aligned_buffer(length)
    view = memoryview(buffer)
    flags = os.RWF_DSYNC if fua else 0
    done = 0
    try:
        view[:length] = data
        while done < length:
            wrote = os.pwritev(fd, [view[done:length]], offset + done, flags)
            if wrote <= 0:
                raise OSError(errno.EIO, f"{node}: write made no progress at {offset + done}")
            done += wrote
        return ScsiResult(ScsiStatus.GOOD)
    except OSError as exc:
        return _errno_answer(exc, write=True)
    finally:
        view.release()


def _flush(fd: int) -> ScsiResult:
    try:
        os.fdatasync(fd)
    except OSError as exc:
        return _errno_answer(exc, write=True)
    return ScsiResult(ScsiStatus.GOOD)
