"""mpath: a SCSI/iSCSI multipath path selector.

A filter layer sits over several paths to one logical unit, chooses a path for each
I/O (static quota, dynamic share by measured speed, or a peer's policy), and reroutes
I/O when a path fails so that the caller sees no error.
"""

__version__ = "0.1.0"
