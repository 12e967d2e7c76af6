"""Persistent names for LUNs without an alias: WWID -> ``mpatha``, ``mpathb``, ...

multipathd keeps /etc/multipath/bindings so that a LUN keeps its name across restarts
and reboots (scripts and fstab refer to it). Here the bindings live in a JSON file (the
daemon's ``state_file``), rewritten atomically (temporary file, fsync, rename) every
time a name is handed out, so a crash leaves the old or the new file, never half of one.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import string
from pathlib import Path

from mpath.errors import UsageError

log = logging.getLogger(__name__)
PREFIX = "mpath"


def _suffix(number: int) -> str:
    """0 -> a, 25 -> z, 26 -> aa (multipathd's scheme)."""
    letters = ""
    number += 1
    while number:
        number, rest = divmod(number - 1, 26)
        letters = string.ascii_lowercase[rest] + letters
    return letters


class Bindings:
    """The WWID-to-name table, loaded from and saved to ``file``."""

    def __init__(self, file: Path) -> None:
        self.file = file
        self.names: dict[str, str] = {}
        try:
            document = json.loads(file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return
        except (OSError, ValueError) as exc:
            raise UsageError(f"{file}: cannot read the alias bindings: {exc}") from None
        bindings = document.get("bindings") if isinstance(document, dict) else None
        if not isinstance(bindings, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in bindings.items()
        ):
            raise UsageError(f"{file}: not an mpath bindings file (no 'bindings' table)")
        self.names = dict(bindings)

    def name_for(self, wwid: str, taken: set[str]) -> str:
        """The bound name of ``wwid``, binding (and saving) a new one if it has none.
        ``taken`` are names already in use by aliases, which a new binding avoids."""
        name = self.names.get(wwid)
        if name is not None:
            return name
        used = set(self.names.values()) | taken
        number = 0
        while f"{PREFIX}{_suffix(number)}" in used:
            number += 1
        name = self.names[wwid] = f"{PREFIX}{_suffix(number)}"
        self.save()
        log.info("bound %s to %s (in %s)", wwid, name, self.file)
        return name

    def save(self) -> None:
        """Write the file atomically: a crash leaves the old or the new one whole."""
        self.file.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.file.with_name(f".{self.file.name}.{os.getpid()}.tmp")
        data = json.dumps({"bindings": self.names}, indent=2, sort_keys=True) + "\n"
        try:
            with open(temporary, "w", encoding="utf-8") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, self.file)
        except OSError as exc:
            with contextlib.suppress(OSError):
                temporary.unlink()
            raise UsageError(f"{self.file}: cannot save the alias bindings: {exc}") from None
        with contextlib.suppress(OSError):
            directory = os.open(self.file.parent, os.O_RDONLY)
            try:
                os.fsync(directory)
            finally:
                os.close(directory)
