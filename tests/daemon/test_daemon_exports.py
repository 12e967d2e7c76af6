"""The daemon's one NBD server over two LUNs made of loop devices (two loops over one
image file are two paths to one LUN; two image files are two LUNs). Needs root
(losetup), not the iSCSI rig: every map is an export of ``LISTEN_DIR/nbd.sock``, data
written through one lands in its image file alone, and a reload that drops a map
removes its export while a client is connected to it, leaving the other's client be.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import struct
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from mpath.nbd import protocol as nbd
from tests.daemon.helpers import Running, start_daemon, stop_daemon

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root for loop devices"),
    pytest.mark.skipif(shutil.which("losetup") is None, reason="losetup (util-linux) missing"),
    pytest.mark.skipif(shutil.which("nbdinfo") is None, reason="nbdinfo missing (make setup)"),
]

SIZE = 16 * 1024 * 1024


class Client:
    """A blocking NBD client: greeting, GO to one export, simple READs."""

    def __init__(self, path: str, export: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(30)
        self.sock.connect(path)
        magic, _opt, _flags = struct.unpack(">QQH", self.recv(18))
        assert magic == nbd.NBDMAGIC
        self.sock.sendall(struct.pack(">I", nbd.FLAG_C_FIXED_NEWSTYLE | nbd.FLAG_C_NO_ZEROES))
        name = export.encode()
        data = struct.pack(">I", len(name)) + name + struct.pack(">H", 0)
        self.sock.sendall(nbd.OPTION_HEADER.pack(nbd.IHAVEOPT, nbd.OPT_GO, len(data)) + data)
        while True:
            _magic, _option, reply, length = nbd.OPTION_REPLY.unpack(
                self.recv(nbd.OPTION_REPLY.size)
            )
            payload = self.recv(length)
            if reply == nbd.REP_ACK:
                return
            assert reply == nbd.REP_INFO, payload.decode()

    def recv(self, length: int) -> bytes:
        data = b""
        while len(data) < length:
            chunk = self.sock.recv(length - len(data))
            if not chunk:
                raise ConnectionError("closed by the server")
            data += chunk
        return data

    def read(self, offset: int, length: int) -> bytes:
        self.sock.sendall(nbd.REQUEST.pack(nbd.REQUEST_MAGIC, 0, nbd.CMD_READ, 1, offset, length))
        magic, error, handle = nbd.SIMPLE_REPLY.unpack(self.recv(nbd.SIMPLE_REPLY.size))
        assert (magic, error, handle) == (nbd.SIMPLE_REPLY_MAGIC, 0, 1)
        return self.recv(length)

    def closed(self) -> bool:
        """True once the server closed the connection (bounded by the socket timeout)."""
        return self.sock.recv(1) == b""

    def close(self) -> None:
        self.sock.close()


def losetup(*args: str) -> str:
    return subprocess.run(["losetup", *args], capture_output=True, text=True, check=True,
                          timeout=30).stdout.strip()  # fmt: skip


@pytest.fixture
def two_luns() -> Iterator[tuple[Path, list[Path], list[list[str]]]]:
    """Two image files, each behind two loop devices: (folder, images, loops per LUN)."""
    directory = Path(tempfile.mkdtemp(prefix="mpath-exports-"))
    directory.chmod(0o755)
    loops: list[list[str]] = []
    try:
        images = []
        for name in ("a.img", "b.img"):
            image = directory / name
            with image.open("wb") as handle:
                handle.truncate(SIZE)
            images.append(image)
            loops.append([losetup("--find", "--show", str(image)) for _ in range(2)])
        yield directory, images, loops
    finally:
        for pair in loops:
            for device in pair:
                subprocess.run(["losetup", "--detach", device], check=False, timeout=30)
        shutil.rmtree(directory, ignore_errors=True)


def config_text(directory: Path, loops: list[list[str]]) -> str:
    text = (
        f'[daemon]\nlisten_dir = "{directory}/run"\nstate_file = "{directory}/b.json"\n'
        'nbd_tcp = "127.0.0.1:0"\n'
    )
    for paths in loops:
        text += f"\n[[daemon.maps]]\npaths = {json.dumps(paths)}\n"
    return text


@pytest.fixture
def daemon(two_luns: tuple[Path, list[Path], list[list[str]]]) -> Iterator[Running]:
    directory, _images, loops = two_luns
    running: Running | None = None
    try:
        running = start_daemon(directory, config_text(directory, loops))
        yield running
    finally:
        try:
            if running is not None:
                assert stop_daemon(running.process) == 0
        finally:
            print((directory / "daemon.log").read_text()[-3000:])


def listed(uri: str) -> list[str]:
    done = subprocess.run(["nbdinfo", "--list", "--json", uri], capture_output=True, text=True,
                          timeout=30)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return [e["export-name"] for e in json.loads(done.stdout)["exports"]]


def names_by_lun(daemon: Running, loops: list[list[str]]) -> list[str]:
    """The maps' names in LUN order (maps open concurrently: names follow no order)."""
    maps = daemon.ctl("show", "maps")
    by_paths = {frozenset(p["url"] for p in m["paths"]): m["name"] for m in maps}
    return [by_paths[frozenset(pair)] for pair in loops]


@dataclass
class Served:
    """The running daemon's two maps: names in LUN order, the NBD socket and its URI."""

    directory: Path
    loops: list[list[str]]
    a: str
    b: str
    socket: str
    unix: str


@pytest.fixture
def served(daemon: Running, two_luns: tuple[Path, list[Path], list[list[str]]]) -> Served:
    directory, _images, loops = two_luns
    a, b = names_by_lun(daemon, loops)
    return Served(directory, loops, a, b, str(directory / "run" / "nbd.sock"),
                  daemon.ready["nbd"][0])  # fmt: skip


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_one_server_lists_both_maps_and_a_write_lands_on_its_lun_alone(
    daemon: Running, two_luns: tuple[Path, list[Path], list[list[str]]]
) -> None:
    directory, (image_a, image_b), loops = two_luns
    a, _b = names_by_lun(daemon, loops)
    unix, tcp = daemon.ready["nbd"]
    socket_path = directory / "run" / "nbd.sock"
    assert unix == f"nbd+unix:///?socket={socket_path}"
    assert sorted(listed(unix)) == sorted(listed(tcp)) == ["mpatha", "mpathb"]
    maps = {m["name"]: m for m in daemon.ctl("show", "maps")}
    assert maps[a]["uri"] == f"nbd+unix:///{a}?socket={socket_path}"
    assert daemon.ready["maps"] == {name: m["uri"] for name, m in maps.items()}
    if shutil.which("nbdcopy") is None:
        pytest.skip("nbdcopy missing (make setup)")
    data = os.urandom(4 * 1024 * 1024)
    source = directory / "in.bin"
    source.write_bytes(data)
    b_before = digest(image_b)
    done = subprocess.run(["nbdcopy", "--flush", str(source), maps[a]["uri"]],
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stderr
    with image_a.open("rb") as handle:  # from outside: the LUN's own image file
        assert handle.read(len(data)) == data
    assert digest(image_b) == b_before


def test_a_reload_dropping_a_map_removes_its_export_under_a_connected_client(
    daemon: Running, served: Served
) -> None:
    a, b, unix = served.a, served.b, served.unix
    on_a, on_b = Client(served.socket, a), Client(served.socket, b)
    try:
        assert on_b.read(0, 512) == bytes(512)
        daemon.config.write_text(config_text(served.directory, served.loops[:1]))
        report = daemon.ctl("reconfigure")
        assert (report["kept"], report["removed"]) == ([a], [b])
        assert on_b.closed()  # its client was disconnected (nothing was in flight)
        assert listed(unix) == [a]
        refused = subprocess.run(["nbdinfo", daemon.ready["maps"][b]],
                                 capture_output=True, text=True, timeout=30)  # fmt: skip
        assert refused.returncode != 0
        # NBD_REP_ERR_UNKNOWN, which libnbd reports as ENOENT.
        assert f"No such file or directory for export: {b}" in refused.stderr
        assert on_a.read(4096, 512) == bytes(512)  # the kept map's client never noticed
        # Named again, it is served again, under the same (bound) name.
        daemon.config.write_text(daemon.base_config)
        assert daemon.ctl("reconfigure")["added"] == [b]
        assert sorted(listed(unix)) == ["mpatha", "mpathb"]
        assert on_a.read(0, 512) == bytes(512)
    finally:
        on_a.close()
        on_b.close()


def test_ctl_del_map_and_add_map_change_the_exports_at_once(
    daemon: Running, served: Served
) -> None:
    a, b, unix, path, loops = served.a, served.b, served.unix, served.socket, served.loops
    on_b = Client(path, b)
    try:
        removed = daemon.cli("del", "map", b)
        assert removed.returncode == 0, removed.stderr
        assert removed.stdout == f"{b} removed\n"
        assert on_b.closed()
        assert listed(unix) == [a]
        taken = daemon.cli("add", "map", loops[0][0])
        assert taken.returncode == 2
        assert taken.stderr.strip() == f"mpath: error: path {loops[0][0]} is already in map {a}"
        added = daemon.cli("add", "map", "--alias", "back", *loops[1])
        assert added.returncode == 0, added.stderr
        assert added.stdout.startswith("back added: ")
        assert added.stdout.rstrip().endswith(f"2/2 paths up, at nbd+unix:///back?socket={path}")
        assert sorted(listed(unix)) == sorted([a, "back"])
        back = Client(path, "back")
        assert back.read(0, 512) == bytes(512)
        back.close()
        unknown = daemon.cli("del", "map", b)
        assert unknown.returncode == 2
        assert f"no map named '{b}'" in unknown.stderr
        # A reload applies the file as written: the LUN is reopened under its own name.
        report = daemon.ctl("reconfigure")
        assert (report["kept"], report["reopened"], report["removed"]) == ([a], [b], [])
        assert sorted(listed(unix)) == ["mpatha", "mpathb"]
    finally:
        on_b.close()
