"""The kernel's view of block devices, read from sysfs and udev.

* :mod:`mpath.sysfs.tree` — the one sysfs reader, and a sysfs tree's block devices
  and iSCSI sessions (``mpath prio``, ``mpath dm-config``);
* :mod:`mpath.sysfs.identity` — who a block device is (WWID from udev, sysfs or a loop
  device's backing file), the identity the block transport answers INQUIRY with.

It sits below the transports and the filter layer and imports neither: the block
transport, discovery and the dm tools all read the kernel through it.
"""
