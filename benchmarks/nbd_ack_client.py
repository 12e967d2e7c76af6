"""A small libnbd client that writes self-describing data and logs what was acknowledged.

Run by the *system* Python (Debian ships libnbd's binding, python3-libnbd, for it; the
venv does not have it) with the repository on ``PYTHONPATH``::

    PYTHONPATH=. /usr/bin/python3 -m benchmarks.nbd_ack_client URI --log FILE \\
        [--offset BYTES] [--chunks N] [--block BYTES] [--seconds S] [--seed N]

One request at a time, so the order of the log is the order of the acknowledgements:
writes of random chunks in the region, each chunk's generation one higher than its last
(the stamps of :mod:`mpath.workload.pattern`, so the LUN's backing file shows by itself
which generation each sector holds); every ``--fua-every``-th write with FUA, a FLUSH
every ``--flush-every`` writes, and every ``--read-every``-th request a read of a chunk
checked against what was acknowledged. Each line is written with ``os.write`` as soon as
the reply arrives, so the log survives this process or the server being killed::

    # nbd ack log v1 run_id=R block_size=B chunks=N offset=O
    W CHUNK GENERATION FUA T LATENCY   acknowledged write (FUA 1: with NBD_CMD_FLAG_FUA)
    F T LATENCY                        acknowledged flush: covers every W above it
    E OP CHUNK GENERATION T ERRNO      failed request (OP write/flush/read)
    M CHUNK GENERATION T               a read found other data than acknowledged

T is CLOCK_MONOTONIC seconds (the same clock as the other processes of a run). The
client stops at ``--seconds``, on SIGTERM, or when the connection dies (exit 0; 1 when
it could not connect). Used by the torture benchmark and the crash-consistency test.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import os
import random
import signal
import sys
import time
from typing import Any

import nbd

from mpath.workload import pattern

#: errnos that mean the connection itself is gone (the server died or closed it).
DEAD = {errno.ENOTCONN, errno.ECONNRESET, errno.EPIPE, errno.ESHUTDOWN}


def code(exc: nbd.Error) -> int:
    """The errno of a libnbd error as a number (the binding gives its name, e.g. 'EIO')."""
    value = exc.errno
    if isinstance(value, str):
        return int(getattr(errno, value, 0))
    return int(value or 0)


class Client:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.random = random.Random(args.seed)
        self.run_id = self.random.getrandbits(63)
        self.sectors = args.block // pattern.SECTOR
        self.generations = [0] * args.chunks
        self.uncertain: dict[int, int] = {}
        self.fd = os.open(args.log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o644)
        self.stop = False
        self.handle: Any = None

    def line(self, text: str) -> None:
        os.write(self.fd, (text + "\n").encode())

    def lba(self, chunk: int) -> int:
        return int(self.args.offset + chunk * self.args.block) // pattern.SECTOR

    def write(self, chunk: int, fua: bool) -> None:
        generation = self.generations[chunk] + 1
        data = pattern.fill(self.lba(chunk), self.sectors, generation, self.run_id)
        flags = nbd.CMD_FLAG_FUA if fua else 0
        begin = time.monotonic()
        try:
            self.handle.pwrite(data, self.args.offset + chunk * self.args.block, flags)
        except nbd.Error as exc:
            self.uncertain[chunk] = generation
            self.line(f"E write {chunk} {generation} {time.monotonic():.6f} {code(exc)}")
            raise
        now = time.monotonic()
        self.generations[chunk] = generation
        self.uncertain.pop(chunk, None)
        self.line(f"W {chunk} {generation} {int(fua)} {now:.6f} {now - begin:.6f}")

    def flush(self) -> None:
        begin = time.monotonic()
        try:
            self.handle.flush()
        except nbd.Error as exc:
            self.line(f"E flush 0 0 {time.monotonic():.6f} {code(exc)}")
            raise
        now = time.monotonic()
        self.line(f"F {now:.6f} {now - begin:.6f}")

    def read(self, chunk: int) -> None:
        generation = self.generations[chunk]
        try:
            data = self.handle.pread(self.args.block, self.args.offset + chunk * self.args.block)
        except nbd.Error as exc:
            self.line(f"E read {chunk} {generation} {time.monotonic():.6f} {code(exc)}")
            raise
        if not generation:
            return
        lba = self.lba(chunk)
        found = pattern.check(data, lba, generation, self.run_id)
        maybe = self.uncertain.get(chunk)
        if found and maybe is not None:
            found = [
                m
                for m in found
                if pattern.check(data[(m.lba - lba) * pattern.SECTOR :][: pattern.SECTOR],
                                 m.lba, maybe, self.run_id)
            ]  # fmt: skip
        if found:
            self.line(f"M {chunk} {generation} {time.monotonic():.6f}")

    def run(self) -> int:
        args = self.args
        self.handle = nbd.NBD()
        try:
            self.handle.connect_uri(args.uri)
        except nbd.Error as exc:
            print(f"nbd_ack_client: cannot connect to {args.uri}: {exc}", file=sys.stderr)
            return 1
        self.line(
            f"# nbd ack log v1 run_id={self.run_id} block_size={args.block} "
            f"chunks={args.chunks} offset={args.offset}"
        )
        deadline = time.monotonic() + args.seconds if args.seconds else None
        count = 0
        while not self.stop and (deadline is None or time.monotonic() < deadline):
            count += 1
            chunk = self.random.randrange(args.chunks)
            try:
                if args.read_every and count % args.read_every == 0:
                    self.read(chunk)
                else:
                    self.write(chunk, fua=bool(args.fua_every and count % args.fua_every == 0))
                if args.flush_every and count % args.flush_every == 0:
                    self.flush()
            except nbd.Error as exc:
                if code(exc) in DEAD or self.handle.aio_is_dead() or self.handle.aio_is_closed():
                    break
        if not self.handle.aio_is_dead():
            with contextlib.suppress(nbd.Error):
                self.handle.shutdown()
        os.close(self.fd)
        return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("uri")
    parser.add_argument("--log", required=True)
    parser.add_argument("--offset", type=int, default=0, help="region start, bytes")
    parser.add_argument("--chunks", type=int, default=4096, help="chunks in the region")
    parser.add_argument("--block", type=int, default=4096, help="bytes per write")
    parser.add_argument("--seconds", type=float, default=0.0, help="0: until SIGTERM")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--fua-every", type=int, default=4)
    parser.add_argument("--flush-every", type=int, default=16)
    parser.add_argument("--read-every", type=int, default=8)
    args = parser.parse_args(argv)
    if args.block % pattern.SECTOR or args.offset % pattern.SECTOR:
        parser.error("--block and --offset must be multiples of 512")
    client = Client(args)

    def on_term(_signum: int, _frame: object) -> None:
        client.stop = True

    signal.signal(signal.SIGTERM, on_term)
    return client.run()


if __name__ == "__main__":
    sys.exit(main())
