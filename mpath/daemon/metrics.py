"""Prometheus metrics of the daemon's maps and paths (docs/daemon.md lists the names).

The exposition is made by prometheus_client (text format 0.0.4) from a collector that
reads the same in-memory views as ``mpath ctl show``. It is served on the daemon's own
event loop, not in prometheus_client's HTTP thread: a scrape then sees the devices
between two I/O completions, never in the middle of an update, and needs no locks.

Per-path throughput is ``rate(mpath_path_bytes_total[...])``; the counters are the
filter layer's own (bytes the target acknowledged on that path), and so is the latency
histogram (:mod:`mpath.filter.latency`): its buckets are counted on each completion,
and only read here, hence a custom collector rather than a prometheus_client
``Histogram`` (which would count a second time, under a lock, on the I/O path).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

from mpath.daemon import views
from mpath.daemon.config import MetricsAddress
from mpath.daemon.service import Daemon
from mpath.errors import UsageError
from mpath.scsi.states import CheckerState

log = logging.getLogger(__name__)
PATH_LABELS = ["map", "path", "url"]


#: Per-path metrics: name (counters get ``_total``), kind, help, ``show paths`` key.
PATH_METRICS: tuple[tuple[str, str, str, str], ...] = (
    ("mpath_path_up", "gauge", "1 while the path carries I/O (active).", "up"),
    ("mpath_path_admin_held", "gauge", "1 while failed by the administrator.", "held_by_admin"),
    ("mpath_path_priority", "gauge", "Priority (group) of the path.", "priority"),
    ("mpath_path_share", "gauge", "The selector's current share of the path (0-1).", "share"),
    ("mpath_path_in_flight", "gauge", "Commands in flight on the path.", "in_flight"),
    ("mpath_path_latency_seconds", "gauge", "Smoothed command latency of the path.", "latency"),
    ("mpath_path_ios", "counter", "Commands completed on the path.", "ios"),
    ("mpath_path_bytes", "counter", "Bytes read and written through the path.", "bytes"),
    ("mpath_path_reads", "counter", "Commands completed on the path that read data.", "reads"),
    ("mpath_path_read_bytes", "counter", "Bytes read through the path.", "read_bytes"),
    ("mpath_path_writes", "counter", "Commands completed on the path that wrote data.", "writes"),
    ("mpath_path_written_bytes", "counter", "Bytes written through the path.", "written_bytes"),
    ("mpath_path_errors", "counter", "Commands that failed on the path.", "errors"),
    ("mpath_path_failures", "counter", "Times the path was failed.", "failures"),
)
#: Per-map metrics, from ``show stats`` keys.
MAP_METRICS: tuple[tuple[str, str, str, str], ...] = (
    ("mpath_map_ios", "counter", "Commands completed on the map.", "ios"),
    ("mpath_map_read_bytes", "counter", "Bytes read from the map.", "bytes_read"),
    ("mpath_map_written_bytes", "counter", "Bytes written to the map.", "bytes_written"),
    ("mpath_map_errors", "counter", "I/Os that failed to the caller.", "errors"),
    ("mpath_map_path_faults", "counter", "Path failures (failovers) on the map.", "failovers"),
    ("mpath_map_retries", "counter", "Commands reissued on another path.", "retries"),
    ("mpath_map_fences", "counter", "Failed paths fenced.", "fences"),
    ("mpath_map_unfenced_reissues", "counter",
     "Writes of a path no method could fence, reissued unfenced.", "unfenced_reissues"),
    ("mpath_map_lun_stalls", "counter",
     "Stalls of every path at once, blamed on the LUN (no path failed).", "lun_stalls"),
    ("mpath_map_queueing_seconds", "counter",
     "Seconds I/O waited with no usable path (multipathd's total_q_time).", "queueing_seconds"),
    ("mpath_map_fail_io", "counter",
     "Times the map began failing I/O for want of a path (multipathd's q_timeouts).", "fail_io"),
    ("mpath_map_table_loads", "counter", "Times the map was opened (start, reload).",
     "table_loads"),
    ("mpath_map_group_switches", "counter", "Path groups switched by 'ctl switchgroup'.",
     "group_switches"),
    ("mpath_map_resizes", "counter", "Times 'ctl resize map' found the LUN grown.", "resizes"),
    ("mpath_map_paths_up", "gauge", "Paths carrying I/O.", "paths_up"),
    ("mpath_map_paths", "gauge", "Paths of the map.", "paths_total"),
    ("mpath_map_size_bytes", "gauge", "Size of the LUN.", "size_bytes"),
    ("mpath_map_nbd_clients", "gauge", "NBD clients connected.", "clients"),
)  # fmt: skip
MAP_LABELS = ["map", "wwid"]


def _family(
    name: str, kind: str, text: str, labels: list[str]
) -> CounterMetricFamily | GaugeMetricFamily:
    if kind == "counter":
        return CounterMetricFamily(name, text, labels=labels)
    return GaugeMetricFamily(name, text, labels=labels)


def _path_value(row: dict[str, Any], key: str) -> float | None:
    if key == "up":
        return 1.0 if row["state"] == "active" else 0.0
    if key == "latency":
        return float(row["latency_ms"]) / 1000.0
    value = row[key]
    return None if value is None else float(value)


def _le(bound: float) -> str:
    """A bucket bound as Prometheus writes it: ``0.0005``, ``1.0``, ``+Inf``."""
    return "+Inf" if bound == float("inf") else repr(bound)


class DaemonCollector(Collector):
    """Every metric, computed at scrape time from the daemon's state."""

    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon

    def collect(self) -> Iterator[Metric]:
        paths = {name: _family(name, kind, text, PATH_LABELS)
                 for name, kind, text, _ in PATH_METRICS}  # fmt: skip
        checker = GaugeMetricFamily(
            "mpath_path_checker_state",
            "The path checker's last verdict (1 for the current state).",
            labels=[*PATH_LABELS, "state"],
        )
        latency = HistogramMetricFamily(
            "mpath_path_command_latency_seconds",
            "Latency of each command completed on the path (fixed buckets).",
            labels=PATH_LABELS,
        )
        maps = {name: _family(name, kind, text, MAP_LABELS)
                for name, kind, text, _ in MAP_METRICS}  # fmt: skip
        for entry in self.daemon.maps.values():
            labels = [entry.name, entry.wwid]
            stats = views.stats_row(entry)
            stats["size_bytes"] = entry.device.size_bytes
            stats["clients"] = entry.clients
            for name, _, _, key in MAP_METRICS:
                maps[name].add_metric(labels, float(stats[key]))
            for row in views.path_rows(entry):
                values = [entry.name, str(row["index"]), row["url"]]
                for name, _, _, key in PATH_METRICS:
                    value = _path_value(row, key)
                    if value is not None:
                        paths[name].add_metric(values, value)
                for state in CheckerState:
                    checker.add_metric([*values, state.value], 1 if row["checker"] == state else 0)
            for path in entry.device.path_objects:
                histogram = path.histogram
                latency.add_metric(
                    [entry.name, str(path.index), path.url],
                    [(_le(bound), count) for bound, count in histogram.cumulative()],
                    histogram.sum,
                )
        yield from paths.values()
        yield latency
        yield checker
        yield from maps.values()
        reloads = CounterMetricFamily("mpath_daemon_reloads", "Reconfigurations applied.")
        reloads.add_metric([], self.daemon.reloads)
        yield reloads
        count = GaugeMetricFamily("mpath_daemon_maps", "Maps the daemon owns.")
        count.add_metric([], len(self.daemon.maps))
        yield count


class MetricsServer:
    """A minimal HTTP/1.0 endpoint on the event loop: ``GET /metrics`` (or ``/``)."""

    def __init__(self, daemon: Daemon, address: MetricsAddress) -> None:
        self.address = address
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(DaemonCollector(daemon))
        self._server: asyncio.Server | None = None
        self.port = address.port

    def exposition(self) -> bytes:
        return generate_latest(self.registry)

    async def start(self) -> None:
        try:
            self._server = await asyncio.start_server(
                self._handle, host=self.address.host, port=self.address.port
            )
        except OSError as exc:
            raise UsageError(
                f"cannot serve metrics on {self.address}: {exc.strerror or exc}"
            ) from None
        self.port = int(self._server.sockets[0].getsockname()[1])
        log.info("metrics at http://%s:%d/metrics", self.address.host, self.port)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await asyncio.wait_for(reader.readline(), 5)
            while (await asyncio.wait_for(reader.readline(), 5)) not in (b"\r\n", b"\n", b""):
                pass  # headers: none matter
            parts = request.decode("latin-1").split()
            if (
                len(parts) >= 2
                and parts[0] == "GET"
                and parts[1].split("?")[0] in ("/", "/metrics")
            ):
                body = self.exposition()
                head = f"HTTP/1.0 200 OK\r\nContent-Type: {CONTENT_TYPE_LATEST}\r\n"
            else:
                body = b"only GET /metrics is served\n"
                head = "HTTP/1.0 404 Not Found\r\nContent-Type: text/plain\r\n"
            writer.write(f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body)
            await writer.drain()
        except (TimeoutError, ConnectionError, UnicodeError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
