"""Run the ``lab`` tests of a host pytest session inside one lab VM boot.

On the host, the first ``lab`` test to run boots the VM once and runs every ``lab``
test selected in this session there (``pytest NODEIDS`` in the guest). The guest writes
one JSON line per test phase; each host item then reports its guest outcome as its own,
without setting up any fixture on the host. So ``pytest`` and ``make test`` list every
lab test by name, with the guest's failure text, for the cost of one boot.

Where the VM cannot start (no qemu, no kernel, no virtme-ng, or the guest never ran the
command) every lab test skips with that reason.
"""

from __future__ import annotations

import json
import os
import shlex
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pytest
from _pytest.reports import TestReport

from mpath.lab import LabUnavailableError, in_guest, lab_config, run_in_lab

#: Where the guest writes its per-phase outcomes (one JSON document per line).
REPORT_ENV = "MPATH_LAB_REPORT"
#: Deadline of the whole lab suite's boot; the host items' pytest-timeout is above it.
SUITE_TIMEOUT_S = 2400.0
PHASES: tuple[Literal["setup", "call", "teardown"], ...] = ("setup", "call", "teardown")
LOG_TAIL_LINES = 60

Outcome = Literal["passed", "failed", "skipped"]


@dataclass
class SuiteResult:
    """What the one boot produced for the session's lab tests."""

    skip_reason: str | None = None
    fail_reason: str | None = None
    phases: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)


_RESULT = pytest.StashKey[SuiteResult]()


def is_lab_item(item: pytest.Item) -> bool:
    return item.get_closest_marker("lab") is not None


def mark_host_items(items: list[pytest.Item]) -> None:
    """On the host, give lab items a pytest-timeout that covers the whole suite's boot."""
    if in_guest():
        return
    for item in items:
        if is_lab_item(item):
            item.add_marker(pytest.mark.timeout(SUITE_TIMEOUT_S + 300))


def _tail(path: Path) -> str:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    return "\n".join(lines[-LOG_TAIL_LINES:])


def _run_suite(session: pytest.Session) -> SuiteResult:
    nodeids = [item.nodeid for item in session.items if is_lab_item(item)]
    try:
        config = lab_config()
    except LabUnavailableError as exc:
        return SuiteResult(skip_reason=f"lab VM cannot start: {exc}")
    with tempfile.TemporaryDirectory(prefix="mpath-lab-suite-") as tmp:
        workdir = Path(tmp)
        report = workdir / "report.jsonl"
        log = workdir / "lab.log"
        command = " ".join(
            [
                "pytest",
                "-p",
                "no:cacheprovider",
                "-q",
                "-rfEs",
                "-o",
                "console_output_style=classic",
            ]
            + [shlex.quote(n) for n in nodeids]
        )
        started = time.monotonic()
        with log.open("wb") as sink:
            result = run_in_lab(
                command,
                config=config,
                cwd=Path(str(session.config.rootpath)),
                timeout=SUITE_TIMEOUT_S,
                stdout=sink,
                stderr=sink,
                env={REPORT_ENV: str(report)},
                workdir=workdir,
            )
        elapsed = time.monotonic() - started
        _announce(
            session,
            f"lab VM: {config.release} ({config.accel}), {len(nodeids)} tests in one boot, "
            f"{elapsed:.0f} s, guest pytest exit {result.returncode}",
        )
        if not result.started:
            return SuiteResult(
                skip_reason=f"lab VM cannot start: the guest never ran ({_tail(log)[-400:]})"
            )
        suite = SuiteResult()
        if report.exists():
            for line in report.read_text().splitlines():
                doc = json.loads(line)
                suite.phases.setdefault(doc["nodeid"], {})[doc["when"]] = doc
        if result.timed_out:
            suite.fail_reason = f"lab suite timed out after {SUITE_TIMEOUT_S:g} s"
        suite.fail_reason = (
            f"{suite.fail_reason or 'the guest reported no outcome for this test'} "
            f"(guest exit {result.returncode}); last lines of the lab log:\n{_tail(log)}"
        )
        return suite


def _announce(session: pytest.Session, text: str) -> None:
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line("")
        reporter.write_line(text)
    else:
        print(text, file=sys.stderr)


def relay(item: pytest.Item, nextitem: pytest.Item | None) -> bool:
    """Report ``item``'s outcome from the guest; True when it was handled here.

    A relayed item skips pytest's own setup and teardown, so the host-side collectors
    that earlier items set up (a lab package, a host test module) are torn down here as
    pytest's teardown would: without it, the first item after the lab finds them still
    on the setup stack and errors with "previous item was not torn down properly".
    """
    if in_guest() or not is_lab_item(item):
        return False
    config = item.config
    if _RESULT not in config.stash:
        config.stash[_RESULT] = _run_suite(item.session)
    suite = config.stash[_RESULT]
    ihook = item.ihook
    ihook.pytest_runtest_logstart(nodeid=item.nodeid, location=item.location)
    keywords: dict[str, Literal[1]] = {name: 1 for name in item.keywords}
    phases = suite.phases.get(item.nodeid, {})
    for when in PHASES:
        outcome: Outcome
        longrepr: Any = None
        duration = 0.0
        extra: dict[str, Any] = {}
        if suite.skip_reason is not None:
            if when != "setup":
                break
            outcome = "skipped"
            longrepr = (str(item.path), item.location[1] or 0, f"Skipped: {suite.skip_reason}")
        elif when in phases:
            doc = phases[when]
            outcome = doc["outcome"]
            duration = float(doc["duration"])
            if outcome == "skipped" and doc.get("wasxfail") is not None:
                extra["wasxfail"] = doc["wasxfail"]  # an expected failure, not a skip
                longrepr = doc["longrepr"]
            elif outcome == "skipped":
                longrepr = (str(item.path), item.location[1] or 0, doc["longrepr"])
            elif outcome == "failed":
                longrepr = doc["longrepr"]
        elif when == "setup" and not phases:
            outcome = "failed"
            longrepr = suite.fail_reason
        else:
            break
        report = TestReport(
            item.nodeid, item.location, keywords, outcome, longrepr, when,
            sections=[], duration=duration, start=0, stop=duration, user_properties=[],
            **extra,
        )  # fmt: skip
        ihook.pytest_runtest_logreport(report=report)
        if outcome != "passed" and when == "setup":
            break
    ihook.pytest_runtest_logfinish(nodeid=item.nodeid, location=item.location)
    item.session._setupstate.teardown_exact(nextitem)
    return True


def record(report: pytest.TestReport) -> None:
    """In the guest: append ``report``'s outcome to the host's report file."""
    target = os.environ.get(REPORT_ENV)
    if not target or not in_guest():
        return
    if report.skipped and isinstance(report.longrepr, tuple):
        longrepr = str(report.longrepr[2])
    else:
        longrepr = report.longreprtext
    doc = {
        "nodeid": report.nodeid,
        "when": report.when,
        "outcome": report.outcome,
        "duration": report.duration,
        "longrepr": longrepr,
        "wasxfail": getattr(report, "wasxfail", None),
    }
    with open(target, "a") as out:
        out.write(json.dumps(doc) + "\n")
