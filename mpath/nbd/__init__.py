"""NBD export of a multipath device: ``mpath serve`` (docs/nbd.md).

Programs outside Python reach the LUN through any NBD client (fio's ``nbd`` engine,
nbdcopy, nbdinfo, qemu-img, nbd-client) while mpath keeps choosing paths and failing
over underneath.
"""

from mpath.nbd.server import (
    BlockDevice,
    ListenAddress,
    NbdServer,
    ServeSettings,
    ServeStats,
    check_listen_policy,
)

__all__ = [
    "BlockDevice",
    "ListenAddress",
    "NbdServer",
    "ServeSettings",
    "ServeStats",
    "check_listen_policy",
]
