"""The layout keeps its promises: dependencies point one way with no import cycles, pages/ holds
only pages, engine/ never imports Streamlit, store/ is the only package that imports DuckDB,
and no module grows past 400 lines. Built from the source with `ast`, imports inside functions
included, so a lazy import cannot hide a cycle."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import ROOT

PACKAGES = ("engine", "store", "ui", "pages")
MAX_LINES = 400


def modules() -> dict[str, Path]:
    found = {"streamlit_app": ROOT / "streamlit_app.py"}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


def imports_of(path: Path, name: str, known: set[str]) -> set[str]:
    """The project modules a module imports (the longest known prefix of each import)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    targets = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1])
                base = f"{base}.{node.module}" if node.module else base
            names = [f"{base}.{a.name}" for a in node.names] + [base]
        else:
            continue
        for full in names:
            parts = full.split(".")
            for i in range(len(parts), 0, -1):
                candidate = ".".join(parts[:i])
                if candidate in known:
                    if candidate != name:
                        targets.add(candidate)
                    break
    return targets


def import_graph() -> dict[str, set[str]]:
    found = modules()
    known = set(found)
    return {name: imports_of(path, name, known) for name, path in found.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_no_import_cycles():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_cycle_finder_finds_a_planted_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert find_cycle(graph) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_dependencies_point_one_way():
    graph = import_graph()
    for name, targets in graph.items():
        layer = name.split(".")[0]
        for target in targets:
            other = target.split(".")[0]
            if layer == "store":
                assert other == "store", f"{name} (store) imports {target}"
            if layer == "engine":
                assert other in ("engine", "store"), f"{name} (engine) imports {target}"
            if layer == "ui":
                assert other != "pages", f"{name} (ui) imports the page {target}"


def test_engine_never_imports_streamlit_and_only_store_imports_duckdb():
    for name, path in modules().items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        roots = {
            (a.name if isinstance(node, ast.Import) else node.module or "").split(".")[0]
            for node in ast.walk(tree)
            if isinstance(node, ast.Import | ast.ImportFrom)
            for a in (node.names if isinstance(node, ast.Import) else [node])
        }
        if name.startswith("engine"):
            assert "streamlit" not in roots, f"{name} imports streamlit"
        if not name.startswith("store"):
            assert "duckdb" not in roots, f"{name} imports duckdb"


def test_pages_holds_only_pages_and_no_module_is_too_long():
    assert not [p.name for p in (ROOT / "pages").iterdir() if p.name.startswith(("_", "."))]
    long = {
        name: n
        for name, path in modules().items()
        if (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert not long, f"modules over {MAX_LINES} lines: {long}"
