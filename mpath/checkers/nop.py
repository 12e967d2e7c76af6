"""``nop``: an iSCSI NOP-Out ping on the path's session, where the transport offers one.

A NOP-Out travels the session and the TCP connection but not the SCSI layer, so it
says "the link and the target's iSCSI layer are alive" without touching the LUN (the
check open-iscsi runs every ``noop_out_interval``). It needs a transport with an
``async nop()`` method (:class:`SupportsNop`) that returns once the target's NOP-In
answer arrived and raises :class:`~mpath.transports.base.TransportError` if the
session broke. On a transport without one the checker reports ``wild`` with message
``unsupported``: that checker cannot work on that path, which is not the path's fault.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from mpath.checkers.base import Checker, Probe
from mpath.scsi.states import CheckerMsg, CheckerState
from mpath.transports.base import Transport


@runtime_checkable
class SupportsNop(Protocol):
    """A transport that can send an iSCSI NOP-Out and await the NOP-In answer."""

    async def nop(self) -> None: ...


class NopChecker(Checker):
    """NOP-Out / NOP-In round trip on the path's session."""

    name = "nop"

    async def _probe(self, transport: Transport) -> Probe:
        if not isinstance(transport, SupportsNop):
            return Probe(
                CheckerState.WILD,
                CheckerMsg.UNSUPPORTED,
                f"{type(transport).__name__} has no nop() (iSCSI NOP-Out)",
            )
        await transport.nop()
        return Probe(CheckerState.UP, CheckerMsg.UP)
