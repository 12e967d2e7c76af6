"""Every CLI test leaves the ``mpath`` logger as it found it.

The command line gives that logger its own stderr handler and level (-v); tests
elsewhere capture its records through the root logger, which must still see them.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def _restore_mpath_logger() -> Iterator[None]:
    logger = logging.getLogger("mpath")
    saved = (logger.level, logger.propagate, list(logger.handlers))
    yield
    logger.setLevel(saved[0])
    logger.propagate = saved[1]
    logger.handlers[:] = saved[2]
