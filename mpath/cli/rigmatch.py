"""Which rig a command's paths belong to: faults act only on the rig carrying the I/O.

``bench --fault`` cuts a rig path while I/O runs over the command's paths. A fault on
another rig would leave the run untouched and print a failover test that never
happened, so the rig is taken from the paths themselves (an iscsi:// URL names the
target, and every rig's target name is its own), and a rig named by ``--rig`` or
``MPATH_RIG_NAME`` that the paths do not lead to is refused (exit 2), naming both.
Block paths do not name their target: their LUN's WWID is compared once the device
is open (:func:`check_rig_lun`).
"""

from __future__ import annotations

from collections.abc import Sequence

from mpath.errors import UsageError
from mpath.rig.manager import RigManager
from mpath.rig.model import Rig
from mpath.transports import is_block_path
from mpath.transports.urls import parse_iscsi_url


def _targets(paths: Sequence[str]) -> list[str]:
    """The target names of the iscsi:// paths, in order, once each."""
    seen: dict[str, None] = {}
    for path in paths:
        if not is_block_path(path):
            seen.setdefault(parse_iscsi_url(path).target, None)
    return list(seen)


def _rigs(manager: RigManager) -> list[Rig]:
    return [manager.load(name) for name in manager.names()]


def rig_of_paths(
    paths: Sequence[str],
    rig_name: str | None,
    *,
    what: str,
    manager: RigManager | None = None,
) -> Rig | None:
    """The rig the iscsi:// ``paths`` lead to, checked against ``rig_name`` if given.

    ``what`` names the option that needs the rig (``--fault``, ``--rig``) for the
    messages. Returns the named rig for block paths (checked later by WWID), the rig
    whose target the URLs name, or None when no rig is named and none serves them.
    Raises :class:`UsageError` (exit 2) when the named rig is not where the paths
    lead, or the paths lead to more than one target.
    """
    manager = manager or RigManager()
    targets = _targets(paths)
    if len(targets) > 1:
        listed = ", ".join(targets)
        raise UsageError(
            f"the paths lead to {len(targets)} targets ({listed}): {what} names one rig"
        )
    named = manager.load(rig_name) if rig_name else None
    if not targets:
        return named
    target = targets[0]
    owner = next((rig for rig in _rigs(manager) if rig.target.iqn == target), None)
    if named is not None and named.target.iqn != target:
        where = f"rig {owner.name!r}" if owner else "no rig on this host"
        raise UsageError(
            f"{what}: rig {named.name!r} is not the rig of the paths: they lead to {target} "
            f"({where}); give --rig {owner.name if owner else '...'} or no --rig"
        )
    return named or owner


def fault_rig(paths: Sequence[str], rig_name: str | None, fault_indexes: Sequence[int]) -> Rig:
    """The rig whose paths ``--fault`` acts on; each faulted path must carry this run's I/O."""
    rig = rig_of_paths(paths, rig_name, what="--fault")
    if rig is None:
        targets = _targets(paths)
        if targets:
            raise UsageError(
                f"--fault: the paths lead to {targets[0]}, which no rig on this host serves; "
                "faults act on a rig's paths ('mpath rig list')"
            )
        raise UsageError("--fault with block-device paths needs --rig NAME (the rig behind them)")
    given = {str(parse_iscsi_url(p)) for p in paths if not is_block_path(p)}
    for index in fault_indexes:
        url = rig.urls[rig.path(index).index - 1]
        if given and url not in given:
            raise UsageError(
                f"--fault on path {index}: rig {rig.name!r} path {index} ({url}) is not one of "
                "the paths given, so cutting it would not touch this run's I/O"
            )
    return rig


def check_rig_lun(rig: Rig, wwid: str, *, what: str) -> None:
    """Refuse a rig whose LUN is not the device's (block paths name no target)."""
    if rig.lun.wwid != wwid:
        raise UsageError(
            f"{what}: rig {rig.name!r} serves LUN {rig.lun.wwid}, but the paths lead to LUN {wwid}"
        )
