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
    from mpath.config.chap import ChapCredentials
    from mpath.transports.base import Transport
    from mpath.transports.urls import IscsiUrl


def is_block_path(path: str) -> bool:
    """The path is a block device node (``/dev/...``), not a URL."""
    return path.startswith("/dev/")


def open_transport(
    path: str | IscsiUrl,
    *,
    config: Config | None = None,
    login_timeout: float | None = None,
    initiator_name: str | None = None,
    chap: ChapCredentials | None = None,
) -> Transport:
    """The transport for ``path``: a block device node or an ``iscsi://`` URL.

    The one place where mpath builds transports: the filter layer, the checkers,
    ``dm-config``'s measurements, discovery and ``serve`` all come through here, so a
    path gets the same credentials and settings whichever command uses it.

    ``config`` supplies CHAP credentials for iSCSI logins (its ``[[chap]]`` entry for
    the URL's portal and target) unless ``chap`` gives them directly.
    ``login_timeout`` and ``initiator_name`` default to the iSCSI transport's. Nothing
    is connected yet; a bad path raises :class:`~mpath.errors.UsageError`.
    """
    if isinstance(path, str) and is_block_path(path):
        from mpath.transports.block import BlockTransport

        return BlockTransport(path)
    from mpath.transports.iscsi import (
        DEFAULT_INITIATOR_NAME,
        DEFAULT_LOGIN_TIMEOUT,
        IscsiTransport,
    )
    from mpath.transports.urls import parse_iscsi_url

    address = path if not isinstance(path, str) else parse_iscsi_url(path)
    if chap is None and config is not None:
        chap = config.chap.credentials_for(address.portal, address.target)
    return IscsiTransport(
        path,
        initiator_name=initiator_name or DEFAULT_INITIATOR_NAME,
        login_timeout=login_timeout if login_timeout is not None else DEFAULT_LOGIN_TIMEOUT,
        chap=chap,
    )
