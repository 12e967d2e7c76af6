"""Transports (the patent's "miniport" drivers): they carry SCSI commands on one path.

Every transport implements :class:`mpath.transports.base.Transport`; the filter layer
above never sees libiscsi, file descriptors or errno values, only
:class:`~mpath.transports.base.ScsiResult` and :class:`~mpath.transports.base.TransportError`.

* :mod:`mpath.transports.iscsi` — ``iscsi://HOST[:PORT]/TARGET-IQN/LUN`` over libiscsi;
* :mod:`mpath.transports.block` — a block device node ``/dev/...`` (O_DIRECT I/O).

:func:`open_transport` picks one for a path as the command line gives it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mpath.config import Config
    from mpath.transports.base import Transport


def is_block_path(path: str) -> bool:
    """The path is a block device node (``/dev/...``), not a URL."""
    return path.startswith("/dev/")


def open_transport(path: str, *, config: Config | None = None) -> Transport:
    """The transport for ``path``: a block device node or an ``iscsi://`` URL.

    ``config`` supplies CHAP credentials for iSCSI logins (its ``[[chap]]`` entry for
    the URL's portal and target). Nothing is connected yet; a bad path raises
    :class:`~mpath.errors.UsageError`.
    """
    if is_block_path(path):
        from mpath.transports.block import BlockTransport

        return BlockTransport(path)
    from mpath.transports.iscsi import IscsiTransport

    if config is not None:
        from mpath.transports.urls import parse_iscsi_url

        address = parse_iscsi_url(path)
        chap = config.chap.credentials_for(address.portal, address.target)
        if chap is not None:
            return IscsiTransport(path, chap=chap)
    return IscsiTransport(path)
