"""Whose fault is a stall, the LUN's or one path's: the stall watchdog's judgement.

A busy array stops answering on every path at once, for up to a second or more, and
then catches up (a cache destage, a busy controller, a backing store out of page
cache). A watchdog that looks at each path alone then fails every path in turn, and
each false failure costs a logout, a login and reissued I/O, and floods the logs and
the target. A dead path looks different: the *other* paths keep answering while it
stays silent. So paths are judged against each other, and against the LUN's own
recent stalls:

* **A path lags** when it made no progress for longer than its own limit (the per-path
  adaptive timeout, :meth:`mpath.filter.path.Path.timeout`) while another path answered
  after that limit had passed, and that has gone on for at least the *lag grace*:
  :data:`LAG_FACTOR` x the LUN's recent stall scale. On a LUN that has not stalled lately
  the grace is about 0, so a dead path of a healthy LUN is failed as fast as ever; on a
  LUN that stalls for a second at a time, a path the target merely served last gets two
  seconds to catch up. A lagging path is failed.
* **The LUN is slow** when a path is past its own limit and no other path answered since
  its last progress: every path is silent together. Nothing is failed for that until
  the stall outlasts the LUN's limit, ``clamp(LUN_FACTOR x recent stall scale,
  io_timeout_max, lun_stall_timeout)``; then every busy path past it is failed (they
  may all be cut, as by a lost switch). The first such stall of a slow period is logged
  once, and its end once more when the LUN has kept time for :data:`QUIET_AFTER` seconds.
* **The network is asked.** A silent path over TCP (iSCSI) is pinged once nothing it
  sent waits for an acknowledgement, and every second while it stays silent
  (:meth:`mpath.filter.device.MultipathDevice._network`):
  a target whose SCSI layer is stalled still has a kernel that acknowledges the ping,
  a cut network acknowledges nothing and TCP times the bytes out. So when every path is
  silent, one whose network carries (:attr:`Network.CARRIES`) is the slow LUN's and
  keeps ``lun_stall_timeout``, however much longer than the LUN's recent stalls this
  one is; one whose network is down (:attr:`Network.SILENT`) gets ``io_timeout_max``,
  as on a LUN that never stalls. Only without word from the network does the LUN's
  limit from its recent stalls decide.
* **Idle peers are asked.** When no other path is busy there is nothing to compare
  with: the judge then asks for one cheap command (TEST UNIT READY) on every idle
  usable peer. The answer, or its absence, decides as above.
* **One path** has nothing to compare with: its stalls are the LUN's, judged by the
  LUN's limit (at least ``io_timeout_max``).
* **The LUN's recent stall scale** is the longest a path was kept waiting lately before
  its answer came (time busy without a completion, ended by a completion on that same
  path) while no other path was answered either, a peak that halves every
  :data:`STALL_HALF_LIFE` seconds. A wait counts once it
  has ended, so a stall never lengthens its own limit, and a cut path's silence (never
  ended by its own answer) never counts.

The judge is pure: it sees snapshots of the paths (:class:`PathView`) at each
watchdog tick and reads time only from the clock it is given.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Final

log = logging.getLogger(__name__)

Clock = Callable[[], float]

#: A path answered after by another path is failed once it has lagged for this many
#: times the LUN's recent stall scale (a slow target may serve one path a period late).
LAG_FACTOR: Final = 2.0
#: When every path is silent, they are failed after this many times the LUN's recent
#: stall scale (at least ``io_timeout_max``, at most ``lun_stall_timeout``), unless
#: their networks say more (:class:`Network`).
LUN_FACTOR: Final = 4.0
#: Seconds in which the LUN's recent stall scale halves.
STALL_HALF_LIFE: Final = 20.0
#: Seconds without a LUN-wide stall past a path's limit after which the LUN is said
#: to answer normally again (logged once).
QUIET_AFTER: Final = 30.0


class Network(Enum):
    """What a silent path's TCP connection says (:mod:`mpath.transports.tcp`).

    ``CARRIES``: the target's host acknowledged a ping sent after the path fell silent,
    lately: the network and the target's kernel work, its SCSI layer is slow.
    ``SILENT``: bytes went unacknowledged through retransmission timeouts: the path's
    network is down. ``UNKNOWN``: not asked yet, or no acknowledgement yet.
    """

    UNKNOWN = "unknown"
    CARRIES = "carries"
    SILENT = "silent"


@dataclass(frozen=True, slots=True)
class PathView:
    """One path as the watchdog sees it at a tick.

    ``progress``: the last completion, or when the path went from idle to busy.
    ``answered``: the last completion only. ``limit``: the path's own no-progress limit.
    ``network``: what its connection says once it is silent past its limit (None: the
    transport cannot tell).
    """

    key: int
    active: bool
    busy: bool
    progress: float
    answered: float
    limit: float
    network: Network | None = None


@dataclass(frozen=True, slots=True)
class Failure:
    key: int
    reason: str


@dataclass(slots=True)
class Verdict:
    """What the watchdog should do now: paths to fail, idle peers to probe."""

    fail: list[Failure] = field(default_factory=list)
    probe: list[int] = field(default_factory=list)


class StallJudge:
    """Decides, tick by tick, whether a stall is one path's or the whole LUN's.

    ``floor`` is the shortest all-silent stall that fails paths (``io_timeout_max``),
    ``ceiling`` the longest (``lun_stall_timeout``). ``name`` labels the log lines.
    """

    def __init__(self, *, floor: float, ceiling: float, clock: Clock, name: str = "LUN") -> None:
        self.floor = floor
        self.ceiling = max(floor, ceiling)
        self.name = name
        self._clock = clock
        self._scale = 0.0
        self._scale_at = 0.0
        self._episode = 0.0  # the LUN-wide stall now going on (0: none)
        self._episode_judged = False  # it passed some path's limit and was blamed on the LUN
        self._behind: dict[int, float] = {}  # path -> since when another path answered after it
        self._seen: dict[int, tuple[float, float]] = {}  # path -> (progress, wait) at last tick
        self._slow_since: float | None = None
        self._slow_last = 0.0
        self._period_stalls = 0
        self._period_longest = 0.0
        #: LUN-wide stalls blamed on the LUN (each past some path's own limit).
        self.lun_stalls = 0
        #: Of those, the ones in which a silent path's network was seen carrying bytes
        #: (the target's kernel acknowledged a ping): the LUN was slow, for certain.
        self.carried_stalls = 0
        self._episode_carried = False

    # -- what the device reads ------------------------------------------------------------

    def scale(self, now: float | None = None) -> float:
        """The LUN's recent stall scale: the longest recent LUN-wide stall, decayed."""
        at = self._clock() if now is None else now
        if not self._scale:
            return 0.0
        return float(self._scale * 0.5 ** (max(0.0, at - self._scale_at) / STALL_HALF_LIFE))

    def lun_limit(self, now: float | None = None) -> float:
        """How long every path may be silent together before they are failed."""
        return min(max(self.floor, LUN_FACTOR * self.scale(now)), self.ceiling)

    def lag_grace(self, now: float | None = None) -> float:
        """How long a path may stay silent past its limit while another path answers."""
        return min(LAG_FACTOR * self.scale(now), self.ceiling)

    @property
    def slow(self) -> bool:
        """The LUN is in a slow period (a stall was blamed on it, not yet quiet again)."""
        return self._slow_since is not None

    def describe(self) -> dict[str, Any]:
        now = self._clock()
        return {
            "lun_slow": self.slow,
            "lun_stalls": self.lun_stalls,
            "carried_stalls": self.carried_stalls,
            "stall_scale_ms": round(self.scale(now) * 1000, 1),
            "lun_limit_ms": round(self.lun_limit(now) * 1000, 1),
            "lag_grace_ms": round(self.lag_grace(now) * 1000, 1),
        }

    # -- the judgement ----------------------------------------------------------------------

    def skip(self, seconds: float) -> None:
        """The watchdog did not run for ``seconds`` (the process was starved): that time
        counts against no path, so lags are shifted forward by it."""
        for key in self._behind:
            self._behind[key] += seconds

    def judge(self, paths: Sequence[PathView]) -> Verdict:
        """Which busy paths to fail now, and which idle peers to probe."""
        now = self._clock()
        self._observe_lun(now, paths)
        self._maybe_quiet(now)
        verdict = Verdict()
        for view in paths:
            if not (view.active and view.busy):
                self._behind.pop(view.key, None)
                continue
            leader = max(
                (o for o in paths if o.key != view.key), key=lambda o: o.answered, default=None
            )
            # Another path answered when this one was already overdue: the LUN serves,
            # this path does not. (An answer a moment after this path's last one, just
            # before the whole LUN stalls, says nothing.)
            ahead = leader is not None and leader.answered > view.progress + view.limit
            since = self._behind.get(view.key)
            if not ahead:
                self._behind.pop(view.key, None)
            elif since is None or view.progress >= since:
                since = self._behind[view.key] = now
            stalled = now - view.progress
            if stalled <= view.limit:
                continue
            if ahead and leader is not None and since is not None:
                if now - since >= self.lag_grace(now):
                    verdict.fail.append(
                        Failure(
                            view.key,
                            f"no answer for {stalled * 1000:.0f} ms while path {leader.key} "
                            f"answered",
                        )
                    )
                continue
            idle_peers = [o.key for o in paths if o.key != view.key and o.active and not o.busy]
            if idle_peers:
                for key in idle_peers:
                    if key not in verdict.probe:
                        verdict.probe.append(key)
            limit, why = self._silent_limit(now, view)
            if stalled > limit:
                verdict.fail.append(
                    Failure(
                        view.key,
                        f"no answer for {stalled * 1000:.0f} ms, nor from any other path "
                        f"({why} {limit * 1000:.0f} ms)",
                    )
                )
            elif not idle_peers:
                self._blame_lun(now, stalled, limit)
        return verdict

    def _silent_limit(self, now: float, view: PathView) -> tuple[float, str]:
        """How long ``view`` may stay silent while every path is, and what decided it.

        Its network decides when it can: a target whose kernel acknowledges a ping is
        slow, not cut, and gets the ceiling; a network that acknowledges nothing is
        down, and gets the floor, as on a LUN that never stalls. Otherwise the LUN's
        limit (its recent stalls) decides.
        """
        if view.network is Network.CARRIES:
            if not self._episode_carried:
                self._episode_carried = True
                self.carried_stalls += 1
            return max(view.limit, self.ceiling), "its network carries; the slow LUN's limit is"
        if view.network is Network.SILENT:
            return max(view.limit, self.floor), "its network acknowledges nothing; limit"
        return max(view.limit, self.lun_limit(now)), "the LUN's stall limit is"

    def _observe_lun(self, now: float, paths: Sequence[PathView]) -> None:
        """Learn the LUN's stalls from the paths' waits, and follow the LUN-wide stall.

        A path that answered since the last tick was kept waiting by the LUN for as long
        as it had been silent at that tick (to a tick's precision), but only as long as
        no path was answered either (the LUN-wide stall then): that joins the recent
        stall scale. Waits of paths that never answer (a cut path) do not count, nor the
        silence of a path that another path's answer ended, nor the late answers of a
        flapping path while the others are served.
        """
        for view in paths:
            seen = self._seen.get(view.key)
            if seen is not None and view.answered > seen[0] and seen[1] > 0:
                # Only as long as the whole LUN was silent too: a path kept waiting
                # while the others were answered lags; that is not the LUN's stall.
                self._scale = max(self.scale(now), min(seen[1], self._episode))
                self._scale_at = now
            self._seen[view.key] = (view.progress, now - view.progress if view.busy else 0.0)
        busy = [v for v in paths if v.active and v.busy]
        stall = 0.0
        if busy:
            last = max([v.progress for v in busy] + [v.answered for v in paths])
            stall = max(0.0, now - last)
        if stall < self._episode:  # something answered, or the LUN went idle
            if self._episode_judged:
                self._period_longest = max(self._period_longest, self._episode)
            self._episode_judged = False
            self._episode_carried = False
        self._episode = stall

    def _blame_lun(self, now: float, stalled: float, limit: float) -> None:
        if not self._episode_judged:
            self._episode_judged = True
            self.lun_stalls += 1
            self._period_stalls += 1
        self._slow_last = now
        if self._slow_since is None:
            self._slow_since = now
            log.warning(
                "%s: every path stopped answering at once (no answer for %.0f ms): the LUN "
                "is slow, not its paths; none is failed for it before %.0f ms",
                self.name, stalled * 1000, limit * 1000,
            )  # fmt: skip

    def _maybe_quiet(self, now: float) -> None:
        if self._slow_since is None or now - self._slow_last < QUIET_AFTER:
            return
        log.info(
            "%s: answering normally again after %d stalls in %.0f s (longest %.0f ms)",
            self.name, self._period_stalls, self._slow_last - self._slow_since,
            max(self._period_longest, self._episode) * 1000,
        )  # fmt: skip
        self._slow_since = None
        self._period_stalls = 0
        self._period_longest = 0.0
