"""The lab: a qemu VM with a full Linux storage stack, for tests the host kernel cannot run.

See :mod:`mpath.lab.vm` and the README's lab section.
"""

from mpath.lab.vm import (
    LabConfig,
    LabError,
    LabResult,
    LabUnavailableError,
    in_guest,
    lab_config,
    run_in_lab,
)

__all__ = [
    "LabConfig",
    "LabError",
    "LabResult",
    "LabUnavailableError",
    "in_guest",
    "lab_config",
    "run_in_lab",
]
