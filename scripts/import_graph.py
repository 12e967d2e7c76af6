#!/usr/bin/env python3
"""Print mpath's package import graph and fail when it has a cycle.

Imports must flow one way (cli/daemon -> filter -> selectors and transports -> scsi). A
cycle between packages means neither side can be understood, tested or replaced alone,
and it is easy to add one without noticing: an import inside a function does not fail
at load time. So this reads every module with :mod:`ast` (nothing is imported or run)
and counts every ``import``, wherever it sits, including those under
``if TYPE_CHECKING:`` - a type-only import is still a dependency of the design.

Usage::

    python3 scripts/import_graph.py              # package graph (mpath.filter, ...)
    python3 scripts/import_graph.py --depth 3    # one level finer (mpath.filter.device)
    python3 scripts/import_graph.py --json       # {"edges": ..., "cycles": ...}

Exit status: 0 without a cycle, 1 with one (each cycle is printed), 2 on bad usage.
"""

from __future__ import annotations

import argparse
import ast
import json
import sys
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "mpath"


def module_name(path: Path, root: Path) -> str:
    """The dotted module name of a source file below ``root``."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(tree: ast.AST, module: str, is_package: bool) -> Iterator[str]:
    """Every absolute module name ``tree`` imports (relative imports resolved)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                # ``from . import x`` in a package's __init__ means the package itself.
                drop = node.level - 1 if is_package else node.level
                base = base[: len(base) - drop] if drop else base
                prefix = ".".join(base)
                target = f"{prefix}.{node.module}" if node.module else prefix
            else:
                target = node.module or ""
            yield target
            # ``from mpath import filter`` imports the subpackage mpath.filter.
            for alias in node.names:
                yield f"{target}.{alias.name}"


def node_of(module: str, depth: int, known: set[str]) -> str | None:
    """The graph node a module belongs to, or None when it is outside the package."""
    if module != PACKAGE and not module.startswith(PACKAGE + "."):
        return None
    parts = module.split(".")[:depth]
    # Trim names that are not modules (``from mpath.x import SomeClass``).
    while parts and ".".join(parts) not in known:
        parts.pop()
    return ".".join(parts) if parts else None


def build_graph(root: Path, depth: int) -> dict[str, set[str]]:
    """Edges ``importer -> imported`` between nodes of the given depth."""
    sources = sorted((root / PACKAGE).rglob("*.py"))
    known = {module_name(path, root) for path in sources}
    graph: dict[str, set[str]] = {}
    for path in sources:
        module = module_name(path, root)
        source = node_of(module, depth, known)
        if source is None:
            continue
        graph.setdefault(source, set())
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for imported in imported_modules(tree, module, path.name == "__init__.py"):
            target = node_of(imported, depth, known)
            if target is None or target == source:
                continue
            # A module importing its own parent package (``mpath.x`` -> ``mpath``) is
            # how every subpackage reaches shared modules; only real siblings count.
            if source.startswith(target + "."):
                continue
            graph[source].add(target)
    return graph


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm: the components with more than one node are the cycles."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for succ in sorted(graph.get(node, ())):
            if succ not in index:
                visit(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    sys.setrecursionlimit(max(10_000, sys.getrecursionlimit()))
    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(components)


def one_cycle(graph: dict[str, set[str]], component: list[str]) -> list[str]:
    """A concrete cycle through a component's first node (shortest, by BFS)."""
    members = set(component)
    start = component[0]
    parents: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for succ in sorted(graph[node] & members):
                if succ == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(parents[path[-1]])
                    return [*reversed(path), start]
                if succ not in parents:
                    parents[succ] = node
                    following.append(succ)
        frontier = following
    return component  # unreachable for a real component


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Print mpath's package import graph; exit 1 when it has a cycle.",
        epilog="example: python3 scripts/import_graph.py --depth 3",
    )
    parser.add_argument(
        "--depth",
        type=int,
        default=2,
        help="dotted components per node: 2 = mpath.filter (default), 3 = mpath.filter.device",
    )
    parser.add_argument("--root", type=Path, default=ROOT, help="source tree (default: repo)")
    parser.add_argument("--json", action="store_true", help="print edges and cycles as JSON")
    args = parser.parse_args(argv)
    if args.depth < 2:
        parser.error("--depth must be at least 2")
    if not (args.root / PACKAGE).is_dir():
        parser.error(f"no {PACKAGE}/ package under {args.root}")

    graph = build_graph(args.root, args.depth)
    components = strongly_connected(graph)
    cycles = [one_cycle(graph, component) for component in components]
    if args.json:
        edges = {node: sorted(targets) for node, targets in sorted(graph.items())}
        print(json.dumps({"edges": edges, "cycles": cycles, "tangles": components}, indent=2))
    else:
        for node, targets in sorted(graph.items()):
            print(f"{node} -> {', '.join(sorted(targets)) or '(nothing)'}")
        if cycles:
            for cycle, component in zip(cycles, components, strict=True):
                line = "cycle: " + " -> ".join(cycle)
                if len(component) > len(cycle) - 1:
                    line += f" (all of {', '.join(component)} reach each other)"
                print(line, file=sys.stderr)
        else:
            print(f"no cycle ({len(graph)} nodes)")
    return 1 if cycles else 0


if __name__ == "__main__":
    sys.exit(main())
