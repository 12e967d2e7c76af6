"""Bringing rigs up, changing their paths, and taking them down again.

``up`` reserves names and addresses under a lock, writes the state file *before* it
creates anything, and on any failure removes what it made through the same teardown
``down`` uses; so a failed or interrupted ``up`` never leaves half a rig behind, and
``down`` can always finish the job.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import json
import os
import re
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mpath.errors import RigError, RigNotFoundError, RigUsageError
from mpath.rig import firewall, network, shaping, throttle
from mpath.rig.backends import get_backend
from mpath.rig.model import (
    MAX_SUBNETS,
    PathFault,
    Rig,
    RigLUN,
    RigPath,
    RigPortal,
    RigTarget,
    RigTPG,
    subnet_addresses,
)
from mpath.rig.system import require_tools
from mpath.units import Rate, parse_rate

DEFAULT_STATE_ROOT = Path("/var/lib/mpath/rigs")
DEFAULT_NAME = "mpath"
DEFAULT_SIZE = 1024**3
MAX_PATHS = 32
#: tgtd management ports are CONTROL_PORT_BASE + rig slot.
CONTROL_PORT_BASE = 30000
IQN_PREFIX = "iqn.2026-11.org.mpath:rig."
LUN_NUMBER = 1  # tgt reserves LUN 0 for its controller device
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")

FAULT_ACTIONS = (
    "down", "up", "drop", "clear", "rate", "hold", "release", "alua", "loss", "reset", "delay",
)  # fmt: skip
#: Faults that act on the whole target (``rig fault target ACTION``).
TARGET_ACTIONS = ("restart", "slow", "fast")
#: Why ``delay`` is refused: the one place that says it, for the CLI and the docs.
NO_DELAY_REASON = (
    "'delay' is not available: this kernel has no netem, no fq qdisc (whose departure "
    "times a BPF program could set) and no nftables queue, so nothing can hold each "
    "packet for a fixed time; 'rate' (a slow link: delay that grows with the load) and "
    "'loss' (retransmission delays) are the ways to make a path slow"
)


def state_root() -> Path:
    """Where rigs keep their state (``$MPATH_RIG_DIR`` or /var/lib/mpath/rigs)."""
    return Path(os.environ.get("MPATH_RIG_DIR", str(DEFAULT_STATE_ROOT)))


def validate_name(name: str) -> str:
    if not _NAME_RE.match(name):
        raise RigUsageError(
            f"bad rig name {name!r}: use 1-32 lower-case letters, digits, '-' or '_'"
        )
    return name


def parse_rates(text: str | None, paths: int) -> list[Rate | None]:
    """``--rate`` text → one rate (or None: unlimited) per path.

    One value applies to every path; otherwise there must be one per path. ``0``,
    ``none`` or an empty item leaves that path unlimited.
    """
    if text is None:
        return [None] * paths
    items = [item.strip() for item in text.split(",")]
    if len(items) == 1:
        items = items * paths
    if len(items) != paths:
        raise RigUsageError(f"--rate has {len(items)} values for {paths} paths: give 1 or {paths}")
    return [
        None if item.lower() in ("", "0", "none", "unlimited") else parse_rate(item)
        for item in items
    ]


def require_root() -> None:
    if os.geteuid() != 0:
        raise RigUsageError(
            "mpath rig needs root: it creates network namespaces, veth pairs and a target"
        )


@dataclass(frozen=True, slots=True)
class PathStatus:
    """Live view of one path for ``rig status``."""

    path: RigPath
    url: str
    link_up: bool

    def describe(self) -> dict[str, Any]:
        return {
            "index": self.path.index,
            "url": self.url,
            "portal": f"{self.path.target_ip}:3260",
            "host_address": self.path.host_ip,
            "host_interface": self.path.host_if,
            "link": "up" if self.link_up else "down",
            "fault": self.path.fault.value,
            "rate": None if self.path.current_rate is None else str(self.path.current_rate),
            "alua": self.path.alua_state,
            "loss_pct": self.path.loss_pct,
        }


class RigManager:
    """Creates, inspects, faults and removes rigs recorded under ``root``."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = root if root is not None else state_root()

    # -- state files ---------------------------------------------------------------------

    def _state_file(self, name: str) -> Path:
        return self.root / name / "state.json"

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        with (self.root / ".lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    @contextlib.contextmanager
    def _rig_locked(self, name: str) -> Iterator[None]:
        """Serialise changes to one rig (faults, teardown) without blocking other rigs.

        The lock is an flock on the rig's state folder; a missing folder means there
        is no such rig.
        """
        try:
            fd = os.open(self.root / name, os.O_RDONLY | os.O_DIRECTORY)
        except FileNotFoundError:
            raise RigNotFoundError(name) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _save(self, rig: Rig) -> None:
        path = self._state_file(rig.name)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(rig.to_state(), indent=2) + "\n")
        tmp.replace(path)

    def load(self, name: str) -> Rig:
        validate_name(name)
        try:
            doc = json.loads(self._state_file(name).read_text())
        except FileNotFoundError:
            raise RigNotFoundError(name) from None
        except (OSError, ValueError) as exc:
            raise RigError(f"rig {name!r}: unreadable state file: {exc}") from exc
        return Rig.from_state(doc)

    def names(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.parent.name for p in self.root.glob("*/state.json"))

    # -- up --------------------------------------------------------------------------------

    def up(
        self,
        *,
        name: str = DEFAULT_NAME,
        paths: int = 2,
        size: int = DEFAULT_SIZE,
        rates: list[Rate | None] | None = None,
        backend: str = "tgt",
    ) -> Rig:
        validate_name(name)
        if not 1 <= paths <= MAX_PATHS:
            raise RigUsageError(f"--paths must be between 1 and {MAX_PATHS}, not {paths}")
        if size < 1024 * 1024 or size % 512:
            raise RigUsageError("--size must be at least 1M and a multiple of 512 bytes")
        rates = rates if rates is not None else [None] * paths
        if len(rates) != paths:
            raise RigUsageError(f"{len(rates)} rates given for {paths} paths")
        target_backend = get_backend(backend)
        require_root()
        require_tools("ip", "tc", "nft")
        target_backend.check_available()

        with self._locked():
            if self._state_file(name).exists():
                raise RigError(
                    f"rig {name!r} already exists (remove it with 'mpath rig down --name {name}')"
                )
            rig = self._reserve(name, paths, size, rates, backend)
        with self._rig_locked(name):
            try:
                self._build(rig)
            except BaseException:
                with contextlib.suppress(Exception):
                    self._teardown(rig)
                raise
        return rig

    def _reserve(
        self, name: str, paths: int, size: int, rates: list[Rate | None], backend: str
    ) -> Rig:
        """Pick slot, subnets and identity; write the state file. Caller holds the lock."""
        others = []
        for other in self.names():
            with contextlib.suppress(RigNotFoundError):  # being removed right now
                others.append(self.load(other))
        used_ports = {r.control_port for r in others}
        slot = next(s for s in range(1, 10_000) if CONTROL_PORT_BASE + s not in used_ports)
        used_subnets = {p.subnet for r in others for p in r.paths} | network.host_subnets_in_use()
        free = [s for s in range(1, MAX_SUBNETS) if s not in used_subnets]
        if len(free) < paths:
            raise RigError(f"only {len(free)} free /24 subnets left in 198.18.0.0/15")
        namespace = f"mpath-rig-{name}"
        if network.namespace_exists(namespace):
            raise RigError(
                f"network namespace {namespace} exists but no rig state records it; "
                f"remove it with 'ip netns del {namespace}' if it is a leftover"
            )
        rig_paths = [
            RigPath(
                index=i + 1,
                subnet=subnet,
                host_if=f"mpr{subnet}",
                target_if=f"path{i + 1}",
                rate=rate,
                current_rate=rate,
            )
            for i, (subnet, rate) in enumerate(zip(free[:paths], rates, strict=True))
        ]
        for path in rig_paths:
            if network.link_exists(path.host_if):
                raise RigError(f"host interface {path.host_if} already exists; not touching it")
        state_dir = self.root / name
        lun = RigLUN(
            number=LUN_NUMBER,
            backing_file=str(state_dir / "lun.img"),
            size_bytes=size,
            serial="MPATH" + secrets.token_hex(6).upper(),
            # NAA IEEE Registered Extended: first hex digit 6, then 31 random hex digits.
            designator="6" + secrets.token_hex(16)[1:],
        )
        target = RigTarget(
            iqn=IQN_PREFIX + name,
            tpgs=(
                RigTPG(
                    tag=1,
                    luns=(lun,),
                    portals=tuple(RigPortal(subnet_addresses(p.subnet)[1]) for p in rig_paths),
                ),
            ),
        )
        rig = Rig(
            name=name,
            backend=backend,
            namespace=namespace,
            state_dir=str(state_dir),
            control_port=CONTROL_PORT_BASE + slot,
            target=target,
            paths=rig_paths,
        )
        state_dir.mkdir(parents=True, exist_ok=True)
        self._save(rig)
        return rig

    def _build(self, rig: Rig) -> None:
        with open(rig.lun.backing_file, "wb") as backing:
            backing.truncate(rig.lun.size_bytes)
        network.create_namespace(rig.namespace)
        for path in rig.paths:
            network.create_path_link(rig.namespace, path)
            network.wait_carrier(rig.namespace, path)
            if path.rate is not None:
                shaping.set_path_rate(rig.namespace, path, path.rate)
        firewall.create_table(rig.namespace)
        rig.daemon_pid = get_backend(rig.backend).start(rig)
        self._save(rig)

    # -- status / fault ----------------------------------------------------------------------

    def status(self, name: str) -> tuple[Rig, list[PathStatus]]:
        require_root()
        rig = self.load(name)
        return rig, [
            PathStatus(path, url, network.link_is_up(rig.namespace, path.target_if))
            for path, url in zip(rig.paths, rig.urls, strict=True)
        ]

    def fault(
        self,
        name: str,
        index: int,
        action: str,
        rate: Rate | None = None,
        alua_state: str | None = None,
        loss_pct: int | None = None,
    ) -> RigPath:
        """Apply ``action`` to path ``index`` of rig ``name``.

        ``down``/``up`` take the link down and back; ``drop`` throws every packet away
        (nftables) until ``clear``; ``loss`` throws ``loss_pct`` % of them away at
        random (0 stops it); ``reset`` aborts the target's connections on the path with
        a TCP reset; ``rate`` changes the speed; ``hold`` keeps every packet sent either
        way, in order, until ``release`` (or ``clear``) delivers them all; ``alua``
        (lio) sets the path's target port group's ALUA state. ``clear`` undoes every
        fault but ALUA. No change drops a packet that a hold keeps.
        """
        if action == "alua":
            return self._set_alua(name, index, alua_state)
        if action == "delay":
            raise RigUsageError(NO_DELAY_REASON)
        if action not in FAULT_ACTIONS:
            raise RigUsageError(
                f"unknown fault {action!r}: choose one of {', '.join(FAULT_ACTIONS)}"
            )
        if (action == "rate") != (rate is not None):
            raise RigUsageError("'rate' takes a RATE (e.g. 'rate 100mbit'); other faults take none")
        if (action == "loss") != (loss_pct is not None):
            raise RigUsageError("'loss' takes a percentage (e.g. 'loss 5'); other faults take none")
        if loss_pct is not None and not 0 <= loss_pct <= 100:
            raise RigUsageError(f"loss percentage must be 0..100, not {loss_pct}")
        require_root()
        validate_name(name)
        with self._rig_locked(name):
            rig = self.load(name)
            path = rig.path(index)
            ns = rig.namespace
            if action in ("down", "clear") or (action == "up"):
                down = action == "down"
                network.set_link(ns, path.target_if, up=not down)
                if not down:
                    network.wait_carrier(ns, path)
                path.link_down = down
            if action in ("drop", "clear"):
                drop = action == "drop"
                firewall.set_drop(ns, path.target_if, drop)
                if not drop:
                    network.wait_carrier(ns, path)  # also forgets failed neighbours
                path.dropping = drop
            if action in ("loss", "clear") and (action == "loss" or path.loss_pct):
                path.loss_pct = loss_pct or 0
                firewall.set_loss(ns, path.target_if, path.loss_pct)
            if action == "reset":
                network.reset_connections(ns, path)
            if action == "hold":
                shaping.hold_path(ns, path)
                path.held = True
            if action in ("release", "clear") and path.held:
                new_rate = path.rate if action == "clear" else path.current_rate
                shaping.release_path(ns, path, new_rate)
                path.held = False
                path.current_rate = new_rate
            if action in ("rate", "clear"):
                new_rate = rate if action == "rate" else path.rate
                if not path.held:  # a held path takes its new speed when released
                    shaping.set_path_rate(ns, path, new_rate)
                path.current_rate = new_rate
            self._save(rig)
            return path

    def _set_alua(self, name: str, index: int, state: str | None) -> RigPath:
        """Put path ``index``'s target port group in ALUA ``state`` (lio backend only)."""
        if state is None:
            raise RigUsageError("'alua' takes a STATE (e.g. 'alua standby')")
        require_root()
        validate_name(name)
        with self._rig_locked(name):
            rig = self.load(name)
            path = rig.path(index)
            backend = get_backend(rig.backend)
            set_alua = getattr(backend, "set_alua", None)
            if set_alua is None:
                raise RigUsageError(
                    f"rig {name!r} uses the {rig.backend} backend, which has no ALUA: "
                    "build it with --backend lio"
                )
            set_alua(rig, path, state)
            self._save(rig)
            return path

    # -- whole-target faults -----------------------------------------------------------------

    def target_fault(self, name: str, action: str) -> Rig:
        """Apply ``action`` to the whole target of rig ``name``.

        ``restart`` kills the target and serves the same LUN again (every path goes
        away at once); ``slow`` holds the target daemon to a CPU quota, so it stalls on
        every path at once for up to about a second at a time and then catches up;
        ``fast`` ends that. A restarted daemon stays slow if the target was.
        """
        if action not in TARGET_ACTIONS:
            raise RigUsageError(
                f"unknown target fault {action!r}: choose one of {', '.join(TARGET_ACTIONS)}"
            )
        require_root()
        validate_name(name)
        with self._rig_locked(name):
            rig = self.load(name)
            backend = get_backend(rig.backend)
            if action == "restart":
                rig.daemon_pid = backend.restart(rig)
                if rig.slow_origin is not None and rig.daemon_pid is not None:
                    throttle.slow(rig.name, rig.daemon_pid)
            elif action == "slow":
                if rig.daemon_pid is None:
                    raise RigUsageError(
                        f"rig {name!r} uses the {rig.backend} backend, which runs in the "
                        "kernel: 'target slow' needs a target process (use --backend tgt)"
                    )
                origin = throttle.slow(rig.name, rig.daemon_pid)
                rig.slow_origin = rig.slow_origin or origin
            else:
                throttle.fast(rig.name, rig.slow_origin)
                rig.slow_origin = None
            self._save(rig)
            return rig

    def resize_lun(self, name: str, size: int) -> Rig:
        """Grow rig ``name``'s LUN to ``size`` bytes while it is served.

        The backing file grows first (sparse; the data stays), then the target serves
        the new size; initiators learn it from READ CAPACITY, as after an array-side
        resize. Shrinking is refused: it would cut away data that was acknowledged.
        """
        require_root()
        validate_name(name)
        if size % 512:
            raise RigUsageError(f"LUN size must be a multiple of 512 bytes, not {size}")
        with self._rig_locked(name):
            rig = self.load(name)
            if size < rig.lun.size_bytes:
                raise RigUsageError(
                    f"'lun resize' only grows a LUN: {size} bytes is less than the "
                    f"{rig.lun.size_bytes} it has (shrinking would lose acknowledged data)"
                )
            backend = get_backend(rig.backend)
            old = rig.lun.size_bytes
            rig.resize_lun(size)
            with open(rig.lun.backing_file, "r+b") as backing:
                backing.truncate(size)
            try:
                backend.resize(rig)
            except BaseException:
                rig.resize_lun(old)
                with open(rig.lun.backing_file, "r+b") as backing:
                    backing.truncate(old)  # only the grown, never-served tail goes
                raise
            self._save(rig)
            return rig

    # -- down --------------------------------------------------------------------------------

    def down(self, name: str) -> bool:
        """Remove rig ``name``; False if there was nothing to remove."""
        validate_name(name)
        require_root()
        try:
            with self._rig_locked(name):
                try:
                    rig = self.load(name)
                except RigNotFoundError:
                    return False
                self._teardown(rig)
                return True
        except RigNotFoundError:
            return False

    def _teardown(self, rig: Rig) -> None:
        errors: list[str] = []
        steps: list[Callable[[], None]] = [
            lambda: throttle.fast(rig.name, rig.slow_origin),
            lambda: get_backend(rig.backend).stop(rig),
            *[functools.partial(network.delete_host_link, p.host_if) for p in rig.paths],
            lambda: network.delete_namespace(rig.namespace),
        ]
        for step in steps:
            try:
                step()
            except Exception as exc:  # keep going: remove as much as possible
                errors.append(str(exc))
        if errors:
            raise RigError(f"rig {rig.name!r} not fully removed: {'; '.join(errors)}")
        state_dir = Path(rig.state_dir)
        for leftover in ("lun.img", "tgtd.log", "tgtd.pid", "state.tmp", "state.json"):
            (state_dir / leftover).unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            state_dir.rmdir()


__all__ = [
    "FAULT_ACTIONS", "NO_DELAY_REASON", "TARGET_ACTIONS", "PathFault", "RigManager", "parse_rates",
]  # fmt: skip
