"""Persistent-reservation fencing for one multipath device (``reservation_key`` set).

What and why: :mod:`mpath.scsi.reservations`. Here the commands are sent, each on one
chosen path's own session (a registration belongs to that path's I_T nexus, so these
never go through the selector):

* **open** (:meth:`Reservations.check_free`, then :meth:`Reservations.register` per
  path): a LUN another initiator has reserved is refused before anything is
  registered; then each path registers a fresh key (REGISTER AND IGNORE EXISTING KEY)
  and RESERVEs Write Exclusive - Registrants Only (a RESERVATION CONFLICT there is
  fine when the holder's key is ours); keys of ours no path holds now (an earlier run,
  sessions a target kept) are preempted.
* **reinstatement**: the same :meth:`Reservations.register` before the path carries
  I/O again (a target may have dropped the registration with the old session, and a
  fence removed it on purpose).
* **fence** (:meth:`Reservations.preempt`): PREEMPT AND ABORT of the failed path's
  key through a working path. A target that does not implement PREEMPT AND ABORT (tgt
  answers ILLEGAL REQUEST) gets PREEMPT from then on: the registration is removed all
  the same, so a write that reaches the old nexus later is refused; only commands
  already inside the target are not aborted.
* **close** (:meth:`Reservations.release`): every key of ours but one working path's
  is preempted through that path (which then holds the reservation), and that path
  unregisters (REGISTER with service-action key 0): the reservation ends. Not while a
  preempted path's old session may still deliver writes (see there).
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any

from mpath.errors import DeviceError
from mpath.filter.path import Path
from mpath.scsi import cdb
from mpath.scsi.errors import ScsiError
from mpath.scsi.reservations import (
    FENCING_TYPE,
    PR_IN_ALLOC_LEN,
    PrIn,
    PrOut,
    Reservation,
    foreign_holder,
    is_ours,
    parse_read_keys,
    parse_read_reservation,
    path_key,
)
from mpath.scsi.sense import SenseKey, decode_sense
from mpath.transports.base import ScsiResult, ScsiStatus, TransportError

log = logging.getLogger(__name__)

#: Bound on one PERSISTENT RESERVE command.
PR_COMMAND_TIMEOUT = 2.0
#: Tries of one command that meets a UNIT ATTENTION (a registration change queues
#: them on other nexuses).
PR_ATTEMPTS = 3


class ReservationError(DeviceError):
    """A persistent-reservation step failed on a path; the message says which and why."""


class Reservations:
    """The registrations and the reservation a device holds under one key prefix."""

    def __init__(self, base: int) -> None:
        self.base = base
        #: Each path's key of its latest registration (a fresh one per registration).
        self.keys: dict[Path, int] = {}
        self._generation = os.urandom(1)[0]
        #: Paths whose key is registered on their current session, as far as we know.
        self.registered: set[Path] = set()
        #: Paths fenced by a preempt whose old session may still be alive at the target
        #: (a reinstating login of the path ends it). While any is, the reservation is
        #: what refuses that session's late writes, so close keeps it.
        self.live_fenced: set[Path] = set()
        #: PREEMPT AND ABORT until a target refuses it; then PREEMPT.
        self.preempt_action = PrOut.PREEMPT_AND_ABORT

    def describe(self, path: Path) -> dict[str, Any]:
        key = self.keys.get(path)
        return {
            "key": None if key is None else f"{key:#018x}",
            "registered": path in self.registered,
        }

    # -- commands ------------------------------------------------------------------------

    async def _execute(
        self, path: Path, command: bytes, *, data_out: bytes | None = None, data_in: int = 0
    ) -> ScsiResult:
        """One PR command on ``path``'s session, UNIT ATTENTIONs retried."""
        result = ScsiResult(ScsiStatus.GOOD)
        for _ in range(PR_ATTEMPTS):
            try:
                async with asyncio.timeout(PR_COMMAND_TIMEOUT):
                    result = await path.transport.execute(
                        command, data_out=data_out, data_in_length=data_in
                    )
            except TimeoutError:
                raise ReservationError(
                    f"{path.url}: no answer to PERSISTENT RESERVE within {PR_COMMAND_TIMEOUT:g} s"
                ) from None
            except TransportError as exc:
                raise ReservationError(str(exc)) from None
            sense = decode_sense(result.sense) if result.sense else None
            if sense is None or sense.key != SenseKey.UNIT_ATTENTION:
                return result
        return result

    async def _out(self, path: Path, action: PrOut, key: int, sa_key: int = 0) -> ScsiResult:
        pr_type = FENCING_TYPE if action in _TYPED else 0
        return await self._execute(
            path,
            cdb.persistent_reserve_out(action, pr_type),
            data_out=cdb.pr_out_parameters(key, sa_key),
        )

    async def _read_keys(self, path: Path) -> list[int]:
        command = cdb.persistent_reserve_in(PrIn.READ_KEYS, PR_IN_ALLOC_LEN)
        result = await self._execute(path, command, data_in=PR_IN_ALLOC_LEN)
        if result.status != ScsiStatus.GOOD:
            raise ReservationError(f"{path.url}: READ KEYS: {_said(result)}")
        try:
            return parse_read_keys(result.data)[1]
        except ScsiError as exc:
            raise ReservationError(f"{path.url}: {exc}") from None

    # -- the life cycle -------------------------------------------------------------------

    async def _read_reservation(self, path: Path) -> Reservation | None:
        result = await self._execute(
            path,
            cdb.persistent_reserve_in(PrIn.READ_RESERVATION, PR_IN_ALLOC_LEN),
            data_in=PR_IN_ALLOC_LEN,
        )
        if result.status != ScsiStatus.GOOD:
            raise ReservationError(
                f"{path.url}: READ RESERVATION: {_said(result)} (does the target implement "
                "persistent reservations? unset reservation_key to do without)"
            )
        try:
            return parse_read_reservation(result.data)
        except ScsiError as exc:
            raise ReservationError(f"{path.url}: {exc}") from None

    async def check_free(self, path: Path) -> None:
        """Raise :class:`ReservationError` if another initiator holds the LU's reservation."""
        reservation = await self._read_reservation(path)
        keys = await self._read_keys(path) if reservation is not None else []
        why = foreign_holder(self.base, reservation, keys)
        if why is not None:
            raise ReservationError(f"{why}: mpath does not take over another initiator's LUN")

    async def register(self, path: Path) -> None:
        """Register a fresh key for ``path`` on its session and hold the reservation.

        The path's previous key, if a target kept it on an ended session, is preempted
        (best effort). Raises :class:`ReservationError`: the path must then carry no
        writes.
        """
        self.registered.discard(path)
        previous = self.keys.get(path)
        self._generation += 1
        key = path_key(self.base, path.index, self._generation)
        result = await self._out(path, PrOut.REGISTER_AND_IGNORE_EXISTING_KEY, 0, key)
        if result.status != ScsiStatus.GOOD:
            raise ReservationError(f"{path.url}: registering key {key:#018x}: {_said(result)}")
        result = await self._out(path, PrOut.RESERVE, key)
        if result.status == ScsiStatus.RESERVATION_CONFLICT:
            holder = await self._read_reservation(path)
            if holder is None or not is_ours(self.base, holder.key):
                raise ReservationError(
                    f"{path.url}: RESERVE refused with RESERVATION CONFLICT: another "
                    f"initiator holds a reservation on the LU "
                    f"({'none now' if holder is None else holder.describe()})"
                )
            if holder.pr_type != FENCING_TYPE:
                raise ReservationError(
                    f"{path.url}: the LU holds a reservation of ours of another type "
                    f"({holder.describe()}): release it, or change the reservation_key"
                )
        elif result.status != ScsiStatus.GOOD:
            raise ReservationError(f"{path.url}: RESERVE: {_said(result)}")
        self.keys[path] = key
        self.registered.add(path)
        log.debug("path %s registered key %#018x", path.url, key)
        if previous is not None and previous != key:
            await self._preempt_key(path, previous)

    async def sweep(self, through: Path) -> None:
        """Preempt every key under our prefix that no path of ours holds now: left by an
        earlier run (or an ended session a target kept). Best effort, at open."""
        try:
            keys = await self._read_keys(through)
        except ReservationError as exc:
            log.warning("cannot read the LU's registrations: %s", exc)
            return
        current = set(self.keys.values())
        for key in sorted({k for k in keys if is_ours(self.base, k) and k not in current}):
            await self._preempt_key(through, key)

    async def _preempt_key(self, through: Path, victim: int) -> ScsiResult | None:
        """PREEMPT [AND ABORT] ``victim`` through ``through``: the answer, or None."""
        key = self.keys[through]
        try:
            result = await self._out(through, self.preempt_action, key, victim)
            if self.preempt_action is PrOut.PREEMPT_AND_ABORT and _illegal_request(result):
                log.info(
                    "%s: PREEMPT AND ABORT not implemented by the target; using PREEMPT",
                    through.url,
                )
                self.preempt_action = PrOut.PREEMPT
                result = await self._out(through, PrOut.PREEMPT, key, victim)
        except ReservationError as exc:
            log.info("preempting %#018x: %s", victim, exc)
            return None
        log.debug("preempt %#018x through %s: status %#04x", victim, through.url, result.status)
        return result

    async def preempt(self, failed: Path, through: Path) -> str | None:
        """Remove ``failed``'s registration through ``through``: None when done, else why not.

        A RESERVATION CONFLICT answer is read again with READ KEYS: when the failed key
        is registered nowhere, the old nexus is fenced already (an earlier preempt, or a
        target that dropped it with the session). A path that never registered is
        refused by the reservation anyway.
        """
        if through not in self.registered:
            return f"{through.url} holds no registration to preempt from"
        victim = self.keys.get(failed)
        if victim is not None:
            result = await self._preempt_key(through, victim)
            if result is None:
                return f"PREEMPT through {through.url} got no answer"
            if result.status == ScsiStatus.RESERVATION_CONFLICT:
                try:
                    keys = await self._read_keys(through)
                except ReservationError as exc:
                    return f"preempting through {through.url}: {exc.message}"
                if self.keys[through] not in keys:
                    self.registered.discard(through)
                    return f"{through.url}'s own registration is gone (preempted by another?)"
                if victim in keys:
                    return f"PREEMPT of key {victim:#018x} through {through.url}: {_said(result)}"
            elif result.status != ScsiStatus.GOOD:
                return f"PREEMPT of key {victim:#018x} through {through.url}: {_said(result)}"
        self.registered.discard(failed)
        self.live_fenced.add(failed)
        return None

    async def release(self, paths: list[Path]) -> None:
        """At close: preempt the keys of registered paths that are down, then unregister
        the working ones, which ends the reservation.

        Not while a preempted path's old session may still be alive at the target
        (:attr:`live_fenced`; the device first tries to end those sessions by
        reinstatement): its writes may still be in the network, and only the
        reservation refuses them. The working paths then stay registered, with a
        warning; a later open with the same key takes the registrations over and
        removes them at its own close. Never raises: what could not be removed is
        logged.
        """
        working = [p for p in paths if p.transport.connected and p in self.registered]
        down = [p for p in paths if p in self.registered and p not in working]
        if not working:
            if down:
                log.warning(
                    "no working path at close: registrations under %#018x stay on the LU",
                    self.base,
                )
            return
        carrier = working[0]
        for path in down:
            why = await self.preempt(path, carrier)
            if why is not None:
                log.warning("close: key of %s not removed: %s", path.url, why)
        if self.live_fenced:
            names = ", ".join(sorted(p.url for p in self.live_fenced))
            log.warning(
                "close: the reservation under %#018x is kept: the old session of %s may "
                "still deliver writes, which only the reservation refuses; opening the "
                "device again with this key, once that path works, removes it",
                self.base,
                names,
            )
            return
        # Every other key of ours (working paths, sessions a target kept) through the
        # carrier, then the carrier's own: the last registration ends the reservation.
        try:
            keys = await self._read_keys(carrier)
        except ReservationError as exc:
            log.warning("close: %s", exc)
            keys = [self.keys[p] for p in working]
        mine = self.keys[carrier]
        for key in sorted({k for k in keys if is_ours(self.base, k) and k != mine}):
            await self._preempt_key(carrier, key)
        try:
            result = await self._out(carrier, PrOut.REGISTER, mine, 0)
        except ReservationError as exc:
            log.warning("close: %s", exc)
            return
        if result.status == ScsiStatus.GOOD:
            self.registered.clear()
        else:
            log.warning("close: unregistering %s: %s", carrier.url, _said(result))


#: Service actions whose CDB carries the reservation type.
_TYPED = frozenset({PrOut.RESERVE, PrOut.RELEASE, PrOut.PREEMPT, PrOut.PREEMPT_AND_ABORT})


def _illegal_request(result: ScsiResult) -> bool:
    sense = decode_sense(result.sense) if result.sense else None
    return (
        result.status == ScsiStatus.CHECK_CONDITION
        and sense is not None
        and sense.key == SenseKey.ILLEGAL_REQUEST
    )


def _said(result: ScsiResult) -> str:
    from mpath.scsi.classify import explain

    if result.status == ScsiStatus.CHECK_CONDITION:
        sense = decode_sense(result.sense)
        if sense is not None:
            return f"CHECK CONDITION, {sense}"
    try:
        name = ScsiStatus(result.status).name.replace("_", " ")
    except ValueError:
        name = f"status {result.status:#04x}"
    return f"{name} ({explain(result.status, result.sense).why})"
