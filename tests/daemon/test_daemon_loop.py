"""The daemon over block paths: two loop devices on one backing file are two paths to
one LUN (one identity), through mpath's real block transport. Needs root (losetup),
not the iSCSI rig, so the service's own behaviour is checked quickly and everywhere.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from unittest.mock import ANY

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.daemon.helpers import (
    NOBODY,
    Running,
    fio,
    fio_result,
    path_row,
    scrape,
    start_daemon,
    stop_daemon,
    stop_fio,
    wait_for,
)

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root for loop devices"),
    pytest.mark.skipif(shutil.which("losetup") is None, reason="losetup (util-linux) missing"),
]


@pytest.fixture
def loops() -> Iterator[list[str]]:
    directory = Path(tempfile.mkdtemp(prefix="mpath-loop-"))
    devices: list[str] = []
    try:
        image = directory / "disk.img"
        with image.open("wb") as handle:
            handle.truncate(32 * 1024 * 1024)
        for _ in range(2):
            devices.append(
                subprocess.run(
                    ["losetup", "--find", "--show", str(image)],
                    capture_output=True, text=True, check=True, timeout=30,
                ).stdout.strip()
            )  # fmt: skip
        yield devices
    finally:
        for device in devices:
            subprocess.run(["losetup", "--detach", device], check=False, timeout=30)
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def daemon(loops: list[str]) -> Iterator[Running]:
    directory = Path(tempfile.mkdtemp(prefix="mpath-daemon-"))
    directory.chmod(0o755)
    running: Running | None = None
    try:
        running = start_daemon(
            directory,
            f'[daemon]\nlisten_dir = "{directory}/run"\nstate_file = "{directory}/b.json"\n'
            f'metrics = "127.0.0.1:0"\n\n[[daemon.maps]]\npaths = {json.dumps(loops)}\n',
        )
        yield running
    finally:
        try:
            if running is not None:
                assert stop_daemon(running.process) == 0
        finally:
            print((directory / "daemon.log").read_text()[-3000:])
            shutil.rmtree(directory, ignore_errors=True)


def test_one_map_named_by_binding_with_a_working_export(daemon: Running) -> None:
    (entry,) = daemon.ctl("show", "maps")
    assert entry["name"] == "mpatha" and entry["paths_total"] == 2
    assert json.loads((daemon.directory / "b.json").read_text())["bindings"] == {
        entry["wwid"]: "mpatha"
    }
    listed = subprocess.run(
        ["nbdinfo", "--list", "--json", f"nbd+unix:///?socket={entry['socket']}"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert listed.returncode == 0, listed.stderr
    assert [e["export-name"] for e in json.loads(listed.stdout)["exports"]] == ["mpatha"]


def test_fail_path_holds_until_reinstated(daemon: Running) -> None:
    job = fio(
        daemon.ready["maps"]["mpatha"], "--rw=randwrite", "--size=16M", "--time_based",
        "--runtime=5",
    )  # fmt: skip
    try:
        wait_for(lambda: path_row(daemon, "mpatha:1")["ios"] > 200, 30, "I/O on path 1")
        assert daemon.ctl("fail", "path", "mpatha:1")["state"] == "failed"
        wait_for(lambda: path_row(daemon, "mpatha:1")["in_flight"] == 0, 5, "drained")
        ios = path_row(daemon, "mpatha:1")["ios"]
        other = path_row(daemon, "mpatha:2")["ios"]
        wait_for(lambda: path_row(daemon, "mpatha:2")["ios"] > other + 3000, 30, "I/O on 2")
        time.sleep(2)  # two checker polls, which must not bring the path back
        row = path_row(daemon, "mpatha:1")
        assert (row["state"], row["held_by_admin"], row["ios"]) == ("failed", True, ios)
        back = daemon.cli("reinstate", "path", "mpatha:1")
        assert back.returncode == 0, back.stderr
        wait_for(lambda: path_row(daemon, "mpatha:1")["ios"] > ios, 10, "I/O back on 1")
        result = fio_result(job)
    finally:
        stop_fio(job)
    assert result["error"] == 0
    (stats,) = daemon.ctl("show", "stats")["maps"]
    assert (stats["admin_fails"], stats["admin_reinstates"], stats["errors"]) == (1, 1, 0)


def test_sighup_applies_a_new_policy_and_show_config_names_its_origin(daemon: Running) -> None:
    (entry,) = daemon.ctl("show", "maps")
    assert entry["policy"] == "share"
    daemon.config.write_text(
        daemon.base_config + f'\n[[multipaths]]\nwwid = "{entry["wwid"]}"\npolicy = "round-robin"\n'
    )
    daemon.process.send_signal(signal.SIGHUP)
    wait_for(lambda: daemon.ctl("show", "stats")["reloads"] == 1, 30, "the reload")
    (entry,) = daemon.ctl("show", "maps")
    assert entry["policy"] == "round-robin"
    (config,) = daemon.ctl("show", "config")["maps"]
    assert config["settings"]["policy"] == {
        "value": "round-robin",
        "origin": f"multipaths section (wwid {entry['wwid']})",
        "location": f"{daemon.config}:11",
    }
    assert daemon.ctl("show", "stats")["last_reload"]["reopened"] == ["mpatha"]
    # The same file again: nothing changed, the map is kept.
    assert daemon.ctl("reconfigure")["kept"] == ["mpatha"]
    # A broken file changes nothing and is a clear error.
    daemon.config.write_text(daemon.base_config + "[daemon.typo]\n")
    reconfigure = daemon.cli("reconfigure")
    assert reconfigure.returncode == 2
    assert "mpath.toml" in reconfigure.stderr
    assert daemon.ctl("show", "maps")[0]["policy"] == "round-robin"


def _samples(exposition: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    """Every sample of a scrape by its name (with ``_total``, ``_bucket``, ...)."""
    found: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            found.setdefault(sample.name, []).append((sample.labels, sample.value))
    return found


def _total(samples: dict[str, list[tuple[dict[str, str], float]]], name: str) -> float:
    return sum(value for _, value in samples[name])


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool missing (make setup)")
def test_metrics_pass_promtool(daemon: Running) -> None:
    # Known I/O through the export first: 64 KiB written in 16 writes, 8 KiB read.
    io = subprocess.run(
        # libnbd's Python binding is Debian's python3-libnbd: the system's Python has it.
        ["/usr/bin/python3", "-c",
         "import nbd, sys; h = nbd.NBD(); h.connect_uri(sys.argv[1]);"
         "[h.pwrite(b'M' * 4096, i * 4096) for i in range(16)]; h.pread(8192, 0); h.shutdown()",
         daemon.ready["maps"]["mpatha"]],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert io.returncode == 0, io.stderr
    exposition = scrape(daemon)
    check = subprocess.run(["promtool", "check", "metrics"], input=exposition,
                           capture_output=True, text=True, timeout=30)  # fmt: skip
    assert check.returncode == 0, check.stdout + check.stderr
    assert 'mpath_map_paths_up{map="mpatha"' in exposition
    assert 'mpath_path_checker_state{map="mpatha",path="1"' in exposition
    samples = _samples(exposition)
    # The read/write split: exactly the client's writes; its read at least.
    assert _total(samples, "mpath_path_written_bytes_total") == 16 * 4096
    assert _total(samples, "mpath_path_writes_total") == 16
    assert _total(samples, "mpath_path_read_bytes_total") >= 8192
    assert _total(samples, "mpath_path_reads_total") >= 1
    assert _total(samples, "mpath_path_bytes_total") >= 16 * 4096 + 8192
    # The latency histogram: per path, every completed command once, in +Inf.
    assert "# TYPE mpath_path_command_latency_seconds histogram" in exposition
    ios = {labels["path"]: value for labels, value in samples["mpath_path_ios_total"]}
    counts = {labels["path"]: value
              for labels, value in samples["mpath_path_command_latency_seconds_count"]}  # fmt: skip
    infinite = {labels["path"]: value
                for labels, value in samples["mpath_path_command_latency_seconds_bucket"]
                if labels["le"] == "+Inf"}  # fmt: skip
    assert counts == ios == infinite and sum(ios.values()) >= 17
    assert _total(samples, "mpath_path_command_latency_seconds_sum") > 0
    # Per map: no outage, so no time queued with no path and no failing I/O.
    assert samples["mpath_map_queueing_seconds_total"] == [({"map": "mpatha", "wwid": ANY}, 0.0)]
    assert samples["mpath_map_fail_io_total"] == [({"map": "mpatha", "wwid": ANY}, 0.0)]


@pytest.mark.skipif(shutil.which("setpriv") is None, reason="setpriv (util-linux) missing")
def test_non_root_gets_show_and_not_fail(daemon: Running) -> None:
    shown = daemon.cli("show", "paths", "--format", "{name} {state}", user=NOBODY)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.splitlines() == ["mpatha:1 active", "mpatha:2 active"]
    refused = daemon.cli("fail", "path", "mpatha:1", user=NOBODY)
    assert refused.returncode == 1
    assert "needs root: only 'show' is open to other users" in refused.stderr


def _set_size(loops: list[str], size: int) -> None:
    """Resize the backing file and tell the loop devices (the LUN was resized)."""
    name = Path(loops[0]).name
    backing = Path(f"/sys/block/{name}/loop/backing_file").read_text().strip()
    os.truncate(backing, size)
    for device in loops:
        subprocess.run(["losetup", "--set-capacity", device], check=True, timeout=30)


def _nbd_size(uri: str) -> int:
    info = subprocess.run(
        ["nbdinfo", "--size", uri], capture_output=True, text=True, timeout=30, check=True
    )
    return int(info.stdout)


def test_resize_map_serves_a_grown_lun_and_refuses_a_shrink(
    daemon: Running, loops: list[str]
) -> None:
    uri = daemon.ready["maps"]["mpatha"]
    assert _nbd_size(uri) == 32 << 20
    _set_size(loops, 48 << 20)
    grown = daemon.cli("resize", "map", "mpatha", "--json")
    assert grown.returncode == 0, grown.stderr
    answer = json.loads(grown.stdout)
    assert (answer["old_size_bytes"], answer["size_bytes"], answer["grown"]) == (
        32 << 20,
        48 << 20,
        True,
    )
    assert sorted(answer["paths"].values()) == [48 << 20, 48 << 20]
    assert daemon.ctl("show", "map", "mpatha")["size_bytes"] == 48 << 20
    assert _nbd_size(uri) == 48 << 20  # a new connection is told the new size
    # The new end is really served: write the last MiB and read it back.
    tail = subprocess.run(
        # libnbd's Python binding is Debian's python3-libnbd: the system's Python has it.
        ["/usr/bin/python3", "-c",
         "import nbd, sys; h = nbd.NBD(); h.connect_uri(sys.argv[1]); end = h.get_size();"
         "h.pwrite(b'E' * 4096, end - 4096); h.flush();"
         "print(bytes(h.pread(4096, end - 4096)[:4]), end)",
         uri],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert tail.returncode == 0 and tail.stdout.split() == ["b'EEEE'", str(48 << 20)], tail.stderr
    again = daemon.cli("resize", "map", "mpatha")
    assert again.returncode == 0 and "unchanged" in again.stdout, again.stderr
    _set_size(loops, 40 << 20)
    shrunk = daemon.cli("resize", "map", "mpatha")
    assert shrunk.returncode == 1
    assert "shrank from 50331648 to 41943040 bytes: refused" in shrunk.stderr
    assert daemon.ctl("show", "map", "mpatha")["size_bytes"] == 48 << 20
    (stats,) = daemon.ctl("show", "stats")["maps"]
    assert stats["resizes"] == 1
    refused = daemon.cli("resize", "map", "mpatha", user=NOBODY)
    assert refused.returncode == 1 and "needs root" in refused.stderr


def test_switchgroup_over_the_control_socket(daemon: Running) -> None:
    out_of_range = daemon.cli("switchgroup", "mpatha", "2")
    assert out_of_range.returncode == 2
    assert "no path group 2: this LUN has 1" in out_of_range.stderr
    switched = daemon.cli("switchgroup", "mpatha", "1", "--json")
    assert switched.returncode == 0, switched.stderr
    assert json.loads(switched.stdout) == {"map": "mpatha", "group": 1, "priority": 0}
    (topology,) = daemon.ctl("show", "topology")
    assert [(g["group"], g["active"]) for g in topology["groups"]] == [(1, True)]
    shown = daemon.cli("show", "topology")
    assert "`-+- group 1 priority=0 status=active\n" in shown.stdout, shown.stderr  # one group
    assert daemon.cli("switchgroup", "nosuch", "1").returncode == 2
    refused = daemon.cli("switchgroup", "mpatha", "1", user=NOBODY)
    assert refused.returncode == 1 and "needs root" in refused.stderr


def _nbd_write(uri: str) -> subprocess.Popen[str]:
    """One 4 KiB write and a flush through the export, in a child (it may wait)."""
    return subprocess.Popen(
        ["/usr/bin/python3", "-c",
         "import nbd, sys; h = nbd.NBD(); h.connect_uri(sys.argv[1]);"
         "h.pwrite(b'Q' * 4096, 0); h.flush(); h.shutdown()",
         uri],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def test_queueing_seconds_and_fail_io_count_an_outage(daemon: Running) -> None:
    daemon.config.write_text(daemon.base_config + "\n[defaults]\nno_path_retry = 2\n")
    assert daemon.ctl("reconfigure")["reopened"] == ["mpatha"]
    uri = daemon.ready["maps"]["mpatha"]
    for path in ("mpatha:1", "mpatha:2"):
        assert daemon.ctl("fail", "path", path)["state"] == "failed"
    # A write with no path waits no_path_retry (2 s), then fails: failing I/O begins.
    started = time.monotonic()
    _, err = (first := _nbd_write(uri)).communicate(timeout=30)
    waited = time.monotonic() - started
    assert first.returncode != 0 and "Input/output error" in err, err
    (stats,) = daemon.ctl("show", "stats")["maps"]
    assert stats["fail_io"] == 1
    assert 1.9 <= stats["queueing_seconds"] <= waited
    # The next one waits too; a path that comes back meanwhile carries it.
    second = _nbd_write(uri)
    try:
        wait_for(lambda: daemon.ctl("show", "stats")["maps"][0]["queueing_seconds"]
                 > stats["queueing_seconds"] + 0.2, 10, "the second write waiting")  # fmt: skip
        daemon.ctl("reinstate", "path", "mpatha:1")
        _, err = second.communicate(timeout=30)
    finally:
        if second.poll() is None:
            second.kill()
            second.communicate()
    assert second.returncode == 0, err
    (after,) = daemon.ctl("show", "stats")["maps"]
    assert after["fail_io"] == 1  # one outage
    assert (
        stats["queueing_seconds"] + 0.2 < after["queueing_seconds"] < stats["queueing_seconds"] + 2
    )
    samples = _samples(scrape(daemon))
    assert _total(samples, "mpath_map_fail_io_total") == 1
    assert _total(samples, "mpath_map_queueing_seconds_total") == after["queueing_seconds"]
    shown = daemon.cli("show", "stats")
    assert f"queueing={after['queueing_seconds']:.3f}s fail_io=1 " in shown.stdout, shown.stderr


def test_priorities_in_the_file_make_path_groups_and_switchgroup_moves_io(
    daemon: Running,
) -> None:
    # base_config ends inside [[daemon.maps]]: the priorities are the map's.
    daemon.config.write_text(daemon.base_config + "priorities = [20, 10]\n")
    assert daemon.ctl("reconfigure")["reopened"] == ["mpatha"]
    (topology,) = daemon.ctl("show", "topology")
    assert [(g["group"], g["priority"], g["active"], [p["index"] for p in g["paths"]])
            for g in topology["groups"]] == [(1, 20, True, [1]), (2, 10, False, [2])]  # fmt: skip
    shown = daemon.cli("show", "topology")
    assert "`-+- group 2 priority=10 status=enabled\n" in shown.stdout, shown.stderr
    (config,) = daemon.ctl("show", "config")["daemon"]["maps"]
    assert config["priorities"] == [20, 10]
    job = fio(
        daemon.ready["maps"]["mpatha"], "--rw=randwrite", "--size=16M", "--time_based",
        "--runtime=6",
    )  # fmt: skip
    try:
        wait_for(lambda: path_row(daemon, "mpatha:1")["writes"] > 300, 30, "writes on group 1")
        assert path_row(daemon, "mpatha:2")["writes"] == 0  # group 2 stands by
        switched = daemon.cli("switchgroup", "mpatha", "2", "--json")
        assert switched.returncode == 0, switched.stderr
        assert json.loads(switched.stdout) == {"map": "mpatha", "group": 2, "priority": 10}
        wait_for(lambda: path_row(daemon, "mpatha:1")["in_flight"] == 0, 5, "group 1 drained")
        first = path_row(daemon, "mpatha:1")["writes"]
        second = path_row(daemon, "mpatha:2")["writes"]
        wait_for(lambda: path_row(daemon, "mpatha:2")["writes"] > second + 300, 30,
                 "writes on group 2")  # fmt: skip
        assert path_row(daemon, "mpatha:1")["writes"] == first  # nothing new on group 1
        (topology,) = daemon.ctl("show", "topology")
        assert [(g["group"], g["active"], g["switched"]) for g in topology["groups"]] == [
            (1, False, False),
            (2, True, True),
        ]
        result = fio_result(job)
    finally:
        stop_fio(job)
    assert result["error"] == 0
    (stats,) = daemon.ctl("show", "stats")["maps"]
    assert (stats["group_switches"], stats["errors"]) == (1, 0)
    header, *rows = daemon.cli("show", "paths").stdout.splitlines()
    assert header.split()[5:8] == ["IOS", "READ", "WRITTEN"] and len(rows) == 2
    # A priority per path, or the reload is refused and the map kept as it was.
    daemon.config.write_text(daemon.base_config + "priorities = [20]\n")
    refused = daemon.cli("reconfigure")
    assert refused.returncode == 2
    assert "priorities has 1 value(s) for 2 path(s)" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
    assert len(daemon.ctl("show", "topology")[0]["groups"]) == 2
