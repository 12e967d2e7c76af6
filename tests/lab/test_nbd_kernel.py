"""``mpath serve`` as a real block device (lab): kernel NBD client, ext4, a cut path.

``nbd-client`` attaches the export to /dev/nbd0; ext4 is built on it and a tree of
files copied in while a rig path is cut and restored. Judged from outside: ``e2fsck
-fn`` finds nothing, and after reattaching (also with ``nbd-client -C 4``, four
connections) every file's SHA-256 equals its source's.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import pytest

from mpath.lab.stack import nbd_attach, nbd_detach
from mpath.rig import Rig, RigManager

pytestmark = pytest.mark.lab

NBD = "/dev/nbd0"
PORT = 10809
SOURCE = Path(__file__).resolve().parents[2] / "mpath"
EXTRA_SOURCE = Path(sys.prefix) / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}"
EXTRA = EXTRA_SOURCE / "site-packages" / "click"


def sh(*argv: str, timeout: float = 300) -> str:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"{argv}: {result.returncode}\n{result.stdout}{result.stderr}"
    return result.stdout


def checksums(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.is_symlink()
    }


@pytest.fixture(scope="module")
def export(lio_rig: Rig, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``mpath serve`` over the rig on 127.0.0.1:PORT; returns the export name."""
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    with log.open("w") as err:
        server = subprocess.Popen(
            [sys.executable, "-m", "mpath", "serve", "--rig", lio_rig.name,
             "--listen", f"tcp:127.0.0.1:{PORT}", "--policy", "round-robin"],
            stdout=subprocess.PIPE, stderr=err, text=True,
        )  # fmt: skip
    try:
        assert server.stdout is not None
        uri = server.stdout.readline().strip()  # the ready line
        assert uri.startswith("nbd://"), log.read_text()
        yield urlparse(uri).path.lstrip("/")
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=120)
    assert server.returncode == 0, log.read_text()


def attach(export_name: str, connections: int = 1) -> None:
    """Connect /dev/nbd0 to the export (the lab's one way: mpath.lab.stack)."""
    nbd_attach(PORT, export_name, connections)


def connections_to_server() -> int:
    out = sh("ss", "-Htn", "state", "established", f"( dport = :{PORT} )")
    return len(out.splitlines())


def detach() -> None:
    nbd_detach()


@pytest.fixture
def mountpoint(tmp_path: Path) -> Iterator[Path]:
    target = tmp_path / "mnt"
    target.mkdir()
    yield target
    subprocess.run(["umount", str(target)], capture_output=True)
    detach()


def test_ext4_on_nbd0_survives_a_path_cut_during_a_copy(
    lio_rig: Rig, export: str, mountpoint: Path
) -> None:
    attach(export)
    sh("mkfs.ext4", "-q", "-F", "-b", "4096", NBD)
    sh("mount", NBD, str(mountpoint))
    copy = subprocess.Popen(
        ["cp", "-a", str(SOURCE), str(EXTRA), str(mountpoint)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    manager = RigManager()
    manager.fault(lio_rig.name, 1, "down")
    try:
        cut_during_copy = copy.poll() is None
        sh("sync")  # the dirty pages go out while path 1 is down
    finally:
        manager.fault(lio_rig.name, 1, "clear")
    out, _ = copy.communicate(timeout=600)
    assert copy.returncode == 0, out
    assert cut_during_copy, "the copy ended before the path was cut: use a larger tree"
    sh("sync")
    sh("umount", str(mountpoint))
    fsck = subprocess.run(["e2fsck", "-fn", NBD], capture_output=True, text=True)
    assert fsck.returncode == 0, fsck.stdout + fsck.stderr
    detach()

    # Reattached with four connections: the files are the ones written.
    attach(export, connections=4)
    assert connections_to_server() == 4
    sh("mount", "-o", "ro", NBD, str(mountpoint))
    assert checksums(mountpoint / "mpath") == checksums(SOURCE)
    assert checksums(mountpoint / EXTRA.name) == checksums(EXTRA)
    sh("umount", str(mountpoint))
    fsck = subprocess.run(["e2fsck", "-fn", NBD], capture_output=True, text=True)
    assert fsck.returncode == 0, fsck.stdout + fsck.stderr


def test_four_connections_write_and_read_back(lio_rig: Rig, export: str, mountpoint: Path) -> None:
    attach(export, connections=4)
    assert connections_to_server() == 4
    sh("mkfs.ext4", "-q", "-F", "-b", "4096", NBD)
    sh("mount", NBD, str(mountpoint))
    sh("cp", "-a", str(SOURCE), str(mountpoint))
    sh("umount", str(mountpoint))
    fsck = subprocess.run(["e2fsck", "-fn", NBD], capture_output=True, text=True)
    assert fsck.returncode == 0, fsck.stdout + fsck.stderr
    detach()
    attach(export)
    sh("mount", "-o", "ro", NBD, str(mountpoint))
    assert checksums(mountpoint / "mpath") == checksums(SOURCE)
    assert os.listdir(mountpoint)
