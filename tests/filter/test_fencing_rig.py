"""Stale writes on the real rig: a path holds its packets, mpath fails over, the packets
are released after the run, and the LUN's backing file must not change.

``rig fault N hold`` keeps every packet of path N in order and delivers none, as a
congested switch or a hung NIC queue does; ``release`` delivers them all. Without a
fence the target executes the held writes after their retries went down another path
and overwrites newer data (the first test shows the rig reproduces exactly that).
Every check reads the backing file itself, after the device is closed and after every
held packet was delivered and the target has dealt with it.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import pytest

from mpath.errors import FenceTimeoutError
from mpath.filter import DeviceSettings, MultipathDevice
from mpath.rig import Rig, RigManager
from mpath.scsi import cdb
from mpath.transports.iscsi import IscsiTransport
from mpath.workload import pattern
from mpath.workload.bench import BenchRun, BenchSpec
from tests.conftest import unique_rig_name

pytestmark = pytest.mark.rig

SIZE = 64 * 1024**2
SPAN = 1024**2
CHUNK = 64 * 1024
SMALL = 4096
#: Bound on waiting for the target to have dealt with what a release delivered.
QUIET_TIMEOUT = 20.0


@pytest.fixture(scope="module")
def rig() -> Iterator[Rig]:
    manager = RigManager()
    name = unique_rig_name("fnc")
    try:
        yield manager.up(name=name, paths=2, size=SIZE)
    finally:
        manager.down(name)


@pytest.fixture
def clean_rig(rig: Rig) -> Iterator[Rig]:
    """The module's rig with a zeroed span, every fault undone afterwards."""
    with open(rig.lun.backing_file, "r+b") as backing:
        backing.write(bytes(SPAN))
    yield rig
    manager = RigManager()
    for index in (1, 2):
        manager.fault(rig.name, index, "clear")


def backing(rig: Rig, length: int = SPAN) -> bytes:
    with open(rig.lun.backing_file, "rb") as file:
        return file.read(length)


def digest(rig: Rig) -> str:
    return hashlib.sha256(backing(rig, SIZE)).hexdigest()


def target_connections(rig: Rig, index: int) -> list[str]:
    """TCP connections the target still has from path ``index``'s initiator address."""
    path = rig.path(index)
    out = subprocess.run(
        ["ss", "-Htn", "-N", rig.namespace, "state", "all", "dst", path.host_ip],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [line for line in out.splitlines() if line.split()[0] not in ("TIME-WAIT", "CLOSED")]


def wait_target_quiet(rig: Rig, index: int) -> None:
    """Wait until the target has no connection from path ``index`` left.

    Held packets are delivered in order: data first, then the reset the initiator sent
    when it gave up on the path. Once the target has no connection from that address,
    it has read (or refused) everything the release delivered.
    """
    deadline = time.monotonic() + QUIET_TIMEOUT
    while connections := target_connections(rig, index):
        assert time.monotonic() < deadline, f"target still has {connections}"
        time.sleep(0.05)  # polling ss: the kernel offers no event for a closed socket


def held_bytes(rig: Rig, index: int) -> int:
    """Bytes waiting in path ``index``'s host-end queue (writes on their way out)."""
    out = subprocess.run(
        ["tc", "-s", "-j", "qdisc", "show", "dev", rig.path(index).host_if, "root"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return sum(int(q.get("backlog", 0)) for q in json.loads(out or "[]"))


def wait_held(rig: Rig, index: int) -> None:
    """Wait until path ``index``'s host end holds packets (the write is in the queue)."""
    deadline = time.monotonic() + QUIET_TIMEOUT
    while True:
        out = subprocess.run(
            ["tc", "-s", "-j", "qdisc", "show", "dev", rig.path(index).host_if, "root"],
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
        if sum(int(q.get("qlen", 0)) for q in json.loads(out or "[]")) > 0:
            return
        assert time.monotonic() < deadline, "nothing entered the held queue"
        time.sleep(0.02)  # polling tc: no event for a packet entering a qdisc


def wait_for_change(rig: Rig, before: bytes) -> bytes:
    deadline = time.monotonic() + QUIET_TIMEOUT
    while (now := backing(rig)) == before:
        assert time.monotonic() < deadline, "the held write never landed"
        time.sleep(0.05)  # polling a file the target writes from another process
    return now


async def _held_write(rig: Rig, fence: bool) -> None:
    """One 4 KiB write on a held path 1, its session reset; fenced through path 2 or not."""
    manager = RigManager()
    first = IscsiTransport(rig.urls[0])
    await first.connect()
    await first.prepare_fence()  # learns its portal group, as the device does after login
    try:
        await asyncio.to_thread(manager.fault, rig.name, 1, "hold")
        write = asyncio.ensure_future(first.execute(cdb.write16(0, 8), data_out=b"\xab" * 4096))
        await asyncio.to_thread(wait_held, rig, 1)
        assert not write.done()
        assert backing(rig, 4096) == bytes(4096)
        await first.close()  # what mpath does to a failed path: reset, nothing more
        with pytest.raises(Exception, match="session closed"):
            await write
        if fence:
            second = IscsiTransport(rig.urls[1])
            await first.fence(second)
    finally:
        await first.close()


def test_the_rig_delivers_a_held_write_late_without_a_fence(clean_rig: Rig) -> None:
    asyncio.run(asyncio.wait_for(_held_write(clean_rig, fence=False), 30))
    RigManager().fault(clean_rig.name, 1, "release")
    landed = wait_for_change(clean_rig, bytes(SPAN))
    assert landed[:4096] == b"\xab" * 4096  # the stale write reached the LUN


def test_session_reinstatement_through_another_portal_stops_the_held_write(
    clean_rig: Rig,
) -> None:
    asyncio.run(asyncio.wait_for(_held_write(clean_rig, fence=True), 30))
    # The target closed the held session's connection at the fencing login.
    states = [line.split()[0] for line in target_connections(clean_rig, 1)]
    assert "ESTAB" not in states, states
    RigManager().fault(clean_rig.name, 1, "release")
    wait_target_quiet(clean_rig, 1)
    assert backing(clean_rig) == bytes(SPAN)


async def _bench_with_hold(rig: Rig, policy: str) -> tuple[dict[str, object], list[int], int]:
    """4 KiB random writes while path 1 holds everything sent on it.

    The hold starts before the writes, with both sessions idle: the first writes on
    path 1 then leave in TCP's initial window as whole commands, which is what makes a
    stale write possible (on a busy path a hold catches mostly parts of commands).
    """
    device = await MultipathDevice.open(rig.urls, DeviceSettings(policy=policy))
    try:
        await asyncio.to_thread(RigManager().fault, rig.name, 1, "hold")
        spec = BenchSpec(
            rw="randwrite",
            block_size=SMALL,
            queue_depth=16,
            seconds=3.0,
            span=SPAN,
            verify=True,
            seed=11,
        )
        run = BenchRun(device, spec)
        result = (await run.run()).describe()
        return result, list(run.generations), run.run_id
    finally:
        await device.close()


@pytest.mark.parametrize("policy", ["round-robin", "share", "quota"])
def test_held_writes_never_land_after_failover(clean_rig: Rig, policy: str) -> None:
    rig = clean_rig
    result, generations, run_id = asyncio.run(asyncio.wait_for(_bench_with_hold(rig, policy), 90))
    assert result["errors"] == 0, result["first_error"]
    assert result["verify_mismatches"] == 0, result["mismatch_examples"]
    assert int(str(result["failovers"])) >= 1, result["paths"]
    assert int(str(result["fences"])) >= 1, result["paths"]
    latency = result["latency_ms"]
    assert isinstance(latency, dict) and latency["max"] < 1000, latency
    # Whole write commands wait in the network (several 4 KiB writes, with headers).
    assert held_bytes(rig, 1) > 4 * SMALL
    before = digest(rig)
    RigManager().fault(rig.name, 1, "release")
    wait_target_quiet(rig, 1)
    assert digest(rig) == before, "a held write changed the LUN after the run"
    on_disk = backing(rig)
    sectors = SMALL // pattern.SECTOR
    for chunk, generation in enumerate(generations):
        if generation:
            data = on_disk[chunk * SMALL : (chunk + 1) * SMALL]
            assert not pattern.check(data, chunk * sectors, generation, run_id), chunk


@pytest.mark.skipif(shutil.which("fio") is None, reason="fio not installed (make setup)")
def test_serve_with_fio_verify_and_a_held_path_leaves_the_lun_unchanged_after_release(
    clean_rig: Rig, tmp_path: Path
) -> None:
    rig = clean_rig
    sock = tmp_path / "nbd.sock"
    serve = subprocess.Popen(
        [sys.executable, "-m", "mpath", "serve", *rig.urls, "--listen", f"unix:{sock}",
         "--policy", "share", "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert serve.stdout is not None
        uri = read_json_document(serve.stdout)["uri"]
        RigManager().fault(rig.name, 1, "hold")  # writes on path 1 are held from now on
        fio = subprocess.run(
            ["fio", "--name=held", "--ioengine=nbd", f"--uri={uri}", "--rw=randwrite",
             "--bs=64k", f"--size={SPAN * 4}", "--iodepth=16", "--verify=crc32c",
             "--verify_fatal=1", "--do_verify=1", "--verify_state_save=0",
             "--output-format=json"],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert fio.returncode == 0, fio.stderr + fio.stdout[-3000:]
        job = json.loads(fio.stdout[fio.stdout.index("{") :])["jobs"][0]
        assert job["error"] == 0 and job["write"]["io_bytes"] == SPAN * 4, job
    finally:
        serve.send_signal(signal.SIGTERM)
        try:
            _, err = serve.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            serve.kill()
            _, err = serve.communicate()
    assert serve.returncode == 0, err
    assert "fenced" in err or "failed" in err, err  # path 1 was failed while holding writes
    before = digest(rig)
    RigManager().fault(rig.name, 1, "release")
    wait_target_quiet(rig, 1)
    assert digest(rig) == before, "a held write changed the LUN after mpath serve stopped"


def read_json_document(stream: IO[str]) -> dict[str, Any]:
    """The first JSON document on ``stream`` (mpath prints it indented, over lines)."""
    text = ""
    for line in stream:
        text += line
        try:
            document: dict[str, Any] = json.loads(text)
        except json.JSONDecodeError:
            continue
        return document
    raise AssertionError(f"no JSON document on the stream: {text!r}")


async def _unfenceable(rig: Rig) -> tuple[float, BaseException | None]:
    """Path 1 holds its packets and path 2 goes down at once: no fence can be made."""
    settings = DeviceSettings(policy="failover", fence_timeout=1.0, no_path_retry=5.0)
    device = await MultipathDevice.open(rig.urls, settings)
    manager = RigManager()
    try:
        await device.write(0, b"\1" * CHUNK)  # path 1 (failover's first) is in use
        await asyncio.to_thread(manager.fault, rig.name, 1, "hold")
        await asyncio.to_thread(manager.fault, rig.name, 2, "down")
        started = time.monotonic()
        error: BaseException | None = None
        try:
            await asyncio.wait_for(device.write(CHUNK, b"\2" * CHUNK), 30)
        except FenceTimeoutError as exc:
            error = exc
        return time.monotonic() - started, error
    finally:
        await device.close()


def test_a_write_that_cannot_be_fenced_fails_clearly_instead_of_being_reissued(
    clean_rig: Rig,
) -> None:
    elapsed, error = asyncio.run(asyncio.wait_for(_unfenceable(clean_rig), 60))
    assert isinstance(error, FenceTimeoutError), error
    message = str(error)
    assert clean_rig.urls[0] in message and "fence_timeout=1" in message, message
    # Path 2 was down too: the fence through it found that out (and failed path 2).
    assert "no working path to carry the fence" in message, message
    assert 1.0 <= elapsed < 6.0, elapsed  # stall detection + fence_timeout, then the error
