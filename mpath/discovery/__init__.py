"""Finding the paths: iSCSI SendTargets discovery and local block devices.

Both halves end in the same place: a list of multipath devices, each a LUN identity
(its WWID, as :mod:`mpath.scsi.identity` spells it) and the paths that lead to it.
Paths are grouped by identity only, never by name or address: two paths whose
identities differ are two LUNs, and using them as one would corrupt data.

* :mod:`mpath.discovery.iscsi` — SendTargets on each portal, a login to every
  target portal found, REPORT LUNS, then each LUN's identity (``mpath discover``).
* :mod:`mpath.discovery.block` — block devices from udev/sysfs (pyudev): enumeration
  with their identities (:mod:`mpath.sysfs.identity`: ``ID_WWN``/``ID_SERIAL``,
  ``device/wwid``, a loop device's backing file), grouping and hot-plug watching. The
  block transport (:mod:`mpath.transports.block`) answers INQUIRY from that identity.
"""
