"""The ack-log checker: lost and misplaced writes found in a backing file."""

from __future__ import annotations

from pathlib import Path

from mpath.workload import acklog, pattern

RUN = 12345
BLOCK = 4096
SECTORS = BLOCK // pattern.SECTOR


def _image(tmp_path: Path, chunks: dict[int, int], offset: int = 0) -> Path:
    """A backing file holding generation ``chunks[c]`` at chunk c (0: never written)."""
    data = bytearray(offset + 16 * BLOCK)
    for chunk, generation in chunks.items():
        if generation:
            at = offset + chunk * BLOCK
            lba = at // pattern.SECTOR
            data[at : at + BLOCK] = pattern.fill(lba, SECTORS, generation, RUN)
    path = tmp_path / "lun.img"
    path.write_bytes(bytes(data))
    return path


def test_bench_log_newer_is_fine_older_or_missing_is_lost(tmp_path: Path) -> None:
    lines = [
        f"# mpath bench ack log v1 run_id={RUN} block_size={BLOCK} chunks=16",
        "W 1 1 1.0", "W 1 2 2.0",  # chunk 1 acknowledged at generation 2
        "W 2 1 3.0", "E 2 2 4.0 NoPathError",  # chunk 2: generation 2 failed (may land)
        "W 3 4 5.0",  # chunk 3 acknowledged at 4
        "W 4 1 6.0",  # chunk 4 acknowledged, never landed
        "R 5 0 7.0 NoPathError", "W 6 1",  # a failed read; a line cut by a kill
    ]  # fmt: skip
    record = acklog.parse_bench_log(lines)
    assert record.expected == {1: 2, 2: 1, 3: 4, 4: 1}
    assert [what for _, what in record.errors] == ["NoPathError", "NoPathError"]
    result = acklog.check_backing(record, _image(tmp_path, {1: 2, 2: 2, 3: 3, 4: 0}))
    assert (result.chunks_checked, result.lost_writes, result.mismatches) == (4, 2, 0)
    assert "chunk 3" in result.examples[0] and "chunk 4" in result.examples[1]


def test_data_of_another_sector_is_a_mismatch(tmp_path: Path) -> None:
    lines = [f"# mpath bench ack log v1 run_id={RUN} block_size={BLOCK} chunks=16", "W 1 1 1.0"]
    image = _image(tmp_path, {1: 1})
    data = bytearray(image.read_bytes())
    data[BLOCK : 2 * BLOCK] = pattern.fill(99 * SECTORS, SECTORS, 1, RUN)  # misdirected
    image.write_bytes(bytes(data))
    result = acklog.check_backing(acklog.parse_bench_log(lines), image)
    assert (result.lost_writes, result.mismatches) == (0, 1)


def test_nbd_log_durable_writes_are_fua_or_flushed(tmp_path: Path) -> None:
    offset = 8 * BLOCK
    lines = [
        f"# nbd ack log v1 run_id={RUN} block_size={BLOCK} chunks=8 offset={offset}",
        "W 0 1 0 1.0 0.001",  # flushed below: durable
        "F 1.5 0.002",
        "W 1 1 1 2.0 0.001",  # FUA: durable
        "W 2 1 0 3.0 0.001",  # acknowledged, no flush after it: not durable
        "E write 3 1 4.0 5",
        "M 0 1 5.0",
    ]
    durable = acklog.parse_nbd_log(lines, durable_only=True)
    every = acklog.parse_nbd_log(lines)
    assert durable.expected == {0: 1, 1: 1}
    assert every.expected == {0: 1, 1: 1, 2: 1}
    assert (every.acknowledged, every.mismatches, len(every.errors)) == (3, 1, 1)
    assert every.max_latency == 0.002
    image = _image(tmp_path, {0: 1, 1: 1}, offset=offset)
    assert acklog.check_backing(durable, image).lost_writes == 0
    assert acklog.check_backing(every, image).lost_writes == 1  # chunk 2 never landed
