"""Run multipath-tools' own configuration parser on a fragment, touching nothing.

``multipath -t`` reads ``/etc/multipath.conf`` (the path is compiled in; there is no
option to read another file), complains about every line it does not accept on stderr
(``/etc/multipath.conf line 12, invalid keyword in the multipath section: foo``), and
prints the configuration it ended up with on stdout. It does this right after parsing,
before it looks for device-mapper, so it works on kernels without dm-multipath, and it
starts no daemon and creates no maps. Its exit code is 0 even when it complained, so
complaints are detected on stderr.

To show it our fragment without touching the host's ``/etc``, it runs in a private
mount namespace (``unshare --mount --propagation private``) in which ``/etc`` is an
overlay: the real ``/etc`` below, a temporary directory holding only
``multipath.conf`` above. When the process exits, the namespace and the overlay vanish;
the host's ``/etc`` never changes. No shell is involved: the namespace's first process
is this Python interpreter, which mounts and then ``exec``s ``multipath -t``.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from mpath.errors import MpathError

#: What runs inside the namespace: mount the overlay, then become ``multipath -t``.
_CHILD = """\
import os, subprocess, sys
work, multipath = sys.argv[1], sys.argv[2]
options = f"lowerdir=/etc,upperdir={work}/upper,workdir={work}/work"
mounted = subprocess.run(["mount", "-t", "overlay", "overlay", "-o", options, "/etc"])
if mounted.returncode != 0:
    sys.exit(125)
os.execv(multipath, [multipath, "-t"])
"""
_MOUNT_FAILED = 125
_TIMESTAMP = re.compile(r"^\s*\d+\.\d+ \| ")


class ParserUnavailableError(MpathError):
    """multipath-tools' parser cannot run here (not installed, not root, no overlay)."""


@dataclass(frozen=True, slots=True)
class ParserResult:
    """What ``multipath -t`` made of a fragment.

    ``complaints`` are its stderr lines without the timestamp prefix; ``dump`` is the
    configuration it printed. ``accepted`` means exit 0 and no complaint at all.
    """

    command: list[str]
    returncode: int
    complaints: list[str]
    dump: str
    fragment: str = field(repr=False, default="")

    @property
    def accepted(self) -> bool:
        return self.returncode == 0 and not self.complaints

    def multipath_entry(self, wwid: str) -> dict[str, str] | None:
        """The keywords multipath kept for ``wwid`` in its multipaths section."""
        section = self.dump.split("\nmultipaths {", 1)
        if len(section) < 2:
            return None
        for block in section[1].split("\tmultipath {")[1:]:
            entry: dict[str, str] = {}
            for line in block.split("\n\t}", 1)[0].splitlines():
                parts = line.strip().split(None, 1)
                if len(parts) == 2:
                    entry[parts[0]] = parts[1].strip('"')
            if entry.get("wwid") == wwid:
                return entry
        return None


def unavailable_reason() -> str | None:
    """Why :func:`check_fragment` cannot run on this host, or None when it can."""
    if os.geteuid() != 0:
        return "needs root (it mounts an overlay on /etc in a private mount namespace)"
    for tool, package in (
        ("multipath", "multipath-tools"),
        ("unshare", "util-linux"),
        ("mount", "mount"),
    ):
        if shutil.which(tool) is None:
            return f"{tool} not found: apt-get install {package}"
    return None


def check_fragment(text: str, *, timeout: float = 30.0) -> ParserResult:
    """Run ``multipath -t`` with ``text`` as /etc/multipath.conf, in a throwaway namespace.

    Raises :class:`ParserUnavailableError` when that cannot be done here.
    """
    reason = unavailable_reason()
    if reason is not None:
        raise ParserUnavailableError(f"cannot run multipath's parser: {reason}")
    multipath = shutil.which("multipath")
    assert multipath is not None
    with tempfile.TemporaryDirectory(prefix="mpath-parse-") as work:
        if any(c in work for c in ",:\\"):
            raise ParserUnavailableError(f"temporary directory {work!r} unusable for overlayfs")
        (Path(work) / "upper").mkdir()
        (Path(work) / "work").mkdir()
        (Path(work) / "upper" / "multipath.conf").write_text(text)
        command = [
            "unshare",
            "--mount",
            "--propagation",
            "private",
            "--",
            sys.executable,
            "-c",
            _CHILD,
            work,
            multipath,
        ]
        try:
            done = subprocess.run(
                command, capture_output=True, text=True, timeout=timeout, check=False
            )
        except subprocess.TimeoutExpired:
            raise ParserUnavailableError(f"multipath -t did not finish in {timeout:g} s") from None
    if done.returncode == _MOUNT_FAILED:
        raise ParserUnavailableError(
            f"cannot mount an overlay on /etc in a private namespace: {done.stderr.strip()}"
        )
    if done.returncode != 0 and "unshare" in done.stderr and not done.stdout:
        raise ParserUnavailableError(f"unshare failed: {done.stderr.strip()}")
    complaints = [_TIMESTAMP.sub("", line) for line in done.stderr.splitlines() if line.strip()]
    return ParserResult(
        command=["multipath", "-t"],
        returncode=done.returncode,
        complaints=complaints,
        dump=done.stdout,
        fragment=text,
    )
