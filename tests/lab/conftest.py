"""Lab tests: they run inside the lab VM, all of them in one boot (see relay.py).

On the host each ``lab`` item only reports what the guest ran; in the guest
(``MPATH_LAB_GUEST=1``) they run for real, as root, on the guest kernel's LIO, SCSI,
dm-multipath and NBD.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from mpath.rig import Rig, RigManager
from tests.conftest import unique_rig_name
from tests.lab import relay


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    relay.mark_host_items(items)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> bool | None:
    return True if relay.relay(item, nextitem) else None


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    relay.record(report)


@pytest.fixture(scope="module")
def lio_rig() -> Iterator[Rig]:
    """A 2-path LIO rig (64 MiB LUN) shared by one test module; always removed."""
    manager = RigManager()
    name = unique_rig_name("lab")
    try:
        yield manager.up(name=name, paths=2, size=64 * 1024**2, backend="lio")
    finally:
        manager.down(name)
