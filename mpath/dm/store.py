"""The measurement store: what mpath last measured about each path, on disk.

``mpath prio`` must answer in a fraction of a second, too little to measure a path's
throughput, so throughput is measured beforehand (``mpath dm-config`` records every
path it measures; other commands can record through :meth:`MeasurementStore.record`)
and read back here. The file is small JSON, one record per path:

.. code-block:: json

    {
      "version": 1,
      "paths": {
        "iscsi://198.18.1.2/iqn.2026-11.org.mpath:rig.a/1": {
          "wwid": "36001405...",
          "health": "up",
          "mb_per_s": 47.3,
          "latency_ms": 5.21,
          "ios": 1130,
          "errors": 0,
          "seconds": 3.0,
          "measured_at": 1764000000.0,
          "source": "dm-config"
        },
        "sdb": {"...": "..."}
      }
    }

Keys are canonical iSCSI URLs (default port omitted) or kernel block-device names
(``sdb``). ``measured_at`` is Unix time in seconds. The file lives at
``/var/lib/mpath/paths.json`` unless ``$MPATH_MEASUREMENTS`` names another.

Writers take an exclusive ``flock`` on a sidecar lock file, merge their records into
what is there, and replace the file atomically (write, fsync, rename), so a reader
(the prio callout, possibly run by multipathd for many paths at once) never sees half
a file and needs no lock. A missing or damaged file reads as empty: a prioritizer must
still answer.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import math
import os
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from mpath.dm.prio import Health

log = logging.getLogger(__name__)

DEFAULT_STORE = Path("/var/lib/mpath/paths.json")
STORE_ENV = "MPATH_MEASUREMENTS"
FORMAT_VERSION = 1
#: Measurements older than this are ignored by default (seconds): a day-old benchmark
#: still says which link is faster, an older one may describe another network.
DEFAULT_MAX_AGE = 24 * 3600.0


def store_path(environ: Mapping[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    return Path(env.get(STORE_ENV) or DEFAULT_STORE)


@dataclass(frozen=True, slots=True)
class Measurement:
    """One path's measurement. Speeds and latencies are None when not measured."""

    path: str
    health: Health
    wwid: str | None = None
    mb_per_s: float | None = None
    latency_ms: float | None = None
    ios: int = 0
    errors: int = 0
    seconds: float = 0.0
    measured_at: float = 0.0
    source: str = ""

    @property
    def error_ratio(self) -> float:
        total = self.ios + self.errors
        return self.errors / total if total else 0.0

    def is_fresh(self, now: float, max_age: float) -> bool:
        return 0 <= now - self.measured_at <= max_age

    def to_json(self) -> dict[str, Any]:
        document = asdict(self)
        del document["path"]
        document["health"] = self.health.value
        return document

    @classmethod
    def from_json(cls, path: str, document: object) -> Measurement | None:
        """The record, or None when it is malformed (it is then ignored)."""
        if not isinstance(document, dict):
            return None
        try:
            return cls(
                path=path,
                health=Health(document.get("health", "unknown")),
                wwid=_optional(document.get("wwid"), str),
                mb_per_s=_optional_number(document.get("mb_per_s")),
                latency_ms=_optional_number(document.get("latency_ms")),
                ios=_count(document.get("ios", 0)),
                errors=_count(document.get("errors", 0)),
                seconds=_optional_number(document.get("seconds", 0.0)) or 0.0,
                measured_at=_optional_number(document.get("measured_at", 0.0)) or 0.0,
                source=_optional(document.get("source", ""), str) or "",
            )
        except (TypeError, ValueError):
            return None


def _optional(value: object, kind: type[str]) -> str | None:
    if value is None:
        return None
    if not isinstance(value, kind):
        raise TypeError(f"expected {kind.__name__}")
    return value


def _optional_number(value: object) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError("expected a number")
    number = float(value)
    if not math.isfinite(number) or number < 0:
        raise ValueError("expected a finite number >= 0")
    return number


def _count(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise TypeError("expected a count")
    return value


class MeasurementStore:
    """The JSON file of path measurements (see the module docstring)."""

    def __init__(self, file: Path | str | None = None) -> None:
        self.file = Path(file) if file is not None else store_path()

    def load(self) -> dict[str, Measurement]:
        """Every valid record by path key; {} when the file is missing or damaged."""
        try:
            text = self.file.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {}
        except (OSError, UnicodeDecodeError) as exc:
            log.warning("cannot read measurements from %s: %s", self.file, exc)
            return {}
        try:
            document = json.loads(text)
        except json.JSONDecodeError as exc:
            log.warning("ignoring damaged measurement file %s: %s", self.file, exc)
            return {}
        paths = document.get("paths") if isinstance(document, dict) else None
        if not isinstance(paths, dict):
            return {}
        records: dict[str, Measurement] = {}
        for key, value in paths.items():
            record = Measurement.from_json(str(key), value)
            if record is not None:
                records[record.path] = record
        return records

    def get(self, key: str) -> Measurement | None:
        return self.load().get(key)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.file.parent.mkdir(parents=True, exist_ok=True)
        lock_file = self.file.with_name(self.file.name + ".lock")
        with open(lock_file, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def try_record(self, measurements: Iterable[Measurement]) -> bool:
        """:meth:`record`, but a store that cannot be written (read-only /var, no
        permission) only logs a warning: the measurement was still useful now."""
        try:
            self.record(measurements)
        except OSError as exc:
            log.warning("cannot record measurements in %s: %s", self.file, exc.strerror or exc)
            return False
        return True

    def record(self, measurements: Iterable[Measurement]) -> None:
        """Merge ``measurements`` into the file (newer records replace older ones)."""
        new = list(measurements)
        if not new:
            return
        with self._locked():
            records = self.load()
            for measurement in new:
                old = records.get(measurement.path)
                if old is None or old.measured_at <= measurement.measured_at:
                    records[measurement.path] = measurement
            document = {
                "version": FORMAT_VERSION,
                "paths": {key: records[key].to_json() for key in sorted(records)},
            }
            fd, temporary = tempfile.mkstemp(prefix=".paths.", dir=self.file.parent)
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as out:
                    json.dump(document, out, indent=2)
                    out.write("\n")
                    out.flush()
                    os.fsync(out.fileno())
                os.chmod(temporary, 0o644)
                os.replace(temporary, self.file)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(temporary)
                raise
