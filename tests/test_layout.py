"""The layout keeps its promises: dependencies point one way with no import cycles, between
modules and between engine's packages (a stage imports only the stages before it and the shared
packages below them), pages/ holds only pages, engine/ never imports Streamlit, store/ is the
only package that imports DuckDB, and no module grows past 400 lines. Built from the source with
`ast`, imports inside functions included, so a lazy import cannot hide a cycle."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import ROOT

PACKAGES = ("engine", "store", "ui", "pages")
MAX_LINES = 400
# engine/'s layers, bottom to top. Shared: what the stages use and that starts nothing itself
# (the models and generation, the job machinery, paths, accounts, the audit log, the errors
# for people, the summary metrics and their statistics).
SHARED = (
    "engine.models",
    "engine.jobs",
    "engine.paths",
    "engine.auth",
    "engine.audit",
    "engine.errors",
    "engine.metrics",
    "engine.stats",
)
STAGES = (
    "engine.data",
    "engine.labelling",
    "engine.training",
    "engine.evaluation",
    "engine.serving",
)
# Above every stage: the one coordinator (and its follow-ups), the overview of them all, and the
# command lines (engine/__main__.py and each package's cli.py).
ABOVE = ("engine.scheduler", "engine.followups", "engine.overview", "engine.__main__")
TOP = len(STAGES) + 1


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


def unit_of(module: str) -> str | None:
    """The node of the package graph a module of engine/ belongs to: its stage or shared
    package, or the module itself (a top-level module such as engine/stats.py, or a CLI,
    which stands above everything); None outside engine/ and for engine/__init__.py."""
    parts = module.split(".")
    if parts[0] != "engine" or len(parts) == 1:
        return None
    return module if parts[-1] == "cli" else ".".join(parts[:2])


def layer_of(unit: str) -> int | None:
    """0 for the shared packages, 1.. for the stages in order, TOP above them; None: unplaced."""
    if unit in SHARED:
        return 0
    if unit in STAGES:
        return 1 + STAGES.index(unit)
    if unit in ABOVE or unit.endswith(".cli"):
        return TOP
    return None


def package_graph(graph: dict[str, set[str]]) -> dict[str, dict[str, list[str]]]:
    """engine's packages and what they import: {unit: {imported unit: ["a.b -> c.d", ...]}}."""
    out: dict[str, dict[str, list[str]]] = {}
    for name, targets in sorted(graph.items()):
        unit = unit_of(name)
        if unit is None:
            continue
        edges = out.setdefault(unit, {})
        for target in sorted(targets):
            other = unit_of(target)
            if other not in (None, unit):
                edges.setdefault(other, []).append(f"{name} -> {target}")
    return out


def layer_violations(packages: dict[str, dict[str, list[str]]]) -> list[str]:
    """Imports that point up the layers (a stage importing a later stage or the coordinator; a
    shared package importing a stage), and units placed in no layer."""
    found = []
    for unit, edges in sorted(packages.items()):
        mine = layer_of(unit)
        if mine is None:
            found.append(f"{unit} is in no layer: add it to SHARED, STAGES or ABOVE")
            continue
        for other, via in sorted(edges.items()):
            theirs = layer_of(other)
            if theirs is not None and theirs > mine:
                found.append(f"{unit} imports {other}, above it ({'; '.join(via)})")
    return found


def test_no_import_cycles():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_cycle_finder_finds_a_planted_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert find_cycle(graph) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_engine_packages_layer_without_cycles():
    packages = package_graph(import_graph())
    cycle = find_cycle(packages)
    assert cycle is None, "package import cycle: " + " -> ".join(cycle)
    problems = layer_violations(packages)
    assert not problems, "imports against the layers:\n" + "\n".join(problems)


def test_the_layer_check_finds_a_planted_upward_import_and_package_cycle():
    graph = {
        "engine.labelling.ordering": {"engine.evaluation.metrics", "engine.stats", "store"},
        "engine.evaluation.worker": {"engine.labelling.worker", "engine.evaluation.metrics"},
        "engine.evaluation.metrics": set(),
        "engine.labelling.worker": {"engine.models.generation"},
        "engine.labelling.cli": {"engine.scheduler"},
        "engine.scheduler": {"engine.labelling.worker"},
        "engine.stats": set(),
        "engine.models.generation": set(),
        "engine.extra": set(),
    }
    packages = package_graph(graph)
    assert packages["engine.evaluation"] == {
        "engine.labelling": ["engine.evaluation.worker -> engine.labelling.worker"]
    }
    assert find_cycle(packages) == ["engine.evaluation", "engine.labelling", "engine.evaluation"]
    assert layer_violations(packages) == [
        "engine.extra is in no layer: add it to SHARED, STAGES or ABOVE",
        "engine.labelling imports engine.evaluation, above it "
        "(engine.labelling.ordering -> engine.evaluation.metrics)",
    ]
    del graph["engine.labelling.ordering"], graph["engine.extra"]  # what is left layers well
    assert find_cycle(package_graph(graph)) is None
    assert layer_violations(package_graph(graph)) == []
    shared_up = {"engine.models.drafting": {"engine.labelling.runs"}}  # shared, up to a stage
    assert layer_violations(package_graph(shared_up)) == [
        "engine.models imports engine.labelling, above it "
        "(engine.models.drafting -> engine.labelling.runs)"
    ]


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
