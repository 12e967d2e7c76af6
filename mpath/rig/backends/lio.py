"""The ``lio`` backend: the kernel's LIO target driven through rtslib-fb.

It builds rtslib's object graph: one FileIO backstore, one iSCSI target, and per path
one target portal group (TPG tag = path index) with one network portal and a LUN that
maps the backstore. Each path is thus its own SCSI target port, as on an array with one
port per controller, and each port is in its own ALUA target port group (``path1``,
``path2``, ...; group id = path index), so ``rig fault N alua STATE`` changes what the
initiator sees on that path alone. The rig's model still shows one TPG with all the
portals: the per-path TPGs are how LIO expresses "one port per path".

LIO lives in the kernel, so the portals must be created from inside the rig's
namespace: the kernel opens a portal's listening socket in the network namespace of the
task that writes the portal into configfs. A short-lived thread enters the namespace
(setns) for that one write; the rest of the process stays where it was. (``ip netns
exec`` would also remount /sys and so hide configfs.)

It needs configfs and the target modules (``target_core_mod``, ``target_core_file``,
``iscsi_target_mod``); rtslib-fb loads them and mounts configfs when it can. Where the
kernel has no LIO the backend fails at once, before anything is created.
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import functools
import os
import threading
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from mpath.errors import BackendUnavailableError, RigError, RigUsageError
from mpath.rig.model import Rig, RigPath

CONFIGFS_TARGET = Path("/sys/kernel/config/target")
NETNS_DIR = Path("/run/netns")
CLONE_NEWNET = 0x40000000
VENDOR_ID = "MPATH"
PRODUCT_ID = "RIG-LUN"
#: LIO's IEEE company id, the first six hex digits of every NAA designator it makes.
LIO_COMPANY_ID = "001405"

#: ALUA asymmetric access states (SPC-4 table 'ASYMMETRIC ACCESS STATE'), by the names
#: ``rig fault N alua STATE`` takes.
ALUA_STATES = {
    "active-optimized": 0,
    "active-nonoptimized": 1,
    "standby": 2,
    "unavailable": 3,
    "transitioning": 15,
}
#: ALUA access type "implicit": the target changes states itself (here: on the rig's
#: command), and initiators learn them from REPORT TARGET PORT GROUPS and sense data.
ALUA_IMPLICIT = 1


def _writable_dbroot(directory: Path) -> None:
    """Point LIO's dbroot at ``directory`` unless the current one can take PR state.

    LIO writes ``<dbroot>/pr/aptpl_<serial>`` at every PERSISTENT RESERVE OUT that
    changes a registration, even without APTPL, and fails the command with LOGICAL
    UNIT COMMUNICATION FAILURE when it cannot. rtslib points dbroot at /etc/target,
    read-only in the lab VM. The kernel takes a new dbroot only while no device is
    registered; when it refuses, the current one stays (and PR commands may fail).
    """
    dbroot = CONFIGFS_TARGET / "dbroot"
    try:
        current = Path(dbroot.read_text().strip())
    except OSError:
        return
    if os.access(current / "pr", os.W_OK):
        return
    (directory / "pr").mkdir(parents=True, exist_ok=True)
    try:
        dbroot.write_text(f"{directory}\n")
    except OSError as exc:
        warnings.warn(f"lio: dbroot stays {current} ({exc})", stacklevel=2)


@contextlib.contextmanager
def _rtslib() -> Iterator[Any]:
    """rtslib-fb, with its errors turned into RigError and its dbroot warning silenced.

    rtslib warns when it cannot move LIO's saved-configuration folder; the rig never
    saves a configuration, so the warning says nothing useful.
    """
    try:
        import rtslib_fb
    except ImportError as exc:  # pragma: no cover - a dependency of the package
        raise BackendUnavailableError("lio", f"rtslib-fb cannot be imported ({exc})") from exc
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Cannot set dbroot")
        try:
            yield rtslib_fb
        except rtslib_fb.RTSLibError as exc:
            raise RigError(f"lio: {exc}") from exc


class LioBackend:
    name = "lio"

    def check_available(self) -> None:
        if not CONFIGFS_TARGET.is_dir():
            # RTSRoot loads configfs and target_core_mod and mounts configfs if it can.
            with contextlib.suppress(Exception), _rtslib() as rts:
                rts.RTSRoot()
        if not CONFIGFS_TARGET.is_dir():
            raise BackendUnavailableError(
                "lio",
                f"the kernel target is not present ({CONFIGFS_TARGET} is missing and "
                "loading target_core_mod did not create it: this kernel lacks configfs or "
                "LIO); use --backend tgt",
            )

    def start(self, rig: Rig) -> None:
        lun = rig.lun
        _writable_dbroot(Path(rig.state_dir).parent / "lio-dbroot")
        with _rtslib() as rts:
            storage = rts.FileIOStorageObject(
                _storage_name(rig), lun.backing_file, size=lun.size_bytes, wwn=lun.serial
            )
            _set_inquiry_identity(Path(storage.path))
            # LIO makes the NAA designator from the unit serial; record the one it made,
            # so the rig's WWID is what initiators read.
            actual = lio_naa_designator(lun.serial)
            if actual != lun.designator:
                new_lun = dataclasses.replace(lun, designator=actual)
                tpg0 = dataclasses.replace(rig.target.tpgs[0], luns=(new_lun,))
                rig.target = dataclasses.replace(rig.target, tpgs=(tpg0, *rig.target.tpgs[1:]))
            target = rts.Target(rts.FabricModule("iscsi"), rig.target.iqn, mode="create")
            for path in rig.paths:
                tpg = rts.TPG(target, path.index, mode="create")
                tpg.set_attribute("authentication", "0")
                tpg.set_attribute("generate_node_acls", "1")
                # Keep a demo-mode ACL when its last session ends: persistent-reservation
                # registrations point at it, and a new one would not find them.
                tpg.set_attribute("cache_dynamic_acls", "1")
                tpg.set_attribute("demo_mode_write_protect", "0")
                mapped = rts.LUN(tpg, lun.number, storage)
                group = rts.ALUATargetPortGroup(storage, _group_name(path), path.index)
                group.alua_access_type = ALUA_IMPLICIT
                mapped.alua_tg_pt_gp_name = _group_name(path)
                if mapped.alua_tg_pt_gp_name != _group_name(path):
                    raise RigError(f"lio: cannot put path {path.index} in its ALUA group")
                path.alua_state = "active-optimized"
                portal = rig.portals[path.index - 1]
                in_network_namespace(
                    rig.namespace,
                    functools.partial(rts.NetworkPortal, tpg, portal.ip, portal.port),
                )
                tpg.enable = True

    def set_alua(self, rig: Rig, path: RigPath, state: str) -> None:
        """Put ``path``'s target port group in ALUA ``state`` (see ALUA_STATES)."""
        if state not in ALUA_STATES:
            raise RigUsageError(
                f"unknown ALUA state {state!r}: choose one of {', '.join(ALUA_STATES)}"
            )
        with _rtslib() as rts:
            storage = rts.FileIOStorageObject(_storage_name(rig))
            group = rts.ALUATargetPortGroup(storage, _group_name(path))
            group.alua_access_state = ALUA_STATES[state]
        path.alua_state = state

    def restart(self, rig: Rig) -> None:
        """Delete the target and build it again: every session ends at once.

        The kernel target has no process to kill; deleting it closes every connection,
        as a controller reboot does. The backstore's file stays, so the data and the
        identity are the same; the ALUA groups come back active-optimized.
        """
        self.stop(rig)
        self.start(rig)

    def resize(self, rig: Rig) -> None:
        raise RigUsageError(
            "the lio backend cannot resize its LUN: LIO fixes a fileio backstore's size "
            "when it is enabled; use a tgt rig for 'lun resize'"
        )

    def stop(self, rig: Rig) -> None:
        if not CONFIGFS_TARGET.is_dir():
            return
        with _rtslib() as rts:
            with contextlib.suppress(rts.RTSLibError):
                # Deleting the target closes its sessions and its portals' sockets,
                # which must go before the namespace they live in.
                rts.Target(rts.FabricModule("iscsi"), rig.target.iqn, mode="lookup").delete()
            with contextlib.suppress(rts.RTSLibError):
                rts.FileIOStorageObject(_storage_name(rig)).delete()


def lio_naa_designator(serial: str) -> str:
    """The NAA designator (32 hex digits) LIO derives from a unit serial number.

    NAA 6 (IEEE Registered Extended), LIO's company id, then the first 25 hex digits
    found in the serial (other characters skipped), zero-padded: the kernel's
    ``spc_gen_naa_6h_vendor_specific``.
    """
    digits = "".join(c for c in serial.lower() if c in "0123456789abcdef")[:25]
    return "6" + LIO_COMPANY_ID + digits.ljust(25, "0")


def _set_inquiry_identity(storage_path: Path) -> None:
    """Give the LUN the rig's vendor and product, as the tgt backend does."""
    for name, value in (("vendor_id", VENDOR_ID), ("product_id", PRODUCT_ID)):
        attribute = storage_path / "wwn" / name
        if attribute.exists():  # older kernels fix them to LIO-ORG / the backstore type
            attribute.write_text(value)


def _storage_name(rig: Rig) -> str:
    return f"mpath_rig_{rig.name}"


def _group_name(path: RigPath) -> str:
    return f"path{path.index}"


def in_network_namespace(namespace: str, action: Callable[[], object]) -> None:
    """Run ``action`` in a thread that has entered network namespace ``namespace``.

    setns(CLONE_NEWNET) changes the calling thread only, so the thread is a fresh one
    that ends with the action; the caller's namespace never changes.
    """
    errors: list[BaseException] = []

    def enter_and_run() -> None:
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            with open(NETNS_DIR / namespace) as ns:
                if libc.setns(ns.fileno(), CLONE_NEWNET) != 0:
                    err = ctypes.get_errno()
                    raise RigError(f"cannot enter namespace {namespace}: {os.strerror(err)}")
            action()
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=enter_and_run, name=f"netns-{namespace}")
    thread.start()
    thread.join()
    if errors:
        raise errors[0]
