"""Running the system tools the rig drives (ip, tc, nft, tgtadm).

This is the one place where ``subprocess`` errors become :class:`CommandFailedError`,
so every caller above sees mpath's own errors with the failing command line in them.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Sequence

from mpath.errors import CommandFailedError, RigError

#: Debian package that provides each tool, for the "not installed" message.
TOOL_PACKAGES = {
    "ip": "iproute2",
    "tc": "iproute2",
    "nft": "nftables",
    "tgtd": "tgt",
    "tgtadm": "tgt",
}


def require_tools(*tools: str) -> None:
    """Fail with one clear line if a tool the rig needs is not installed."""
    for tool in tools:
        if shutil.which(tool) is None:
            package = TOOL_PACKAGES.get(tool, tool)
            raise RigError(
                f"{tool} not found: install the Debian package {package} (or run 'make setup')"
            )


def run(
    argv: Sequence[str],
    *,
    input_text: str | None = None,
    check: bool = True,
    timeout: float = 30.0,
) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` and return its result; raise CommandFailedError if it fails."""
    try:
        result = subprocess.run(
            list(argv),
            input=input_text,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise CommandFailedError(list(argv), -1, f"timed out after {timeout:g} s") from exc
    except FileNotFoundError as exc:
        raise CommandFailedError(list(argv), -1, f"{argv[0]} not found") from exc
    if check and result.returncode != 0:
        raise CommandFailedError(list(argv), result.returncode, result.stderr or result.stdout)
    return result


def in_namespace(namespace: str, argv: Sequence[str]) -> list[str]:
    """Prefix ``argv`` so that it runs inside network namespace ``namespace``."""
    return ["ip", "netns", "exec", namespace, *argv]
