"""scripts/import_graph.py: the package graph has no cycle, and a cycle is caught."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "import_graph.py"


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=60
    )


def test_mpath_package_graph_has_no_cycle() -> None:
    result = _run()
    assert result.returncode == 0, result.stderr
    assert "cycle:" not in result.stderr
    assert result.stdout.rstrip().endswith("nodes)")
    # Layers flow one way: the filter layer uses transports, never the reverse.
    edges = dict(line.split(" -> ", 1) for line in result.stdout.splitlines() if " -> " in line)
    assert "mpath.transports" in edges["mpath.filter"]
    assert "mpath.filter" not in edges["mpath.transports"]
    assert "mpath.discovery" not in edges["mpath.transports"]


def _write(root: Path, name: str, text: str) -> None:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_a_cycle_is_printed_and_fails(tmp_path: Path) -> None:
    _write(tmp_path, "mpath/__init__.py", "")
    _write(tmp_path, "mpath/a/__init__.py", "from mpath.b import thing\n")
    # Imports inside functions and relative ones count: they are dependencies too.
    _write(tmp_path, "mpath/b/__init__.py", "def f():\n    from ..c import x\n")
    _write(tmp_path, "mpath/c/__init__.py", "from mpath import a\n")
    _write(tmp_path, "mpath/d.py", "import mpath.a\n")
    result = _run("--root", str(tmp_path))
    assert result.returncode == 1
    assert "cycle: mpath.a -> mpath.b -> mpath.c -> mpath.a" in result.stderr
    assert "mpath.d -> mpath.a" in result.stdout


def test_json_output_and_bad_usage(tmp_path: Path) -> None:
    _write(tmp_path, "mpath/__init__.py", "")
    _write(tmp_path, "mpath/a.py", "from mpath import b\n")
    _write(tmp_path, "mpath/b.py", "")
    result = _run("--root", str(tmp_path), "--json")
    assert result.returncode == 0
    assert '"mpath.a": [\n      "mpath.b"\n    ]' in result.stdout
    assert _run("--depth", "1").returncode == 2
    assert _run("--root", str(tmp_path / "nowhere")).returncode == 2


def test_no_click_outside_the_cli() -> None:
    """The library raises mpath errors; only mpath/cli/ knows click and translates them."""
    offenders = []
    for path in sorted((REPO / "mpath").rglob("*.py")):
        if "cli" in path.relative_to(REPO / "mpath").parts[:1]:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            if any(name == "click" or name.startswith("click.") for name in names):
                offenders.append(str(path.relative_to(REPO)))
    assert offenders == []
