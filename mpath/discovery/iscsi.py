"""iSCSI discovery: SendTargets on each portal, then every LUN of every target found.

``mpath discover PORTAL...`` runs this. For each portal given:

1. **SendTargets.** A discovery session (libiscsi, session type Discovery) on the
   portal asks ``SendTargets=All``; the answer lists target names and, for each, the
   portals (``TargetAddress``) it can be reached through, which may include portals
   not given on the command line.
2. **Login and REPORT LUNS.** Every (target, portal) pair found is logged in to
   through LUN 0 (SPC requires LUN 0, or the REPORT LUNS well-known LU, to answer
   REPORT LUNS; tgt and LIO always have a LUN 0), which lists the target's LUNs.
3. **Identity.** Each LUN gets its own session: standard INQUIRY (only disks are kept;
   tgt's LUN 0, a storage-array controller, is not), then
   :func:`~mpath.scsi.probe.probe_lun`: WWID, vendor, product, size, block size; the
   session's command window is the path's ``max_commands``.
4. **Grouping.** Paths are grouped into multipath devices by WWID only.

Everything runs concurrently on one event loop (at most :data:`MAX_SESSIONS`
sessions at once), and every step is bounded by a timeout. A failure (unreachable
portal, refused login, wrong CHAP secret, a target asked for with ``--target`` that
the portal does not offer) is recorded as one line and the rest carries on, so one
dead portal never hides what the others offer.

**CHAP.** Credentials come from the configuration file's ``[[chap]]`` entries
(docs/config.md), never from the command line: the discovery session on a portal uses
the entry for that portal (an entry naming a target does not apply to discovery, which
has no target yet), one-way only (see :func:`_one_way`); each login uses the entry for
its portal and target, mutual CHAP included.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from mpath.errors import DeviceError, MpathError, UsageError
from mpath.scsi import cdb
from mpath.scsi.errors import ScsiError
from mpath.scsi.inquiry import parse_standard_inquiry
from mpath.scsi.luns import parse_report_luns
from mpath.scsi.probe import STANDARD_INQUIRY_LEN, LunInfo, probe_lun
from mpath.settings import DEFAULT_MAX_COMMANDS
from mpath.transports import open_transport
from mpath.transports.base import Transport, TransportError
from mpath.transports.iscsi import DEFAULT_INITIATOR_NAME
from mpath.transports.session import DiscoverySession
from mpath.transports.urls import DEFAULT_PORT, IscsiUrl

if TYPE_CHECKING:
    from mpath.config import ChapTable
    from mpath.config.chap import ChapCredentials

log = logging.getLogger(__name__)

#: Seconds one discovery session (connect, login, SendTargets) may take.
DEFAULT_TIMEOUT: Final = 5.0
#: Sessions open at once during discovery.
MAX_SESSIONS: Final = 8
#: Seconds a polite logout at the end of a discovery session may take.
LOGOUT_TIMEOUT: Final = 1.0
REPORT_LUNS_ALLOC_LEN: Final = 16384


class DiscoveryFailedError(MpathError):
    """Discovery found problems (exit 1); the devices found are still reported."""


# -- portals ---------------------------------------------------------------------------------


def parse_portal(text: str) -> tuple[str, int]:
    """``HOST[:PORT]`` (IPv6 as ``[addr]:port``) as (host, port); UsageError if bad.

    The host must be one an ``iscsi://`` URL can carry (checked by building one).
    """
    from mpath.config.chap import parse_portal as parse

    try:
        host, port = parse(text)
    except ValueError as exc:
        raise UsageError(f"bad portal {text!r}: {exc} (expected HOST[:PORT])") from None
    from mpath.transports.urls import parse_iscsi_url

    bracketed = f"[{host}]" if ":" in host else host
    try:
        parse_iscsi_url(f"iscsi://{bracketed}:{port}/iqn.2026-11.org.mpath:check/0")
    except UsageError:
        raise UsageError(f"bad portal {text!r}: {host!r} is not a host name or address") from None
    return host, port


def portal_text(host: str, port: int) -> str:
    """``host:port`` with IPv6 bracketed (libiscsi's and the config file's spelling)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def parse_target_address(text: str) -> tuple[str, int] | None:
    """A SendTargets ``TargetAddress`` (``198.18.1.2:3260,1``) as (host, port)."""
    address = text.rsplit(",", 1)[0] if "," in text else text
    try:
        return parse_portal(address)
    except UsageError:
        return None


@dataclass(frozen=True, slots=True)
class FoundTarget:
    """One target of a SendTargets answer and the portals it names."""

    name: str
    portals: tuple[tuple[str, int], ...]


async def send_targets(
    host: str,
    port: int = DEFAULT_PORT,
    *,
    chap: ChapCredentials | None = None,
    initiator_name: str = DEFAULT_INITIATOR_NAME,
    timeout: float = DEFAULT_TIMEOUT,
) -> list[FoundTarget]:
    """SendTargets on one portal: the targets it offers and their portals.

    Raises :class:`TransportError` with one line of explanation when the portal cannot
    be reached, refuses the login (wrong CHAP secret) or the exchange times out.
    """
    session = DiscoverySession(portal_text(host, port), initiator_name, chap)
    answer = await session.send_targets(timeout, LOGOUT_TIMEOUT)
    return [
        FoundTarget(name, tuple(p for p in map(parse_target_address, addresses) if p is not None))
        for name, addresses in answer
    ]


# -- the whole discovery ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DiscoveredPath:
    """One path to one LUN: its URL and what the LUN said through it."""

    url: str
    portal: str
    target: str
    lun: int
    info: LunInfo
    max_commands: int | None


@dataclass(slots=True)
class DiscoveredDevice:
    """One multipath device: a LUN identity and every path found to it."""

    wwid: str
    vendor: str
    product: str
    size_bytes: int
    block_size: int
    paths: list[DiscoveredPath] = field(default_factory=list)

    @property
    def max_commands(self) -> int:
        """The LUN cap mpath would use: the smallest window a path's session reported,
        else the filter layer's default."""
        known = [p.max_commands for p in self.paths if p.max_commands]
        return min(known) if known else DEFAULT_MAX_COMMANDS

    def describe(self) -> dict[str, Any]:
        return {
            "wwid": self.wwid,
            "size_bytes": self.size_bytes,
            "block_size": self.block_size,
            "max_commands": self.max_commands,
            "vendor": self.vendor,
            "product": self.product,
            "paths": [p.url for p in self.paths],
        }


@dataclass(frozen=True, slots=True)
class DiscoveryProblem:
    """One failure: where (portal, target, path URL as far as known) and what."""

    portal: str
    message: str
    target: str | None = None
    url: str | None = None

    def line(self) -> str:
        return f"{self.url or self.portal}: {self.message}"

    def describe(self) -> dict[str, Any]:
        return {
            "portal": self.portal,
            "target": self.target,
            "url": self.url,
            "error": self.message,
        }


@dataclass(slots=True)
class DiscoveryResult:
    """Devices found, the SendTargets answers, and every failure on the way."""

    devices: list[DiscoveredDevice] = field(default_factory=list)
    portals: dict[str, list[FoundTarget]] = field(default_factory=dict)
    problems: list[DiscoveryProblem] = field(default_factory=list)

    def describe(self) -> dict[str, Any]:
        return {
            "devices": [d.describe() for d in self.devices],
            "errors": [p.describe() for p in self.problems],
            "portals": [
                {
                    "portal": portal,
                    "targets": [
                        {"target": t.name, "portals": [portal_text(*p) for p in t.portals]}
                        for t in targets
                    ],
                }
                for portal, targets in self.portals.items()
            ],
        }


def group_paths(paths: Iterable[DiscoveredPath]) -> list[DiscoveredDevice]:
    """Paths grouped into devices by WWID, in the order first found."""
    devices: dict[str, DiscoveredDevice] = {}
    for path in paths:
        info = path.info
        device = devices.get(info.wwid)
        if device is None:
            device = devices[info.wwid] = DiscoveredDevice(
                info.wwid, info.vendor, info.product, info.size_bytes, info.block_size
            )
        device.paths.append(path)
    return list(devices.values())


class _Discovery:
    def __init__(
        self,
        chap: ChapTable | None,
        targets: Sequence[str],
        initiator_name: str,
        timeout: float,
    ) -> None:
        self.chap = chap
        self.wanted = list(targets)
        self.initiator = initiator_name
        self.timeout = timeout
        self.sessions = asyncio.Semaphore(MAX_SESSIONS)
        self.result = DiscoveryResult()

    def credentials(self, portal: str, target: str) -> ChapCredentials | None:
        if self.chap is None:
            return None
        return self.chap.credentials_for(portal, target)

    def problem(
        self, portal: str, message: str, target: str | None = None, url: str | None = None
    ) -> None:
        self.result.problems.append(DiscoveryProblem(portal, message, target, url))

    async def portal(self, host: str, port: int) -> list[tuple[str, tuple[str, int]]]:
        """SendTargets on one portal; the (target, portal) pairs to log in to."""
        name = portal_text(host, port)
        try:
            async with self.sessions:
                found = await send_targets(
                    host,
                    port,
                    chap=_one_way(self.credentials(name, "")),
                    initiator_name=self.initiator,
                    timeout=self.timeout,
                )
        except TransportError as exc:
            self.problem(name, f"SendTargets discovery failed: {_reason(exc, name)}")
            return []
        self.result.portals[name] = found
        offered = {t.name for t in found}
        for wanted in self.wanted:
            if wanted not in offered:
                self.problem(
                    name,
                    f"target {wanted} is not offered by this portal (SendTargets lists "
                    f"{', '.join(sorted(offered)) or 'no target'})",
                    target=wanted,
                )
        pairs = []
        for target in found:
            if self.wanted and target.name not in self.wanted:
                continue
            for address in target.portals or ((host, port),):
                pairs.append((target.name, address))
        return pairs

    async def target_portal(self, target: str, host: str, port: int) -> list[DiscoveredPath]:
        """Log in to ``target`` through one portal, list its LUNs, identify each."""
        portal = portal_text(host, port)
        chap = self.credentials(portal, target)
        lun0 = IscsiUrl(host, port, target, 0)
        transport = self._transport(lun0, chap)
        try:
            async with self.sessions:
                await transport.connect()
                luns = await self._report_luns(transport)
                paths: list[DiscoveredPath] = []
                if 0 in luns:
                    path = await self._identify(transport, lun0, portal)
                    if path is not None:
                        paths.append(path)
            others = [lun for lun in luns if lun != 0]
            results = await asyncio.gather(
                *(self.lun(IscsiUrl(host, port, target, lun), portal, chap) for lun in others)
            )
            paths.extend(p for p in results if p is not None)
            return paths
        except (TransportError, DeviceError, ScsiError) as exc:
            where = str(lun0).rsplit("/", 1)[0]
            self.problem(portal, _reason(exc, str(lun0)), target=target, url=where)
            return []
        finally:
            await transport.close()

    async def lun(
        self, url: IscsiUrl, portal: str, chap: ChapCredentials | None
    ) -> DiscoveredPath | None:
        transport = self._transport(url, chap)
        try:
            async with self.sessions:
                await transport.connect()
                return await self._identify(transport, url, portal)
        except (TransportError, DeviceError, ScsiError) as exc:
            self.problem(portal, _reason(exc, str(url)), target=url.target, url=str(url))
            return None
        finally:
            await transport.close()

    def _transport(self, url: IscsiUrl, chap: ChapCredentials | None) -> Transport:
        return open_transport(
            url, initiator_name=self.initiator, login_timeout=self.timeout, chap=chap
        )

    async def _report_luns(self, transport: Transport) -> tuple[int, ...]:
        result = await asyncio.wait_for(
            transport.execute(
                cdb.report_luns(REPORT_LUNS_ALLOC_LEN), data_in_length=REPORT_LUNS_ALLOC_LEN
            ),
            self.timeout,
        )
        if not result.good:
            raise DeviceError(f"REPORT LUNS refused (status {result.status:#04x})")
        return parse_report_luns(result.data)

    async def _identify(
        self, transport: Transport, url: IscsiUrl, portal: str
    ) -> DiscoveredPath | None:
        """The LUN behind ``transport``; None for LUNs that are not disks."""
        inquiry = await asyncio.wait_for(
            transport.execute(
                cdb.inquiry(alloc_len=STANDARD_INQUIRY_LEN), data_in_length=STANDARD_INQUIRY_LEN
            ),
            self.timeout,
        )
        if not inquiry.good:
            raise DeviceError(f"INQUIRY refused (status {inquiry.status:#04x})")
        standard = parse_standard_inquiry(inquiry.data)
        if not (standard.lu_present and standard.is_disk):
            log.info("%s: not a disk (device type %#04x): skipped", url, standard.device_type)
            return None
        info = await asyncio.wait_for(probe_lun(transport), self.timeout)
        return DiscoveredPath(str(url), portal, url.target, url.lun, info, transport.max_commands)


def _one_way(chap: ChapCredentials | None) -> ChapCredentials | None:
    """The credentials a discovery session uses: the initiator's only.

    With a target secret set, libiscsi insists that the target authenticate itself,
    and targets commonly do not run CHAP on discovery sessions at all (tgt does not),
    so mutual CHAP there would fail against a correctly configured target. SendTargets
    only reveals target names; mutual CHAP is enforced on every login that follows.
    """
    if chap is None or not chap.mutual:
        return chap
    from mpath.config.chap import ChapCredentials

    return ChapCredentials(chap.username, chap.password)


def _reason(exc: Exception, prefix: str) -> str:
    """The error's text without a leading repetition of where it happened."""
    text = str(exc)
    return text.removeprefix(f"{prefix}: ")


async def discover(
    portals: Sequence[str],
    *,
    chap: ChapTable | None = None,
    targets: Sequence[str] = (),
    initiator_name: str = DEFAULT_INITIATOR_NAME,
    timeout: float = DEFAULT_TIMEOUT,
) -> DiscoveryResult:
    """Discover the multipath devices behind ``portals`` (``HOST[:PORT]`` each).

    ``targets`` limits the logins to these target names (each must be offered by
    every portal asked, else that is a problem). Never raises for a portal, target or
    LUN that fails: see :attr:`DiscoveryResult.problems`. Bad portal text raises
    :class:`UsageError` before anything is contacted.
    """
    parsed = [parse_portal(text) for text in portals]
    if not parsed:
        raise UsageError("give at least one PORTAL (HOST[:PORT])")
    job = _Discovery(chap, targets, initiator_name, timeout)
    answers = await asyncio.gather(
        *(job.portal(host, port) for host, port in dict.fromkeys(parsed))
    )
    pairs = list(dict.fromkeys(pair for answer in answers for pair in answer))
    found = await asyncio.gather(*(job.target_portal(t, h, p) for t, (h, p) in pairs))
    job.result.devices = group_paths(path for paths in found for path in paths)
    return job.result
