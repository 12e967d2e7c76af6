"""A multipath device whose paths are grouped by priority, looked up by URL.

Tests name priorities per URL; the device takes them per path in path order
(``DeviceSettings.priorities``). :func:`grouped_device` bridges the two.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from mpath.filter.device import MultipathDevice
from mpath.settings import DeviceSettings
from mpath.transports.base import Transport


def grouped_device(priorities: Mapping[str, int]) -> type[MultipathDevice]:
    """A MultipathDevice class whose paths are grouped by ``priorities`` (URL -> prio)."""

    class GroupedDevice(MultipathDevice):
        def __init__(
            self,
            transports: Sequence[Transport],
            settings: DeviceSettings | None = None,
            **kwargs: Any,
        ) -> None:
            per_path = tuple(priorities.get(t.url, 0) for t in transports)
            grouped = dataclasses.replace(settings or DeviceSettings(), priorities=per_path)
            super().__init__(transports, grouped, **kwargs)

    return GroupedDevice
