"""The DEVICE of ``mpath prio`` and the PATHs of ``mpath dm-config``, made safe.

multipathd's old callout substituted ``%n`` (the kernel name, ``sdb``) or ``%d``
(``MAJ:MIN``); administrators type ``/dev/sdb`` or a ``/dev/disk/by-path`` link; mpath
paths are ``iscsi://`` URLs. Every form becomes one :class:`DeviceRef` with a canonical
key (the store's key), and anything else is refused with a UsageError *before* it is
used in a file name: no shell is ever involved, and a name cannot climb out of
``/dev`` or ``/sys``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from mpath.errors import UsageError
from mpath.sysfs.tree import Sysfs, parse_devnum, valid_block_name
from mpath.transports.urls import IscsiUrl, parse_iscsi_url

MAX_DEVICE_TEXT = 4096
DEV = Path("/dev")


@dataclass(frozen=True, slots=True)
class DeviceRef:
    """A path named by the user, resolved: an iSCSI URL or a kernel block device.

    ``key`` is the canonical URL or the kernel name (``sdb``); ``url`` is set for iSCSI.
    """

    key: str
    url: IscsiUrl | None = None

    @property
    def is_iscsi(self) -> bool:
        return self.url is not None


def parse_device(text: str, sysfs: Sysfs) -> DeviceRef:
    """Resolve ``text`` (URL, ``/dev/...``, ``sdb`` or ``MAJ:MIN``); UsageError if bad.

    ``MAJ:MIN`` is looked up in ``sysfs``; the other block forms are not required to
    exist (the caller decides what a missing device means).
    """
    if not isinstance(text, str) or not text or len(text) > MAX_DEVICE_TEXT or "\0" in text:
        raise UsageError("bad device name: empty, too long or containing NUL")
    if text.startswith("iscsi://"):
        url = parse_iscsi_url(text)
        return DeviceRef(str(url), url)
    devnum = parse_devnum(text)
    if devnum is not None:
        name = sysfs.name_of_devnum(*devnum)
        if name is None:
            raise UsageError(f"no block device has number {text}")
        return DeviceRef(name)
    if text.startswith("/"):
        resolved = Path(os.path.realpath(text))
        if resolved.parent != DEV or not valid_block_name(resolved.name):
            raise UsageError(f"{text!r} is not a block device node under /dev")
        return DeviceRef(resolved.name)
    if valid_block_name(text):
        return DeviceRef(text)
    raise UsageError(
        f"bad device {text!r}: expected iscsi://HOST[:PORT]/IQN/LUN, /dev/NAME, NAME or MAJ:MIN"
    )
