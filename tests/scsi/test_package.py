"""The package's public surface and its promise to stay light to import."""

from __future__ import annotations

import subprocess
import sys

import mpath.scsi


def test_every_public_name_resolves() -> None:
    assert mpath.scsi.__all__ == sorted(mpath.scsi.__all__)
    for name in mpath.scsi.__all__:
        assert getattr(mpath.scsi, name) is not None, name


def test_importing_the_package_does_not_import_pyscsi() -> None:
    # pyscsi is only for reference encodings and ASC names (mpath.scsi.pyscsi_adapter);
    # the per-I/O code must not pay for it, nor depend on it being importable.
    code = "import sys, mpath.scsi; mpath.scsi.read16(0, 1); print('pyscsi' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"
