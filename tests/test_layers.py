"""The package's layers import downwards only: no module imports one that imports it back."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "glasslog"


def _imports(path: Path) -> set[str]:
    """Every glasslog module ``path`` imports, at top level or inside a function."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {name for name in found if name.startswith("glasslog")}


def _module(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _graph() -> dict[str, set[str]]:
    return {_module(p): _imports(p) for p in SRC.rglob("*.py")}


@pytest.mark.parametrize(
    ("lower", "upper"),
    [
        ("glasslog.store", "glasslog.ingest"),
        ("glasslog.ledger", "glasslog.store"),
        ("glasslog.query", "glasslog.store"),
        ("glasslog.derived", "glasslog.store"),
        ("glasslog.derived", "glasslog.ingest"),
    ],
)
def test_lower_layers_never_import_upper_ones(lower: str, upper: str) -> None:
    """A store never imports the pipeline (which imports stores), even inside a function."""
    offenders = sorted(
        f"{module} imports {target}"
        for module, targets in _graph().items()
        if module == lower or module.startswith(f"{lower}.")
        for target in targets
        if target == upper or target.startswith(f"{upper}.")
    )
    assert offenders == []


def test_no_import_cycles() -> None:
    """The import graph of glasslog's modules (function-level imports included) is acyclic."""
    graph = _graph()
    known = set(graph)

    def resolve(name: str) -> str | None:
        while name and name not in known:
            name = name.rpartition(".")[0]
        return name or None

    edges = {m: {r for t in ts if (r := resolve(t)) and r != m} for m, ts in graph.items()}
    # A package's __init__ re-exporting its own submodules is not a cycle worth naming.
    edges = {m: {t for t in ts if not t.startswith(f"{m}.")} for m, ts in edges.items()}
    # cli.py registers the commands of its cli_<part> modules at its bottom, after
    # defining the options and helpers those modules import from it: not a cycle.
    edges["glasslog.cli"] = {t for t in edges["glasslog.cli"] if not t.startswith("glasslog.cli_")}
    state: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges[node]):
            if state.get(nxt) == 1:
                cycles.append([*stack[stack.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for module in sorted(edges):
        if module not in state:
            visit(module)
    assert cycles == []
