"""NBD export of a multipath device: ``mpath serve`` (docs/nbd.md).

Programs outside Python reach the LUN through any NBD client (fio's ``nbd`` engine,
nbdcopy, nbdinfo, qemu-img, nbd-client) while mpath keeps choosing paths and failing
over underneath. One server may serve many LUNs, each a named export
(:mod:`~mpath.nbd.exports`; ``mpath daemon`` serves one per map). The server is split
by job: :mod:`~mpath.nbd.protocol`, :mod:`~mpath.nbd.listen`, :mod:`~mpath.nbd.limits`,
:mod:`~mpath.nbd.byteio`, :mod:`~mpath.nbd.exports`, :mod:`~mpath.nbd.connection` and
:mod:`~mpath.nbd.server` (the lifecycle).
"""

from mpath.nbd.exports import Export, Exports
from mpath.nbd.listen import DEFAULT_PORT, ListenAddress, check_listen_policy
from mpath.nbd.server import NbdServer
from mpath.nbd.settings import BlockDevice, ServeSettings, ServeStats

__all__ = [
    "DEFAULT_PORT",
    "BlockDevice",
    "Export",
    "Exports",
    "ListenAddress",
    "NbdServer",
    "ServeSettings",
    "ServeStats",
    "check_listen_policy",
]
