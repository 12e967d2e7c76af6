"""Fixtures of the CLI tests.

Every CLI test leaves the ``mpath`` logger as it found it: the command line gives that
logger its own stderr handler and level (-v); tests elsewhere capture its records
through the root logger, which must still see them. ``chap_rig`` is a rig whose
target demands CHAP.
"""

from __future__ import annotations

import logging
import subprocess
from collections.abc import Iterator

import pytest

from mpath.rig import Rig
from tests.conftest import RigFactory


@pytest.fixture(autouse=True)
def _restore_mpath_logger() -> Iterator[None]:
    logger = logging.getLogger("mpath")
    saved = (logger.level, logger.propagate, list(logger.handlers))
    yield
    logger.setLevel(saved[0])
    logger.propagate = saved[1]
    logger.handlers[:] = saved[2]


def _tgtadm(rig: Rig, *args: str) -> None:
    subprocess.run(
        ["tgtadm", "-C", str(rig.control_port), "--lld", "iscsi", "--mode", "account", *args],
        check=True,
        capture_output=True,
        timeout=30,
    )


@pytest.fixture
def chap_rig(make_rig: RigFactory) -> Iterator[Rig]:
    """A 1-path rig whose target demands CHAP (user 'host1') and answers mutual CHAP
    as 'array1'; tgt accounts are set here, not in the rig code."""
    rig = make_rig(paths=1, size=16 * 1024 * 1024)
    _tgtadm(rig, "--op", "new", "--user", "host1", "--password", "initiator-secret-1")
    _tgtadm(rig, "--op", "bind", "--tid", "1", "--user", "host1")
    _tgtadm(rig, "--op", "new", "--user", "array1", "--password", "target-secret-22")
    _tgtadm(rig, "--op", "bind", "--tid", "1", "--user", "array1", "--outgoing")
    yield rig
