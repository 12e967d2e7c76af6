"""Settings of one multipath device, with their defaults and why they are what they are.

The defaults aim at the storage administrator's two complaints about the usual
stack (see docs/filter.md): failover that takes tens of seconds, and I/O that hangs for
ever when every path is down.

They live here, beside :mod:`mpath.errors` and :mod:`mpath.units`, not in the filter
layer that obeys them: the configuration file (:mod:`mpath.config`) builds them and the
transports read their CHAP credentials from that configuration, so keeping them in
:mod:`mpath.filter` made the packages import each other in a circle.
"""

from __future__ import annotations

from dataclasses import dataclass

from mpath.errors import UsageError

#: LUN cap used when neither the configuration nor the transport gives one. Matches
#: the common iSCSI target command window and SCSI host queue depths.
DEFAULT_MAX_COMMANDS = 64
#: Largest single command when the LUN's Block Limits page sets no limit.
DEFAULT_MAX_IO_BYTES = 1024 * 1024
#: Seconds I/O waits for a path when every path has failed.
DEFAULT_NO_PATH_RETRY = 5.0
#: The ways a failed path may be fenced (see ``DeviceSettings.fence_method``).
FENCE_METHODS = ("auto", "reinstatement", "reservation")
#: What happens to a write in flight on a failed path that no method can fence.
UNFENCEABLE_WRITES = ("reissue", "fail")


@dataclass(frozen=True, slots=True)
class DeviceSettings:
    """How a :class:`~mpath.filter.device.MultipathDevice` behaves.

    * ``policy`` / ``policy_args``: the path selector (docs/selectors.md).
    * ``max_commands``: the LUN's cap on outstanding commands across all paths; None
      takes the smallest command window the paths' transports report, else
      :data:`DEFAULT_MAX_COMMANDS`. Always honoured when set.
    * ``no_path_retry``: seconds I/O waits for a path to come back when every path has
      failed, then it fails with NoPathError. 0 fails at once. Never infinite: a
      bounded wait is what stops processes hanging in D state.
    * ``io_timeout_min`` / ``io_timeout_factor`` / ``io_timeout_max``: a path with
      commands outstanding that makes no progress (no completion) for
      ``clamp(io_timeout_factor * its smoothed command latency, min, max)`` seconds is
      declared failed, its session torn down, and its commands reissued elsewhere.
      libiscsi's own timeout counts whole seconds; this one notices a dead path in a
      few hundred milliseconds while leaving slow-but-alive paths alone. A path is
      failed for it only when another path answers meanwhile; when every path is
      silent at once the LUN is slow, not its paths (:mod:`mpath.filter.stall`).
    * ``lun_stall_timeout``: the longest every path may be silent together (the LUN
      stalled) before they are failed anyway, and the limit of a silent path whose
      target's kernel still acknowledges a ping (the LUN is slow, not cut). A path
      whose network acknowledges nothing gets ``io_timeout_max``; without word from
      the network the limit is 4x the LUN's recent longest stall, and at least
      ``io_timeout_max`` (which wins when larger).
    * ``same_path_retries``: how often a command that got UNIT ATTENTION, BUSY or TASK
      SET FULL is retried on the same path before it is treated as a path failure.
    * ``reconnect_interval``: how often a failed path's session is tried again.
    * ``max_io_bytes``: largest command sent; bigger requests are split (the LUN's
      Block Limits page lowers it when it sets a maximum transfer length).
    * ``slow_command_timeout``: SYNCHRONIZE CACHE and passthrough commands may take
      long (a flush of gigabytes of cache); a path with only such commands in flight
      counts as failed after this many seconds without progress.
    * ``fence_timeout``: a write whose path failed while it was in flight is reissued
      elsewhere only after that path is fenced (it can no longer execute the write);
      when no fence succeeds within this many seconds, the write fails with
      :class:`~mpath.errors.FenceTimeoutError` instead of being reissued.
    * ``reservation_key``: when set (a non-zero 64-bit value with zero low 16 bits, as
      :func:`mpath.scsi.reservations.parse_reservation_key` reads it), every path
      registers ``reservation_key`` plus a counter and its number and the device holds a Write
      Exclusive - Registrants Only persistent reservation, so a failed path can be
      fenced through any working path by preempting its key, whatever target portal
      group it is in. None: no reservation; fences are session reinstatements only.
    * ``fence_method``: ``auto`` (reinstatement through a portal of the failed path's
      own target portal group, else the reservation when ``reservation_key`` is set),
      ``reinstatement`` or ``reservation`` (only that one; ``reservation`` needs
      ``reservation_key``).
    * ``unfenceable_writes``: what to do with such a write when no fencing method can
      work at all (the failed path is alone in its target portal group, as on targets
      that give each portal its own group, and no ``reservation_key`` is set):
      ``reissue`` (default) reissues it at once, with a warning, as dm-multipath
      does, and counts it in ``unfenced_reissues``: the held original may still land
      later; ``fail`` fails it with :class:`~mpath.errors.FenceTimeoutError` after
      ``fence_timeout``. Set ``reservation_key`` to fence such paths.
    * ``alua_poll_interval``: on an ALUA LU (INQUIRY TPGS), how often REPORT TARGET PORT
      GROUPS is read to learn the ports' access states when no answer says they
      changed (a sense code or unit attention about ALUA makes it read at once). A
      port that comes back from standby or unavailable sends nothing on its own, so
      this bounds how long the device takes to notice.
    * ``alua_transition_timeout``: how long I/O waits, without counting
      ``no_path_retry``, for ports in ALUA "transitioning" when no other port can carry
      it; after it a port still transitioning counts as standby (as the kernel's ALUA
      handler does).
    * ``priorities``: one priority per path, in path order, to group paths: I/O goes
      to the highest-priority group that has a usable path (the others stand by), and
      the policy balances within it. None: one group of all paths.
    * ``path_args``: the policy's per-path arguments, one tuple per path in path order
      (``quota``'s weight, ``service-time``'s repeat count and relative throughput;
      docs/selectors.md), as the kernel's table takes them after each path. None: the
      policy's defaults for every path.
    """

    policy: str = "share"
    policy_args: tuple[str, ...] = ()
    max_commands: int | None = None
    no_path_retry: float = DEFAULT_NO_PATH_RETRY
    io_timeout_min: float = 0.3
    io_timeout_factor: float = 4.0
    io_timeout_max: float = 3.0
    lun_stall_timeout: float = 10.0
    same_path_retries: int = 5
    reconnect_interval: float = 0.5
    max_io_bytes: int = DEFAULT_MAX_IO_BYTES
    slow_command_timeout: float = 60.0
    fence_timeout: float = 10.0
    reservation_key: int | None = None
    fence_method: str = "auto"
    unfenceable_writes: str = "reissue"
    priorities: tuple[int, ...] | None = None
    path_args: tuple[tuple[str, ...], ...] | None = None
    alua_poll_interval: float = 1.0
    alua_transition_timeout: float = 30.0

    def __post_init__(self) -> None:
        if self.max_commands is not None and self.max_commands < 1:
            raise UsageError(f"max_commands must be at least 1, not {self.max_commands}")
        if self.no_path_retry < 0:
            raise UsageError(f"no_path_retry must be 0 or more seconds, not {self.no_path_retry}")
        if not 0 < self.io_timeout_min <= self.io_timeout_max:
            raise UsageError("io_timeout_min must be > 0 and not above io_timeout_max")
        if self.io_timeout_factor < 1:
            raise UsageError("io_timeout_factor must be at least 1")
        if self.lun_stall_timeout <= 0:
            raise UsageError("lun_stall_timeout must be above 0 seconds")
        if self.same_path_retries < 0:
            raise UsageError("same_path_retries must be 0 or more")
        if self.reconnect_interval <= 0:
            raise UsageError("reconnect_interval must be above 0 seconds")
        if self.slow_command_timeout < self.io_timeout_max:
            raise UsageError("slow_command_timeout must not be below io_timeout_max")
        if self.fence_timeout < 0:
            raise UsageError(f"fence_timeout must be 0 or more seconds, not {self.fence_timeout}")
        if self.reservation_key is not None:
            from mpath.scsi.reservations import parse_reservation_key

            parse_reservation_key(self.reservation_key)
        if self.fence_method not in FENCE_METHODS:
            raise UsageError(
                f"fence_method must be one of {', '.join(FENCE_METHODS)}, not {self.fence_method!r}"
            )
        if self.unfenceable_writes not in UNFENCEABLE_WRITES:
            raise UsageError(
                f"unfenceable_writes must be one of {', '.join(UNFENCEABLE_WRITES)}, "
                f"not {self.unfenceable_writes!r}"
            )
        if self.fence_method == "reservation" and self.reservation_key is None:
            raise UsageError("fence_method = reservation needs a reservation_key")
        if self.alua_poll_interval <= 0:
            raise UsageError("alua_poll_interval must be above 0 seconds")
        if self.alua_transition_timeout < 0:
            raise UsageError("alua_transition_timeout must be 0 or more seconds")
        if self.max_io_bytes < 512:
            raise UsageError("max_io_bytes must be at least 512")
