"""``mpath daemon``: multipath as a long-running service (docs/daemon.md).

A thin layer over the library: every LUN it owns is a
:class:`~mpath.filter.device.MultipathDevice` opened by :func:`mpath.api.open_device`
and exported by :class:`~mpath.nbd.NbdServer`. On top it adds only what a service
needs: a control socket (:mod:`~mpath.daemon.control`, spoken by ``mpath ctl``),
Prometheus metrics (:mod:`~mpath.daemon.metrics`), reloads that leave unchanged LUNs
alone (:mod:`~mpath.daemon.service`), persistent names (:mod:`~mpath.daemon.bindings`),
paths held out of use by the administrator (:mod:`~mpath.daemon.holds`) and systemd's
notify protocol (:mod:`~mpath.daemon.notify`). :mod:`~mpath.daemon.run` ties them to
signals.
"""

from mpath.daemon.config import DaemonConfig, MapSpec, load_daemon_config
from mpath.daemon.service import Daemon, DaemonMap

__all__ = ["Daemon", "DaemonConfig", "DaemonMap", "MapSpec", "load_daemon_config"]
