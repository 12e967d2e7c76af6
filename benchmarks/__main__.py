"""``make bench``: every benchmark, each writing its own section of docs/benchmarks.md.

    .venv/bin/python -m benchmarks            # all (real-rig ones need root)
    .venv/bin/python -m benchmarks NAME...    # some: selector_cost, simulate_policies,
                                              # checker_scale, transport_vs_iscsi_perf,
                                              # policies_rig, policies_matrix, nbd_fio,
                                              # export_vs_qemu_nbd, fencing_stall,
                                              # vs_dm_multipath (boots the lab VM)

Speed targets live here, never in timed unit tests: the machines are shared and noisy,
so each benchmark compares ratios measured within one run.
"""

from __future__ import annotations

import importlib
import inspect
import os
import sys
import time

#: (module, needs root for a real rig)
BENCHMARKS = (
    ("selector_cost", False),
    ("simulate_policies", False),
    ("checker_scale", False),
    ("transport_vs_iscsi_perf", True),
    ("policies_rig", True),
    ("policies_matrix", True),
    ("nbd_fio", True),
    ("export_vs_qemu_nbd", True),
    ("fencing_stall", True),
    ("vs_dm_multipath", True),
)


def main(argv: list[str]) -> int:
    wanted = argv or [name for name, _ in BENCHMARKS]
    known = dict(BENCHMARKS)
    unknown = [name for name in wanted if name not in known]
    if unknown:
        print(
            f"unknown benchmark(s): {', '.join(unknown)}; known: {', '.join(known)}",
            file=sys.stderr,
        )
        return 2
    failed = []
    for name in wanted:
        if known[name] and os.geteuid() != 0:
            print(f"== {name}: skipped (needs root for the real rig)", file=sys.stderr)
            continue
        print(f"== {name}", file=sys.stderr)
        started = time.monotonic()
        module = importlib.import_module(f"benchmarks.{name}")
        takes_argv = bool(inspect.signature(module.main).parameters)
        status = module.main([]) if takes_argv else module.main()
        print(f"== {name}: exit {status} in {time.monotonic() - started:.0f} s", file=sys.stderr)
        if status:
            failed.append(name)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
