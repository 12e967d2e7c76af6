"""``directio``: read block 0 of a block device with O_DIRECT, for block-device paths.

For a path that is a device node (``/dev/sdX``: a kernel SCSI disk, whatever carries
it), the checker reads the first 4 KiB through the node with ``O_DIRECT``, so the page
cache cannot answer for a dead path. The read runs in a worker thread (a read from a
dead device can block in the kernel for the SCSI timeout); the check itself still ends
at its ``timeout`` with ``timeout``. Like multipath-tools' async directio, a read that
is still blocked is not stacked on: until it returns, further checks of that node
report ``timeout`` at once instead of tying up another thread.

The path's transport names the node in its ``url``. Until mpath has a block
transport, :class:`DeviceNode` stands in for one (it carries no SCSI commands).

=========================  ===========  =====================================
outcome                    state        message
=========================  ===========  =====================================
read returned data         up           ``path up``
read failed (EIO, ...)     down         ``path down`` + the error
node missing (ENOENT)      removed      ``no usable file descriptor``
O_DIRECT refused (EINVAL)  unchecked    ``no usable file descriptor``
url not a ``/dev`` node    wild         ``checker not supported on this device``
=========================  ===========  =====================================
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import errno
import mmap
import os
from typing import Final

from mpath.checkers.base import DEFAULT_CHECK_TIMEOUT, Checker, Probe
from mpath.scsi.states import CheckerMsg, CheckerState
from mpath.transports.base import ScsiResult, Transport, TransportError

READ_BYTES: Final = 4096
"""Bytes read at offset 0: a multiple of every logical block size in use (512, 4096),
as O_DIRECT requires, so no block-size query is needed."""

#: Threads reading device nodes, shared by every directio checker of the process.
#: Bounded: a node whose read hangs holds one thread until the kernel gives up.
_MAX_THREADS: Final = 16
_executor: concurrent.futures.ThreadPoolExecutor | None = None


def _threads() -> concurrent.futures.ThreadPoolExecutor:
    global _executor  # noqa: PLW0603 - one lazily created pool per process
    if _executor is None:
        _executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=_MAX_THREADS, thread_name_prefix="mpath-directio"
        )
    return _executor


def read_block0(node: str, nbytes: int = READ_BYTES) -> Probe:
    """Blocking: open ``node`` with O_DIRECT, read ``nbytes`` at 0, say what happened."""
    try:
        fd = os.open(node, os.O_RDONLY | os.O_DIRECT | os.O_CLOEXEC)
    except FileNotFoundError:
        return Probe(CheckerState.REMOVED, CheckerMsg.NO_FD, f"{node} does not exist")
    except OSError as exc:
        if exc.errno == errno.EINVAL:
            return Probe(CheckerState.UNCHECKED, CheckerMsg.NO_FD, f"{node}: O_DIRECT refused")
        return Probe(CheckerState.DOWN, CheckerMsg.DOWN, f"open {node}: {exc.strerror}")
    try:
        with mmap.mmap(-1, nbytes) as buffer:  # page-aligned, as O_DIRECT needs
            got = os.preadv(fd, [buffer], 0)
    except OSError as exc:
        return Probe(CheckerState.DOWN, CheckerMsg.DOWN, f"read {node}: {exc.strerror}")
    finally:
        os.close(fd)
    if got <= 0:
        return Probe(CheckerState.DOWN, CheckerMsg.DOWN, f"read {node}: nothing returned")
    return Probe(CheckerState.UP, CheckerMsg.UP)


class DirectioChecker(Checker):
    """O_DIRECT read of block 0 through the path's device node (``transport.url``)."""

    name = "directio"

    def __init__(self, timeout: float = DEFAULT_CHECK_TIMEOUT) -> None:
        super().__init__(timeout)
        #: Reads still running, by node: the only per-path state a checker keeps,
        #: because a blocked kernel read cannot be cancelled, only waited out.
        self._reads: dict[str, asyncio.Future[Probe]] = {}

    async def _probe(self, transport: Transport) -> Probe:
        node = transport.url
        if not node.startswith("/dev/"):
            return Probe(
                CheckerState.WILD,
                CheckerMsg.UNSUPPORTED,
                f"directio reads block devices (/dev/...), not {node}",
            )
        read = self._reads.get(node)
        if read is not None and not read.done():
            return Probe(
                CheckerState.TIMEOUT, CheckerMsg.NONE, "the previous read is still blocked"
            )
        read = asyncio.get_running_loop().run_in_executor(_threads(), read_block0, node)
        self._reads[node] = read
        read.add_done_callback(lambda done: self._forget(node, done))
        return await asyncio.shield(read)

    def _forget(self, node: str, done: asyncio.Future[Probe]) -> None:
        if self._reads.get(node) is done:
            del self._reads[node]


class DeviceNode:
    """A block device node as a path for the directio checker (no block transport yet).

    It satisfies the :class:`~mpath.transports.base.Transport` protocol so checkers take
    one kind of argument, but it carries no SCSI commands: :meth:`execute` raises.
    """

    def __init__(self, node: str) -> None:
        self._node = node

    @property
    def url(self) -> str:
        return self._node

    @property
    def connected(self) -> bool:
        return os.path.exists(self._node)

    @property
    def max_commands(self) -> int | None:
        return None

    async def connect(self) -> None:
        """Nothing to log in to: the kernel owns the device."""

    async def execute(
        self,
        cdb: bytes,
        *,
        data_out: bytes | memoryview | None = None,
        data_in_length: int = 0,
    ) -> ScsiResult:
        raise TransportError(self._node, "a device node carries no SCSI commands here")

    async def close(self) -> None:
        """Nothing to tear down."""
