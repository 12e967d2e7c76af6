"""The filter layer: one multipath device over several paths to one LUN.

It picks a path for every command through a selector, keeps the LUN's cap on
outstanding commands, notices failed paths (errors and stalls reported by the
transports), tears their sessions down, reissues their commands on other paths, and
brings paths back when they log in again. See docs/filter.md.
"""

from mpath.filter.device import MultipathDevice
from mpath.settings import DeviceSettings

__all__ = ["DeviceSettings", "MultipathDevice"]
