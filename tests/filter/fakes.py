"""An in-memory LUN and a fake transport, for unit tests of the filter layer's logic.

The fake answers the handful of commands the filter sends (INQUIRY and its VPD pages,
READ CAPACITY (16), READ/WRITE (16), SYNCHRONIZE CACHE, TEST UNIT READY) and lets a
test break a path in the ways real paths break: refuse login, drop the connection,
stop answering, or return chosen sense data. Real-rig tests cover the real transport.
"""

from __future__ import annotations

import asyncio
import struct
from collections import deque
from dataclasses import dataclass, field

from mpath.scsi.cdb import Opcode, decode_rw
from mpath.scsi.sense import encode_sense
from mpath.transports.base import (
    Answer,
    FenceError,
    FenceUnavailableError,
    LoginError,
    PathDisconnectedError,
    ScsiResult,
    ScsiStatus,
    Transport,
    TransportError,
)

BLOCK = 512


@dataclass
class FakeLun:
    """The LU: its data and identity, shared by every fake path to it."""

    blocks: int = 2048
    designator: bytes = bytes.fromhex("6" + "1" * 31)
    data: bytearray = field(init=False)
    in_flight: int = 0
    max_in_flight: int = 0
    log: list[str] = field(default_factory=list)  # "<url> close", "<url> write" in order
    #: ALUA: target port group -> access state (mpath.scsi.alua.AluaState). None: the
    #: LU has no ALUA (INQUIRY TPGS 0), as before.
    alua: dict[int, int] | None = None
    #: Persistent reservations (SPC-4, the subset mpath uses): I_T nexus (one per
    #: fake session) -> registered key, and the reservation (holder nexus, type).
    registrations: dict[int, int] = field(default_factory=dict)
    reservation: tuple[int, int] | None = None
    sessions: int = 0

    def __post_init__(self) -> None:
        self.data = bytearray(self.blocks * BLOCK)

    def grow(self, blocks: int) -> None:
        """The LU was resized on the target (zeroes past the old end)."""
        self.data.extend(bytes((blocks - self.blocks) * BLOCK))
        self.blocks = blocks

    @property
    def wwid(self) -> str:
        return "3" + self.designator.hex()


def _standard_inquiry(alua: bool) -> bytes:
    body = bytes([0x00, 0x00, 0x05, 0x02, 91, 0x10 if alua else 0x00, 0x00, 0x02])
    return (body + b"FAKE    " + b"FAKE-LUN        " + b"0001").ljust(96, b"\0")


def _vpd(page: int, payload: bytes) -> bytes:
    return bytes([0, page]) + struct.pack(">H", len(payload)) + payload


class FakeTransport:
    """One fake path to a :class:`FakeLun`."""

    def __init__(
        self, url: str, lun: FakeLun, *, window: int | None = None, group: int | None = None
    ) -> None:
        self._url = url
        #: This path's ALUA target port group (used when the LUN has ALUA).
        self.group = 1 if group is None else group
        self.lun = lun
        self.window = window
        self._connected = False
        self.refuse_login = False
        self.hang = False  # commands never complete (a black-holed path)
        self.injected: deque[ScsiResult] = deque()  # answers for the next data commands
        self.executed = 0
        self.closes = 0
        self.events: list[str] = []  # "execute <op>", "close", "fence ..." in order
        #: Why a fence is refused (a target without session reinstatement), or None.
        self.fence_refused: str | None = None
        #: The refusal is final (another target portal group): FenceUnavailableError.
        self.fence_impossible = False
        self.nexus = 0  # this session's I_T nexus on the LUN (0: never logged in)
        #: What fence_scope reports (an iSCSI path: "target portal group N").
        self.scope: str | None = None
        self.fences: list[str] = []  # "through <url>" per successful fence
        #: READ CAPACITY answers this many blocks instead of the LUN's (a stale port).
        self.reported_blocks: int | None = None
        self._pending: set[asyncio.Future[None]] = set()

    @property
    def url(self) -> str:
        return self._url

    @property
    def connected(self) -> bool:
        return self._connected

    @property
    def max_commands(self) -> int | None:
        return self.window

    @property
    def relogin_fences(self) -> bool:
        return True

    @property
    def fence_method(self) -> str:
        return "fake-reinstatement"

    @property
    def fence_identity(self) -> str | None:
        return f"{self._url}-isid"

    @property
    def fence_scope(self) -> str | None:
        return self.scope

    async def prepare_fence(self) -> None:
        self.events.append("prepare fence")

    async def fence(self, through: Transport | None) -> None:
        via = "own portal" if through is None else f"through {through.url}"
        if self.fence_refused is not None:
            self.events.append(f"fence refused {via}")
            if self.fence_impossible:
                raise FenceUnavailableError(self._url, self.fence_refused)
            raise FenceError(self._url, self.fence_refused)
        self.events.append(f"fence {via}")
        self.lun.log.append(f"{self._url} fenced {via}")
        self.fences.append(via)

    async def connect(self) -> None:
        if self.refuse_login:
            raise LoginError(self._url, "login refused (fake)")
        self._connected = True
        self.lun.sessions += 1
        self.nexus = self.lun.sessions

    async def close(self) -> None:
        self.closes += 1
        self.events.append("close")
        self.lun.log.append(f"{self._url} close")
        self._connected = False
        for waiter in list(self._pending):
            if not waiter.done():
                waiter.set_exception(PathDisconnectedError(self._url, "session closed"))

    def release(self) -> None:
        """Answer every command held by ``hang`` (the path was only slow)."""
        self.hang = False
        for waiter in list(self._pending):
            _resolve(waiter)

    def disconnect(self) -> None:
        """The connection breaks (RST): outstanding commands fail."""
        self._connected = False
        for waiter in list(self._pending):
            if not waiter.done():
                waiter.set_exception(PathDisconnectedError(self._url, "connection reset"))

    async def execute(
        self,
        cdb: bytes,
        *,
        data_out: bytes | memoryview | None = None,
        data_in_length: int = 0,
    ) -> ScsiResult:
        if not self._connected:
            raise PathDisconnectedError(self._url, "not logged in", sent=False)
        self.executed += 1
        self.events.append(f"execute {cdb[0]:#04x}")
        self.lun.in_flight += 1
        self.lun.max_in_flight = max(self.lun.max_in_flight, self.lun.in_flight)
        try:
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._pending.add(waiter)
            if not self.hang:
                asyncio.get_running_loop().call_soon(_resolve, waiter)
            try:
                await waiter
            finally:
                self._pending.discard(waiter)
            return self._answer(cdb, data_out, data_in_length)
        finally:
            self.lun.in_flight -= 1

    def _answer(self, cdb: bytes, data_out: bytes | memoryview | None, length: int) -> ScsiResult:
        rw = decode_rw(cdb)
        if rw is not None:
            if self.injected:
                return self.injected.popleft()
            refusal = self._alua_refusal()
            if refusal is not None:
                return refusal
            if (
                rw.is_write
                and self.lun.reservation is not None
                and self.nexus not in self.lun.registrations
            ):
                return ScsiResult(ScsiStatus.RESERVATION_CONFLICT)
            start, end = rw.lba * BLOCK, (rw.lba + rw.blocks) * BLOCK
            if end > len(self.lun.data):
                return check_condition(0x05, 0x21, 0x00)
            if rw.is_write:
                self.lun.log.append(f"{self._url} write")
                assert data_out is not None and len(data_out) == end - start
                self.lun.data[start:end] = data_out
                return ScsiResult(ScsiStatus.GOOD)
            return ScsiResult(ScsiStatus.GOOD, data=bytes(self.lun.data[start:end]))
        opcode = cdb[0]
        if opcode == Opcode.INQUIRY:
            if not cdb[1] & 1:
                data = _standard_inquiry(self.lun.alua is not None)
            elif cdb[2] == 0x83:
                page = bytes([0x01, 0x03, 0x00, 16]) + self.lun.designator
                if self.lun.alua is not None:  # type 5, target port association
                    page += bytes([0x01, 0x15, 0x00, 4, 0, 0]) + struct.pack(">H", self.group)
                data = _vpd(0x83, page)
            elif cdb[2] == 0x80:
                data = _vpd(0x80, b"FAKESERIAL")
            elif cdb[2] == 0xB0:
                data = _vpd(0xB0, bytes(60))
            else:
                return check_condition(0x05, 0x24, 0x00)
            return ScsiResult(ScsiStatus.GOOD, data=data[:length])
        if opcode == Opcode.MAINTENANCE_IN and self.lun.alua is not None:
            return ScsiResult(ScsiStatus.GOOD, data=_rtpg(self.lun.alua)[:length])
        if opcode == Opcode.PERSISTENT_RESERVE_OUT:
            assert data_out is not None
            return self._reserve_out(cdb[1] & 0x1F, cdb[2] & 0x0F, bytes(data_out))
        if opcode == Opcode.PERSISTENT_RESERVE_IN:
            keys = list(self.lun.registrations.values())
            if cdb[1] == 0:
                data = struct.pack(">II", 1, 8 * len(keys)) + b"".join(
                    struct.pack(">Q", k) for k in keys
                )
            elif self.lun.reservation is None:
                data = struct.pack(">II", 1, 0)
            else:
                holder, pr_type = self.lun.reservation
                data = struct.pack(">IIQ4xxB2x", 1, 16, self.lun.registrations[holder], pr_type)
            return ScsiResult(ScsiStatus.GOOD, data=data[:length])
        if opcode == Opcode.SERVICE_ACTION_IN_16:
            blocks = self.lun.blocks if self.reported_blocks is None else self.reported_blocks
            data = struct.pack(">QI", blocks - 1, BLOCK).ljust(32, b"\0")
            return ScsiResult(ScsiStatus.GOOD, data=data[:length])
        if self.injected:
            return self.injected.popleft()
        return ScsiResult(ScsiStatus.GOOD)

    def _reserve_out(self, action: int, pr_type: int, params: bytes) -> ScsiResult:
        """REGISTER (AND IGNORE), RESERVE, PREEMPT (AND ABORT) as SPC-4 has them for a
        Registrants Only reservation."""
        lun, mine = self.lun, self.lun.registrations.get(self.nexus)
        key, sa_key = struct.unpack_from(">QQ", params)
        conflict = ScsiResult(ScsiStatus.RESERVATION_CONFLICT)
        self.lun.log.append(f"{self._url} PR OUT {action} {sa_key:#x}")
        if action in (0x00, 0x06):  # REGISTER, REGISTER AND IGNORE EXISTING KEY
            if action == 0x00 and key != (mine or 0):
                return conflict
            if sa_key:
                lun.registrations[self.nexus] = sa_key
            else:
                lun.registrations.pop(self.nexus, None)
                if lun.reservation is not None and lun.reservation[0] == self.nexus:
                    lun.reservation = None
            return ScsiResult(ScsiStatus.GOOD)
        if mine is None or mine != key:
            return conflict
        if action == 0x01:  # RESERVE
            if lun.reservation is None:
                lun.reservation = (self.nexus, pr_type)
                return ScsiResult(ScsiStatus.GOOD)
            return ScsiResult(ScsiStatus.GOOD) if lun.reservation[0] == self.nexus else conflict
        if action in (0x04, 0x05):  # PREEMPT (AND ABORT)
            victims = [n for n, k in lun.registrations.items() if k == sa_key]
            if not victims:
                return conflict
            for nexus in victims:
                del lun.registrations[nexus]
            if lun.reservation is not None and lun.reservation[0] in victims:
                lun.reservation = (self.nexus, pr_type)
            return ScsiResult(ScsiStatus.GOOD)
        return check_condition(0x05, 0x24, 0x00)

    def _alua_refusal(self) -> ScsiResult | None:
        """What a port answers media access in its group's ALUA state (SPC-4)."""
        if self.lun.alua is None:
            return None
        ascq = {0x2: 0x0B, 0x3: 0x0C, 0xF: 0x0A}.get(self.lun.alua[self.group])
        return None if ascq is None else check_condition(0x02, 0x04, ascq)


def _rtpg(groups: dict[int, int]) -> bytes:
    """REPORT TARGET PORT GROUPS data, extended header, one port per group."""
    body = b"".join(
        bytes([state, 0x8F, *struct.pack(">H", group), 0, 0, 0, 1, 0, 0]) + struct.pack(">H", group)
        for group, state in groups.items()
    )
    return struct.pack(">I", len(body) + 4) + bytes([0x10, 0, 0, 0]) + body


class DirectFakeTransport(FakeTransport):
    """A fake path with a direct ``submit`` (:class:`~mpath.transports.base.DirectSubmit`),
    which, like the iSCSI transport's, raises at once when the session is down and
    otherwise answers from a callback of its own."""

    def submit(
        self,
        cdb: bytes,
        *,
        data_out: bytes | memoryview | None = None,
        data_in_length: int = 0,
        on_answer: Answer,
    ) -> None:
        if not self.connected:
            raise PathDisconnectedError(self.url, "not logged in", sent=False)
        running = asyncio.ensure_future(
            self.execute(cdb, data_out=data_out, data_in_length=data_in_length)
        )

        def answered(_: object) -> None:
            error = running.exception()
            if error is None:
                on_answer(running.result())
            else:
                assert isinstance(error, TransportError)
                on_answer(error)

        running.add_done_callback(answered)


def _resolve(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


def check_condition(key: int, asc: int, ascq: int) -> ScsiResult:
    return ScsiResult(ScsiStatus.CHECK_CONDITION, sense=encode_sense(key, asc, ascq))
