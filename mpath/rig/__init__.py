"""The test rig: a real iSCSI target whose paths' speed and health are controllable.

The target runs inside a network namespace the rig creates; each path is one veth pair
and one /24 of 198.18.0.0/15, so a path can be slowed (tc tbf), cut (link down) or
black-holed (nftables drop inside the namespace) without touching the others or the
host's own network. See docs/rig.md.
"""

from mpath.rig.manager import RigManager
from mpath.rig.model import PathFault, Rig, RigLUN, RigPath, RigPortal, RigTarget, RigTPG

__all__ = [
    "PathFault",
    "Rig",
    "RigLUN",
    "RigManager",
    "RigPath",
    "RigPortal",
    "RigTPG",
    "RigTarget",
]
