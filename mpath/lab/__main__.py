"""``python -m mpath.lab``: run a command in the lab VM (what ``make lab`` calls).

Examples::

    python -m mpath.lab run 'uname -r; lsmod | grep -c target_core'
    python -m mpath.lab run --timeout 900 -- pytest -m lab tests/lab
    python -m mpath.lab check          # which kernel and accelerator the lab would use

The command runs as root in the guest, in the current folder, with this Python
environment first on PATH; its output is ours and its exit code is ours. When the lab
cannot boot here the reason is printed and the exit code is 3.
"""

from __future__ import annotations

import argparse
import json
import sys

from mpath.lab.vm import (
    LabError,
    LabUnavailableError,
    _Interrupted,
    describe,
    lab_config,
    run_in_lab,
    signal_exit_code,
)

#: Exit code when the lab cannot boot on this host.
UNAVAILABLE_EXIT = 3


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m mpath.lab",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="action", required=True)
    run = sub.add_parser("run", help="boot the lab VM, run a command, stop the VM")
    run.add_argument("--timeout", type=float, default=None, help="seconds before the VM is killed")
    run.add_argument(
        "--no-modules", action="store_true", help="do not load the storage modules first"
    )
    run.add_argument("command", nargs="+", help="bash command line (several words are joined)")
    sub.add_parser("check", help="print the kernel and accelerator the lab would use (JSON)")
    args = parser.parse_args(argv)
    try:
        config = lab_config()
        if args.action == "check":
            print(json.dumps(describe(config), indent=2))
            return 0
        command = " ".join(args.command)
        result = run_in_lab(
            command, config=config, timeout=args.timeout, load_modules=not args.no_modules
        )
    except LabUnavailableError as exc:
        print(f"mpath lab: cannot start the lab VM: {exc}", file=sys.stderr)
        return UNAVAILABLE_EXIT
    except LabError as exc:
        print(f"mpath lab: {exc}", file=sys.stderr)
        return 1
    except (KeyboardInterrupt, _Interrupted) as exc:
        print("mpath lab: interrupted; the VM was stopped", file=sys.stderr)
        return signal_exit_code(exc)
    summary = f"mpath lab: {config.release} ({result.accel}), {result.seconds:.0f} s"
    if result.timed_out:
        print(f"{summary}: timed out after {args.timeout:g} s; VM killed", file=sys.stderr)
    elif not result.started:
        print(
            f"{summary}: cannot start the lab VM: the guest never ran the command "
            f"(exit {result.returncode})",
            file=sys.stderr,
        )
        return UNAVAILABLE_EXIT
    else:
        print(f"{summary}, exit {result.returncode}", file=sys.stderr)
    return result.returncode


if __name__ == "__main__":
    sys.exit(main())
