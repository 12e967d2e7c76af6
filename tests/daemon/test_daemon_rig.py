"""The daemon on two real rigs (two LUNs), started from a config naming their portals.

One daemon process serves the whole module (started as ``mpath daemon`` would be, and
stopped with SIGTERM at the end, rigs torn down even on failure). The tests talk to it
as an operator does: ``mpath ctl`` over the control socket, nbdinfo, nbdcopy and fio
over the exports of its one NBD server (Unix socket and loopback TCP), a Prometheus
scrape, SIGHUP.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mpath.rig import RigManager
from tests.conftest import unique_rig_name
from tests.daemon.helpers import (
    NOBODY,
    Running,
    fio,
    fio_result,
    path_bytes,
    path_row,
    scrape,
    start_daemon,
    stop_daemon,
    stop_fio,
    wait_for,
)

pytestmark = pytest.mark.rig

SIZE = 64 * 1024 * 1024
VERIFY = ["--rw=randwrite", "--size=32M", "--verify=crc32c", "--verify_fatal=1",
          "--do_verify=1", "--verify_state_save=0", "--rate=8m"]  # fmt: skip
#: The rigs' names by role (A is cut, failed and reconfigured; B must not notice).
RIGS: dict[str, str] = {}
#: The rigs' LUN backing files by role: what the target stores, read from outside.
BACKING: dict[str, Path] = {}


@pytest.fixture(scope="module")
def daemon() -> Iterator[Running]:
    manager = RigManager()
    RIGS.update(A=unique_rig_name("da"), B=unique_rig_name("db"))
    directory = Path(tempfile.mkdtemp(prefix="mpath-daemon-"))
    directory.chmod(0o755)  # non-root clients reach the control socket through it
    running: Running | None = None
    try:
        rigs = {key: manager.up(name=name, paths=2, size=SIZE) for key, name in RIGS.items()}
        BACKING.update({key: Path(rig.lun.backing_file) for key, rig in rigs.items()})
        portals = [p for rig in rigs.values() for p in rig.describe()["portals"]]
        running = start_daemon(
            directory,
            f'[daemon]\nlisten_dir = "{directory}/run"\n'
            f'state_file = "{directory}/bindings.json"\nnbd_tcp = "127.0.0.1:0"\n'
            f'metrics = "127.0.0.1:0"\nportals = {json.dumps(portals)}\n',
        )
        running.rig_urls = {key: rig.urls for key, rig in rigs.items()}
        yield running
    finally:
        try:
            if running is not None:
                assert stop_daemon(running.process) == 0
        finally:
            for name in RIGS.values():
                manager.down(name)
            print((directory / "daemon.log").read_text()[-4000:])
            shutil.rmtree(directory, ignore_errors=True)


def nbdinfo(*args: str) -> str:
    done = subprocess.run(["nbdinfo", *args], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


def nbdcopy(source: str, destination: str) -> None:
    done = subprocess.run(["nbdcopy", "--flush", source, destination], capture_output=True,
                          text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr


def digest(path: Path, length: int = SIZE) -> str:
    with path.open("rb") as handle:
        return hashlib.sha256(handle.read(length)).hexdigest()


def test_two_maps_of_two_paths_and_two_exports(daemon: Running) -> None:
    shown = daemon.cli("show", "maps", "--json")
    assert shown.returncode == 0, shown.stderr
    maps = json.loads(shown.stdout)
    assert len(maps) == 2
    assert [len(m["paths"]) for m in maps] == [2, 2]
    assert all(m["paths_up"] == 2 for m in maps)
    # One NBD server: every map is an export of the one socket, named after the map.
    (socket_path,) = {m["socket"] for m in maps}
    assert socket_path == str(daemon.directory / "run" / "nbd.sock")
    unix, tcp = daemon.ready["nbd"]
    assert unix == f"nbd+unix:///?socket={socket_path}"
    assert tcp.startswith("nbd://127.0.0.1:")
    names = sorted(m["name"] for m in maps)
    for m in maps:
        assert m["export"] == m["name"]
        assert m["uri"] == f"nbd+unix:///{m['name']}?socket={socket_path}"
        assert m["tcp_uri"] == f"{tcp}/{m['name']}"
    print(f"$ nbdinfo --list '{unix}'\n" + nbdinfo("--list", unix))
    for base in (unix, tcp):
        listed = json.loads(nbdinfo("--list", "--json", base))["exports"]
        assert sorted(e["export-name"] for e in listed) == names
        for export in listed:
            (m,) = [m for m in maps if m["name"] == export["export-name"]]
            assert export["export-size"] == SIZE
            assert export["description"].startswith(f"mpath map {m['name']}: LUN {m['wwid']} ")
    assert sorted(daemon.ready["maps"]) == names
    text = daemon.cli("show", "maps").stdout
    assert all(f"nbd+unix:///{n}?socket={socket_path}" in text for n in names)


def test_data_written_through_one_export_lands_on_its_lun_alone(
    daemon: Running, tmp_path: Path
) -> None:
    """nbdcopy writes random data into A's export; A's backing file holds it (read from
    outside after nbdcopy flushed and closed), B's LUN and export are unchanged."""
    a, b = daemon.map_of("A"), daemon.map_of("B")
    length = 8 * 1024 * 1024
    source = tmp_path / "in.img"
    source.write_bytes(os.urandom(length))
    b_before = digest(BACKING["B"])
    nbdcopy(str(source), a["tcp_uri"])  # through loopback TCP; reads back through the socket
    with BACKING["A"].open("rb") as backing:
        assert backing.read(length) == source.read_bytes()
    back = tmp_path / "back.img"
    nbdcopy(a["uri"], str(back))
    assert back.read_bytes()[:length] == source.read_bytes()
    assert digest(BACKING["B"]) == b_before
    other = tmp_path / "b.img"
    nbdcopy(b["uri"], str(other))
    assert digest(other) == b_before
    stats = {s["map"]: s for s in daemon.ctl("show", "stats")["maps"]}
    assert stats[a["name"]]["nbd"]["bytes_written"] >= length
    assert stats[b["name"]]["nbd"]["errors"] == 0
    print(f"wrote {length} bytes through {a['tcp_uri']}: backing file of {a['name']} matches; "
          f"{b['name']} unchanged (sha256 {b_before[:16]}...)")  # fmt: skip


def test_fio_on_both_exports_survives_a_cut_on_rig_a(daemon: Running) -> None:
    a, b = daemon.map_of("A"), daemon.map_of("B")
    rig_a = RIGS["A"]
    before = {s["map"]: s for s in daemon.ctl("show", "stats")["maps"]}
    jobs = [fio(a["uri"], *VERIFY), fio(b["uri"], *VERIFY)]
    try:
        wait_for(lambda: path_row(daemon, f"{a['name']}:1")["ios"] > 500, 30, "I/O on A:1")
        RigManager().fault(rig_a, 1, "down")
        wait_for(lambda: path_row(daemon, f"{a['name']}:1")["state"] == "failed", 30, "A:1 failed")
        RigManager().fault(rig_a, 1, "up")
        wait_for(lambda: path_row(daemon, f"{a['name']}:1")["state"] == "active", 30, "A:1 back")
        results = [fio_result(job) for job in jobs]
    finally:
        RigManager().fault(rig_a, 1, "clear")
        stop_fio(*jobs)
    for result in results:
        assert result["error"] == 0
        assert result["write"]["io_bytes"] == 32 * 1024 * 1024
        assert result["read"]["io_bytes"] == 32 * 1024 * 1024  # every block verified
    stats = {s["map"]: s for s in daemon.ctl("show", "stats")["maps"]}
    assert stats[a["name"]]["failovers"] > before[a["name"]]["failovers"]
    assert stats[a["name"]]["paths"][0]["failures"] > before[a["name"]]["paths"][0]["failures"]
    assert stats[a["name"]]["errors"] == 0 and stats[b["name"]]["errors"] == 0
    assert stats[b["name"]]["failovers"] == before[b["name"]]["failovers"]
    text = daemon.cli("show", "stats").stdout
    assert f"path_faults={stats[a['name']]['failovers']}" in text


def test_fail_path_moves_io_off_and_reinstate_brings_it_back(daemon: Running) -> None:
    a = daemon.map_of("A")
    name = f"{a['name']}:1"
    job = fio(a["uri"], "--rw=randwrite", "--size=48M", "--time_based", "--runtime=12")
    try:
        wait_for(lambda: path_row(daemon, name)["ios"] > 200, 30, "I/O on the path")
        started = time.perf_counter()
        answer = daemon.ctl("fail", "path", name)
        elapsed = time.perf_counter() - started
        assert answer["state"] == "failed"
        # The answer comes once the path's session is closed: nothing is in flight on
        # it any more (what was is reissued on path 2), and its completions stop.
        drained = wait_for(lambda: path_row(daemon, name)["in_flight"] == 0, 5, "drained")
        settled = path_row(daemon, name)
        print(f"fail path answered after {elapsed * 1000:.0f} ms, nothing in flight on the "
              f"path {drained * 1000:.0f} ms later")  # fmt: skip
        assert settled["state"] == "failed" and settled["held_by_admin"]
        again = daemon.cli("fail", "path", name)  # the CLI's answer, on a failed path
        assert again.returncode == 0, again.stderr
        assert again.stdout.strip() == f"{name} failed: now failed"
        ios = settled["ios"]
        other = path_row(daemon, f"{a['name']}:2")["ios"]
        wait_for(lambda: path_row(daemon, f"{a['name']}:2")["ios"] > other + 2000, 30, "I/O on 2")
        assert path_row(daemon, name)["ios"] == ios
        assert path_row(daemon, name)["state"] == "failed"  # the checker does not undo it
        back = daemon.cli("reinstate", "path", name)
        assert back.returncode == 0, back.stderr
        wait_for(lambda: path_row(daemon, name)["ios"] > ios + 100, 10, "I/O back on the path")
        assert not path_row(daemon, name)["held_by_admin"]
        result = fio_result(job)
    finally:
        stop_fio(job)
    assert result["error"] == 0


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool missing (make setup)")
def test_metrics_pass_promtool_and_match_fio_throughput(daemon: Running) -> None:
    a = daemon.map_of("A")
    # fio measures after a 1 s ramp; the scrapes bracket 5 s inside its 8 s of measuring.
    job = fio(a["uri"], "--rw=randwrite", "--size=48M", "--time_based", "--ramp_time=1",
              "--runtime=8")  # fmt: skip
    try:
        wait_for(lambda: path_row(daemon, f"{a['name']}:1")["ios"] > 200, 30, "I/O")
        time.sleep(1.5)  # past fio's ramp
        first, t1 = scrape(daemon), time.monotonic()
        time.sleep(5)  # the measurement window itself
        second, t2 = scrape(daemon), time.monotonic()
        result = fio_result(job)
    finally:
        stop_fio(job)
    check = subprocess.run(["promtool", "check", "metrics"], input=second, capture_output=True,
                           text=True, timeout=30)  # fmt: skip
    assert check.returncode == 0, check.stdout + check.stderr
    start, end = path_bytes(first), path_bytes(second)
    rates = {k: (end[k] - start[k]) / (t2 - t1) for k in end if f'map="{a["name"]}"' in k}
    assert len(rates) == 2 and all(r > 0 for r in rates.values())
    fio_rate = result["write"]["bw_bytes"]
    total = sum(rates.values())
    print(f"scrape per path {rates}, sum {total / 1e6:.2f} MB/s, fio {fio_rate / 1e6:.2f} MB/s")
    assert abs(total - fio_rate) / fio_rate < 0.10


def test_sighup_policy_change_on_a_leaves_b_alone(daemon: Running) -> None:
    a, b = daemon.map_of("A"), daemon.map_of("B")
    loads_b = {s["map"]: s for s in daemon.ctl("show", "stats")["maps"]}[b["name"]]["table_loads"]
    new_policy = "round-robin" if a["policy"] != "round-robin" else "queue-length"
    job = fio(b["uri"], *VERIFY)
    try:
        wait_for(lambda: path_row(daemon, f"{b['name']}:1")["ios"] > 300, 30, "I/O on B")
        daemon.config.write_text(
            daemon.base_config
            + f'\n[[multipaths]]\nwwid = "{a["wwid"]}"\npolicy = "{new_policy}"\n'
        )
        daemon.process.send_signal(signal.SIGHUP)
        wait_for(lambda: daemon.policy_of("A") == new_policy, 60, "A's new policy")
        result = fio_result(job)
    finally:
        daemon.config.write_text(daemon.base_config)
        stop_fio(job)
    assert result["error"] == 0 and result["read"]["io_bytes"] == 32 * 1024 * 1024
    config = daemon.ctl("show", "config")
    (policy,) = [m["settings"]["policy"] for m in config["maps"] if m["name"] == a["name"]]
    assert policy["value"] == new_policy
    assert policy["origin"].startswith("multipaths section")
    assert policy["location"].startswith(f"{daemon.config}:")
    stats = {s["map"]: s for s in daemon.ctl("show", "stats")["maps"]}
    assert stats[b["name"]]["table_loads"] == loads_b  # B was not touched
    assert stats[b["name"]]["errors"] == 0
    text = daemon.cli("show", "config").stdout
    assert f"policy = {new_policy}  (multipaths section" in text


def test_show_answers_while_a_checker_hangs_on_a_hold(daemon: Running) -> None:
    a = daemon.map_of("A")
    rig_a = RIGS["A"]
    name = f"{a['name']}:1"
    # The hold keeps data packets (an idle path's small TUR still trickles through), so
    # writes run on A: path 1's commands hang, the device fails it, and the checker's
    # re-logins of it hang in the held queue until their timeout, again and again.
    job = fio(a["uri"], "--rw=randwrite", "--size=48M", "--time_based", "--runtime=25",
              "--rate=8m")  # fmt: skip
    times: list[float] = []
    during_checks: list[float] = []
    seen: set[str] = set()
    try:
        wait_for(lambda: path_row(daemon, name)["ios"] > 100, 30, "I/O on the path")
        RigManager().fault(rig_a, 1, "hold")
        deadline = time.monotonic() + 20
        settled_at: float | None = None
        while time.monotonic() < deadline:
            start = time.perf_counter()
            rows = daemon.ctl("show", "paths")
            elapsed = time.perf_counter() - start
            times.append(elapsed)
            assert len(rows) == 4
            (row,) = [r for r in rows if r["name"] == name]
            seen.add(f"{row['checker']}/{row['state']}")
            if row["checking"] and row["state"] == "failed":
                during_checks.append(elapsed)
            if settled_at is None and row["state"] == "failed":
                settled_at = time.monotonic()
            if settled_at is not None and time.monotonic() - settled_at > 5:
                break
            time.sleep(0.05)
    finally:
        RigManager().fault(rig_a, 1, "release")
        RigManager().fault(rig_a, 1, "clear")
        stop_fio(job)
    times.sort()
    during_checks.sort()
    print(f"show paths during hold: {len(times)} answers, median "
          f"{times[len(times) // 2] * 1000:.1f} ms, max {times[-1] * 1000:.1f} ms; "
          f"{len(during_checks)} while a check of {name} was running, max "
          f"{max(during_checks, default=0) * 1000:.1f} ms; seen {sorted(seen)}")  # fmt: skip
    assert any(state.endswith("/failed") for state in seen), seen
    assert during_checks, "no answer came while the held path's re-login was running"
    wait_for(lambda: path_row(daemon, name)["state"] == "active", 60, "the path back")


@pytest.mark.skipif(shutil.which("setpriv") is None, reason="setpriv (util-linux) missing")
def test_non_root_may_show_but_not_fail_a_path(daemon: Running) -> None:
    assert os.geteuid() == 0
    shown = daemon.cli("show", "maps", "--json", user=NOBODY)
    assert shown.returncode == 0, shown.stderr
    assert len(json.loads(shown.stdout)) == 2
    name = f"{daemon.map_of('A')['name']}:1"
    refused = daemon.cli("fail", "path", name, user=NOBODY)
    assert refused.returncode == 1
    assert refused.stderr.strip() == (
        f"mpath: error: 'fail path {name}' needs root: only 'show' is open to other users "
        f"(you are uid {NOBODY})"
    )
    assert path_row(daemon, name)["state"] == "active"


def test_resize_map_after_the_rig_lun_grew(daemon: Running) -> None:
    """The target grows rig B's LUN; ``ctl resize map`` re-reads READ CAPACITY over
    iSCSI and a new NBD connection is told the new size (the last block is served)."""
    entry = daemon.map_of("B")
    name, uri = entry["name"], entry["uri"]
    grown_to = SIZE + 32 * 1024 * 1024
    fault = subprocess.run(
        [sys.executable, "-m", "mpath", "rig", "fault", "lun", "resize", str(grown_to),
         "--name", RIGS["B"]],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert fault.returncode == 0, fault.stderr
    resized = daemon.cli("resize", "map", name, "--json")
    assert resized.returncode == 0, resized.stderr
    answer = json.loads(resized.stdout)
    # The daemon may have re-read it already, if a path met CAPACITY DATA HAS CHANGED.
    assert answer["size_bytes"] == grown_to and answer["old_size_bytes"] in (SIZE, grown_to)
    assert sorted(answer["paths"]) == sorted(daemon.rig_urls["B"])
    assert set(answer["paths"].values()) == {grown_to}
    shown = daemon.cli("show", "map", name, "--json")
    assert json.loads(shown.stdout)["size_bytes"] == grown_to
    info = subprocess.run(["nbdinfo", "--size", uri], capture_output=True, text=True,
                          timeout=30)  # fmt: skip
    assert info.returncode == 0 and int(info.stdout) == grown_to, info.stderr
    tail = subprocess.run(
        ["/usr/bin/python3", "-c",
         "import nbd, sys; h = nbd.NBD(); h.connect_uri(sys.argv[1]); end = h.get_size();"
         "h.pwrite(b'T' * 4096, end - 4096); h.flush();"
         "print(bytes(h.pread(4096, end - 4096)[:4]))",
         uri],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert tail.returncode == 0 and tail.stdout.strip() == "b'TTTT'", tail.stderr
    with BACKING["B"].open("rb") as backing:  # judged from outside: on the LUN's last block
        backing.seek(grown_to - 4096)
        assert backing.read(4) == b"TTTT"


def test_priorities_in_the_file_group_rig_a_and_switchgroup_moves_io(daemon: Running) -> None:
    """Rig A named in ``[[daemon.maps]]`` with a priority per path: two path groups,
    the better one carries fio's writes until ``switchgroup`` moves them to the other."""
    before = daemon.config.read_text()
    urls = daemon.rig_urls["A"]
    daemon.config.write_text(
        before + f"\n[[daemon.maps]]\npaths = {json.dumps(urls)}\npriorities = [20, 10]\n"
    )
    try:
        name = daemon.map_of("A")["name"]
        assert daemon.ctl("reconfigure")["reopened"] == [name]
        (topology,) = [m for m in daemon.ctl("show", "topology") if m["name"] == name]
        assert [(g["group"], g["priority"], g["active"], [p["url"] for p in g["paths"]])
                for g in topology["groups"]] == [(1, 20, True, [urls[0]]),
                                                 (2, 10, False, [urls[1]])]  # fmt: skip
        job = fio(daemon.map_of("A")["uri"], "--rw=randwrite", "--size=32M", "--time_based",
                  "--runtime=6")  # fmt: skip
        try:
            wait_for(lambda: path_row(daemon, f"{name}:1")["writes"] > 200, 30, "group 1 I/O")
            assert path_row(daemon, f"{name}:2")["writes"] == 0  # group 2 stands by
            switched = daemon.cli("switchgroup", name, "2", "--json")
            assert switched.returncode == 0, switched.stderr
            wait_for(lambda: path_row(daemon, f"{name}:1")["in_flight"] == 0, 5, "drained")
            first = path_row(daemon, f"{name}:1")["writes"]
            took = wait_for(lambda: path_row(daemon, f"{name}:2")["writes"] > 200, 30,
                            "group 2 I/O")  # fmt: skip
            assert path_row(daemon, f"{name}:1")["writes"] == first
            result = fio_result(job)
        finally:
            stop_fio(job)
        print(f"switchgroup: 200 writes on group 2 {took:.3f} s after group 1 drained")
        assert result["error"] == 0
    finally:
        daemon.config.write_text(before)
        daemon.ctl("reconfigure")
    (topology,) = [m for m in daemon.ctl("show", "topology") if m["name"] == name]
    assert len(topology["groups"]) == 1
