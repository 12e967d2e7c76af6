"""What the daemon tests share: a daemon process run as an operator runs it, fio, scrapes."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mpath.daemon.control import request

NOBODY = 65534


@dataclass
class Running:
    process: subprocess.Popen[str]
    directory: Path
    config: Path
    ready: dict[str, Any]
    base_config: str
    rig_urls: dict[str, list[str]] = field(default_factory=dict)

    @property
    def socket(self) -> Path:
        return Path(self.ready["control_socket"])

    def ctl(self, *words: str) -> Any:
        return request(self.socket, list(words), timeout=60)

    def cli(self, *args: str, user: int | None = None) -> subprocess.CompletedProcess[str]:
        prefix = [] if user is None else ["setpriv", f"--reuid={user}", f"--regid={user}",
                                          "--clear-groups"]  # fmt: skip
        return subprocess.run(
            [*prefix, sys.executable, "-m", "mpath", "ctl", "--socket", str(self.socket), *args],
            capture_output=True,
            text=True,
            timeout=60,
        )

    def policy_of(self, rig: str) -> str | None:
        """The policy of the rig's map, None while it is not there (being reopened)."""
        urls = set(self.rig_urls[rig])
        for entry in self.ctl("show", "maps"):
            if {p["url"] for p in entry["paths"]} == urls:
                return str(entry["policy"])
        return None

    def map_of(self, rig: str) -> dict[str, Any]:
        urls = set(self.rig_urls[rig])
        (found,) = [m for m in self.ctl("show", "maps") if {p["url"] for p in m["paths"]} == urls]
        return found  # type: ignore[no-any-return]


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> float:
    """Poll ``predicate`` (state of another process) until true; seconds it took."""
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.05)
    return time.monotonic() - start


def read_ready(process: subprocess.Popen[str]) -> dict[str, Any]:
    """The daemon's ready document (one JSON document on stdout)."""
    assert process.stdout is not None
    text = ""
    while True:
        line = process.stdout.readline()
        if not line:
            raise AssertionError(f"daemon exited before it was ready: {process.wait()}")
        text += line
        try:
            document: dict[str, Any] = json.loads(text)
        except ValueError:
            continue
        return document


def start_daemon(directory: Path, config_text: str) -> Running:
    """``mpath daemon --config FILE --json`` in a child process, once it is ready."""
    config = directory / "mpath.toml"
    config.write_text(config_text)
    with (directory / "daemon.log").open("w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "mpath", "daemon", "--config", str(config), "--json"],
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
        )
    try:
        ready = read_ready(process)
    except BaseException:
        stop_daemon(process)
        raise
    return Running(process, directory, config, ready, config_text)


def stop_daemon(process: subprocess.Popen[str]) -> int:
    """SIGTERM, as systemd stops it; its exit code (killed if it hangs)."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    if process.stdout is not None:
        process.stdout.close()
    return process.returncode


def fio(uri: str, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        ["fio", "--name=d", "--ioengine=nbd", f"--uri={uri}", "--bs=4k", "--iodepth=16",
         "--output-format=json", *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def stop_fio(*jobs: subprocess.Popen[str]) -> None:
    """Kill the fio jobs still running (a test's ``finally``: a failed check must not
    leave fio writing to an export the fixture is about to stop)."""
    for job in jobs:
        if job.poll() is None:
            job.kill()
            job.communicate()


def fio_result(process: subprocess.Popen[str], timeout: float = 120) -> dict[str, Any]:
    out, err = process.communicate(timeout=timeout)
    assert process.returncode == 0, f"fio exit {process.returncode}: {err}{out[-2000:]}"
    job: dict[str, Any] = json.loads(out[out.index("{") :])["jobs"][0]
    return job


VERIFY = ["--rw=randwrite", "--size=32M", "--verify=crc32c", "--verify_fatal=1",
          "--do_verify=1", "--verify_state_save=0", "--rate=8m"]  # fmt: skip


def path_row(running: Running, name: str) -> dict[str, Any]:
    (row,) = [p for p in running.ctl("show", "paths") if p["name"] == name]
    return row  # type: ignore[no-any-return]


def scrape(daemon: Running) -> str:
    with urllib.request.urlopen(daemon.ready["metrics"], timeout=10) as answer:
        return str(answer.read().decode())


def path_bytes(text: str) -> dict[str, float]:
    found = {}
    for line in text.splitlines():
        if line.startswith("mpath_path_bytes_total{"):
            labels, value = line.rsplit(" ", 1)
            found[labels] = float(value)
    return found
