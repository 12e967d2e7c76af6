"""A multipath device with priority groups, for tests until the device has them itself.

``MultipathDevice`` builds a plain selector (``create_selector(settings.policy)``) and
adds every path with no priority. These tests need two priority groups through the
real device, so :func:`grouped_device` swaps in :class:`PriorityGroups` the moment the
device builds its selector, giving each path the priority its URL maps to. This is a
test stand-in for the device change asked for in docs/checkers.md ("Priority groups
in the device"); it reaches into the device's private selector on purpose.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from mpath.filter.device import MultipathDevice
from mpath.filter.lun import LunInfo
from mpath.filter.path import Path
from mpath.selectors.groups import PriorityGroups


class _GroupsByUrl(PriorityGroups[Path]):
    """PriorityGroups that looks each path's priority up by its URL."""

    def __init__(self, priorities: Mapping[str, int], **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self._priorities = dict(priorities)

    def add_path(self, path: Path, args: Sequence[str] = (), priority: int | None = None) -> None:
        chosen = self._priorities.get(path.url, 0) if priority is None else priority
        super().add_path(path, args, chosen)


def grouped_device(priorities: Mapping[str, int]) -> type[MultipathDevice]:
    """A MultipathDevice class whose paths are grouped by ``priorities`` (URL -> prio)."""

    class GroupedDevice(MultipathDevice):
        def _apply_lun_limits(self, info: LunInfo) -> None:
            super()._apply_lun_limits(info)
            self._selector = _GroupsByUrl(
                priorities,
                policy=self.settings.policy,
                clock=self._clock,
                max_commands=self.max_commands,
            )

    return GroupedDevice
