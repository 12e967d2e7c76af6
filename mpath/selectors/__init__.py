"""Path selectors: which path carries each I/O (docs/selectors.md).

Every policy is a :class:`~mpath.selectors.base.PathSelector`, registered here by its
kernel-style name. The filter layer and the simulator create them by name::

    selector = create_selector("service-time", clock=clock, max_commands=32)
    selector.add_path(path, ["0", "50"])

:class:`mpath.selectors.groups.PriorityGroups` layers priority path groups over any
policy (import it from its module; it builds on this registry).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from mpath.errors import UsageError
from mpath.selectors.base import (
    Clock,
    PathSelector,
    SelectorArgError,
    SelectorError,
    UnknownPathError,
)
from mpath.selectors.failover import FailoverSelector
from mpath.selectors.historical_service_time import HistoricalServiceTimeSelector
from mpath.selectors.least_blocks import LeastBlocksSelector
from mpath.selectors.queue_length import QueueLengthSelector
from mpath.selectors.quota import QuotaSelector
from mpath.selectors.round_robin import RoundRobinSelector
from mpath.selectors.service_time import ServiceTimeSelector
from mpath.selectors.share import ShareSelector
from mpath.selectors.weighted import WeightedSelector

DEFAULT_POLICY = "share"

_REGISTRY: dict[str, type[PathSelector[Any]]] = {
    cls.name: cls
    for cls in (
        QuotaSelector,
        ShareSelector,
        RoundRobinSelector,
        QueueLengthSelector,
        ServiceTimeSelector,
        HistoricalServiceTimeSelector,
        WeightedSelector,
        LeastBlocksSelector,
        FailoverSelector,
    )
}

SELECTOR_NAMES: tuple[str, ...] = tuple(_REGISTRY)
"""Every policy name, in the order the CLI contract lists them."""


class UnknownPolicyError(UsageError):
    """No selector is registered under that name."""

    def __init__(self, name: str) -> None:
        super().__init__(f"unknown policy {name!r} (choose from {', '.join(SELECTOR_NAMES)})")
        self.name = name


def selector_class(name: str) -> type[PathSelector[Any]]:
    """The selector class registered as ``name``."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UnknownPolicyError(name) from None


def create_selector(
    name: str,
    args: Sequence[str] = (),
    *,
    clock: Clock = time.monotonic,
    max_commands: int | None = None,
) -> PathSelector[Any]:
    """A new selector of policy ``name`` with its selector arguments."""
    return selector_class(name)(args, clock=clock, max_commands=max_commands)


def split_policy(text: str) -> tuple[str, tuple[str, ...]]:
    """``"share fill=bdp"`` -> ``("share", ("fill=bdp",))``: a policy written with its
    selector arguments, as a dm table line or a benchmark's ``--policy`` gives it."""
    name, *args = text.split() or [""]
    return name, tuple(args)


__all__ = [
    "DEFAULT_POLICY",
    "SELECTOR_NAMES",
    "Clock",
    "PathSelector",
    "SelectorArgError",
    "SelectorError",
    "UnknownPathError",
    "UnknownPolicyError",
    "create_selector",
    "selector_class",
    "split_policy",
]
