"""The side-by-side benchmark's pure part: rows, spread, CPU per I/O and the table
(the measuring itself needs root and the real rig: ``make bench``)."""

from __future__ import annotations

from benchmarks.export_vs_qemu_nbd import BASELINE, SERVERS, _key, rows, table
from benchmarks.nbd_fio import WORKLOADS, Result


def test_rows_carry_mean_spread_and_cpu_per_server_and_the_table_their_ratios() -> None:
    read4k, seq = WORKLOADS[0], WORKLOADS[1]
    figures = {"qemu_nbd": (10_000, 12_000), "mpath_1path": (11_000, 13_000)}
    figures["mpath_2path"] = (12_000, 12_000)
    measured = {
        _key(read4k): {
            name: [
                Result(iops=v, server_cpu_us=20.0 + i, server_system_us=8.0 + i)
                for i, v in enumerate(values)
            ]
            for name, values in figures.items()
        },
        _key(seq): {
            name: [Result(iops=2000.0, server_cpu_us=50.0, path_failures=1)] for name in SERVERS
        },
    }
    document = rows(measured, (read4k, seq))
    first, second = document
    assert first["workload"] == "4 KiB random read" and first["unit"] == "IOPS"
    assert (first["qemu_nbd"], first["mpath_1path"], first["mpath_2path"]) == (
        11_000,
        12_000,
        12_000,
    )
    assert first["spread"]["qemu_nbd"] == [10_000, 12_000]
    assert first["server_cpu_us_per_io"]["mpath_1path"] == 20.5
    assert first["server_system_us_per_io"]["mpath_1path"] == 8.5
    assert second["server_system_us_per_io"] == {}
    assert second["unit"] == "MB/s" and second["qemu_nbd"] == round(2000 * 256 * 1024 / 1e6, 1)
    assert second["paths_failed_2path"] == 1
    lines = table(document)
    assert "1.09x" in lines[2] and "1.00x" in lines[2]  # 1 path / qemu-nbd, 2 / 1
    assert "20.5 / 20.5 / 20.5 | 8.5 / 8.5 / 8.5 |" in lines[2]
    assert lines[3].endswith("| - / - / - |")


def test_a_baseline_server_gets_its_own_column_and_cpu_figure() -> None:
    read4k = WORKLOADS[0]
    cpu = {"qemu_nbd": 22.0, "mpath_1path": 18.0, "mpath_2path": 19.0, BASELINE: 33.0}
    measured = {
        _key(read4k): {
            name: [Result(iops=10_000.0, server_cpu_us=value, server_system_us=6.0)]
            for name, value in cpu.items()
        }
    }
    document = rows(measured, (read4k,))
    assert document[0][BASELINE] == 10_000
    assert document[0]["server_cpu_us_per_io"][BASELINE] == 33.0
    header, rule, line = table(document)
    assert header.count("|") == rule.count("|") == line.count("|")
    assert (
        "baseline mpath serve, path 1" in header
        and "(qemu-nbd / 1 path / 2 paths / baseline)" in header
    )
    assert "| 22.0 / 18.0 / 19.0 / 33.0 | 6.0 / 6.0 / 6.0 / 6.0 |" in line
    # Without a baseline the table keeps its three servers.
    del measured[_key(read4k)][BASELINE]
    assert "baseline" not in table(rows(measured, (read4k,)))[0]
