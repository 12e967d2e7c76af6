"""The ``lio`` backend: the kernel's LIO target driven through rtslib-fb.

It builds rtslib's object graph (FileIO backstore → iSCSI target → TPG → LUN → one
network portal per path). LIO lives in the kernel, so the portals must be created from
a process inside the rig's namespace: the kernel opens a portal's listening socket in
the network namespace of the process that writes the portal into configfs. The rig
therefore runs this module as a small program under ``ip netns exec`` for that step.

It needs configfs mounted at /sys/kernel/config with the target modules loaded
(``target_core_mod``, ``iscsi_target_mod``); where they are missing the backend fails
at once, before anything is created.
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import Any

from mpath.errors import BackendUnavailableError, RigError
from mpath.rig.model import Rig
from mpath.rig.system import in_namespace, run

CONFIGFS_TARGET = Path("/sys/kernel/config/target")


def _rtslib() -> Any:
    try:
        import rtslib_fb
    except ImportError as exc:  # pragma: no cover - a dependency of the package
        raise BackendUnavailableError("lio", f"rtslib-fb cannot be imported ({exc})") from exc
    return rtslib_fb


class LioBackend:
    name = "lio"

    def check_available(self) -> None:
        if not CONFIGFS_TARGET.is_dir():
            raise BackendUnavailableError(
                "lio",
                f"the kernel target is not present ({CONFIGFS_TARGET} is missing: this host "
                "lacks configfs or the target_core_mod/iscsi_target_mod modules); "
                "use --backend tgt",
            )
        _rtslib()

    def start(self, rig: Rig) -> None:
        rts = _rtslib()
        lun = rig.lun
        try:
            storage = rts.FileIOStorageObject(
                _storage_name(rig), lun.backing_file, size=lun.size_bytes, wwn=_wwn(lun.serial)
            )
            target = rts.Target(rts.FabricModule("iscsi"), rig.target.iqn, mode="create")
            tpg = rts.TPG(target, 1, mode="create")
            tpg.set_attribute("authentication", "0")
            tpg.set_attribute("generate_node_acls", "1")
            tpg.set_attribute("demo_mode_write_protect", "0")
            rts.LUN(tpg, lun.number, storage)
        except rts.RTSLibError as exc:
            raise RigError(f"lio: {exc}") from exc
        for portal in rig.portals:
            run(
                in_namespace(
                    rig.namespace,
                    [sys.executable, "-m", __name__, rig.target.iqn, portal.ip, str(portal.port)],
                )
            )
        tpg.enable = True

    def stop(self, rig: Rig) -> None:
        if not CONFIGFS_TARGET.is_dir():
            return
        rts = _rtslib()
        try:
            target = rts.Target(rts.FabricModule("iscsi"), rig.target.iqn, mode="lookup")
            target.delete()
        except rts.RTSLibError:
            pass
        with contextlib.suppress(rts.RTSLibError):
            rts.FileIOStorageObject(_storage_name(rig)).delete()


def _storage_name(rig: Rig) -> str:
    return f"mpath_rig_{rig.name}"


def _wwn(serial: str) -> str:
    # LIO derives the unit serial (VPD 0x80) and the NAA designator from the wwn.
    return serial.lower()


def _create_portal(iqn: str, ip: str, port: int) -> None:
    rts = _rtslib()
    target = rts.Target(rts.FabricModule("iscsi"), iqn, mode="lookup")
    tpg = rts.TPG(target, 1, mode="lookup")
    rts.NetworkPortal(tpg, ip, port, mode="create")


if __name__ == "__main__":  # run by the rig inside its namespace; see module docstring
    _create_portal(sys.argv[1], sys.argv[2], int(sys.argv[3]))
