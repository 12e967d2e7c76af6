"""dm-multipath integration: the prioritizer callout and multipath.conf fragments.

* :mod:`mpath.dm.prio`: the priority scale, a pure function (``get_prio``);
* :mod:`mpath.dm.callout`: ``mpath prio DEVICE``, gathering measurements fast;
* :mod:`mpath.dm.store`: the measurement store read by ``prio``;
* :mod:`mpath.sysfs.tree` (shared, below the transports): block devices and iSCSI
  sessions as sysfs shows them;
* :mod:`mpath.dm.measure`: live measurements of iSCSI paths through the filter layer;
* :mod:`mpath.dm.fragment`: the ``multipath.conf`` fragment ``mpath dm-config`` prints;
* :mod:`mpath.dm.parser_check`: multipath-tools' own parser run on a fragment.

See docs/dm-multipath.md.
"""
