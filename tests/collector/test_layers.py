"""The import graph, read from the source (every ``import``, at any depth: inside functions and
``TYPE_CHECKING`` blocks too): dependencies flow one way, no cycles, database drivers only in the store.

    protocol ← errors ← (clock, timeplace) ← store ← (ingest, report) ← web ← config ← (serve, sim) ← cli

A module may import its own package's modules and those of lower layers; two packages on one layer
(ingest and report; serve and sim) do not import each other.
"""

from __future__ import annotations

import ast
import pathlib

from tests.conftest import ROOT

LAYERS: dict[str, int] = {
    "protocol": 0,
    "collector": 1,  # the package itself: its version
    "collector.errors": 1,
    "collector.clock": 2,
    "collector.timeplace": 2,
    "collector.delivery": 2,  # backoff and failure text shared by the alert sinks and the feed
    "collector.store": 3,
    "collector.ingest": 4,
    "collector.report": 4,
    "collector.fleet": 4,  # signed firmware releases (the box's own verifier, no store)
    "collector.web": 5,
    "collector.feed": 5,  # the provincial feed: the store's ratings under the report's policy, pushed out
    "collector.config": 6,
    "collector.serve": 7,
    "collector.sim": 7,
    "collector.cli": 8,
}
DRIVERS = {"aiosqlite", "asyncpg", "sqlite3", "_sqlite3", "psycopg", "psycopg2"}
Edge = tuple[str, str, int]  # importer, imported, line


def module_names(root: pathlib.Path, packages: tuple[str, ...] = ("protocol", "collector")) -> dict[str, pathlib.Path]:
    """Every module of ``packages`` under ``root`` by dotted name (a package by its own name)."""
    out = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join(parts)] = path
    return out


def imports(root: pathlib.Path) -> tuple[list[Edge], dict[str, set[str]]]:
    """Edges between our modules, and the outside top-level modules each of ours imports."""
    modules = module_names(root)
    edges: list[Edge] = []
    outside: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*anchor, base] if base else anchor)
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
            for target in targets:
                known = next((t for t in (target, target.rpartition(".")[0]) if t in modules), None)
                if known is not None:
                    edges.append((name, known, node.lineno))
                else:
                    outside.setdefault(name, set()).add(target.split(".")[0])
    return edges, outside


def layer_of(module: str) -> tuple[str, int]:
    """The layer group a module belongs to (the longest matching prefix) and its rank."""
    group = max((g for g in LAYERS if module == g or module.startswith(g + ".")), key=len)
    return group, LAYERS[group]


def layer_violations(edges: list[Edge]) -> list[str]:
    out = []
    for a, b, line in edges:
        (ga, ra), (gb, rb) = layer_of(a), layer_of(b)
        if ga != gb and rb >= ra:
            out.append(f"{a}:{line} imports {b} ({ga} may not depend on {gb})")
    return out


def cycles(edges: list[Edge]) -> list[list[str]]:
    """Strongly connected components with more than one module, or a module importing itself (Tarjan)."""
    graph: dict[str, set[str]] = {}
    for a, b, _ in edges:
        graph.setdefault(a, set()).add(b)
        graph.setdefault(b, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1 or v in graph[v]:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def driver_imports(root: pathlib.Path, outside: dict[str, set[str]]) -> list[str]:
    return sorted(
        f"{m} imports {', '.join(sorted(mods & DRIVERS))}"
        for m, mods in outside.items()
        if mods & DRIVERS and not (m == "collector.store" or m.startswith("collector.store."))
    )


def test_dependencies_flow_one_way_without_cycles() -> None:
    edges, _ = imports(ROOT)
    assert len(edges) > 100  # the graph was read
    assert layer_violations(edges) == []
    assert cycles(edges) == []


def test_only_the_store_imports_a_database_driver() -> None:
    _, outside = imports(ROOT)
    assert {"aiosqlite", "asyncpg"} <= outside["collector.store.sqlite"] | outside["collector.store.postgres"]
    assert driver_imports(ROOT, outside) == []


def test_the_checker_sees_hidden_cycles_and_wrong_layers(tmp_path: pathlib.Path) -> None:
    """A cycle hidden behind a function-level import, a store module reading the report, a driver in the web."""
    files = {
        "protocol/__init__.py": "",
        "collector/__init__.py": "",
        "collector/store/__init__.py": "",
        "collector/store/copy.py": "def f():\n    from collector.report.rebuild import x\n",
        "collector/report/__init__.py": "",
        "collector/report/rebuild.py": "x = 1\n",
        "collector/web/__init__.py": "",
        "collector/web/alerts.py": "from collector.web.cases import CaseError\n",
        "collector/web/cases.py": "def g():\n    from . import alerts\n    import sqlite3\n",
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    edges, outside = imports(tmp_path)
    assert layer_violations(edges) == [
        "collector.store.copy:2 imports collector.report.rebuild (collector.store may not depend on collector.report)"
    ]
    assert cycles(edges) == [["collector.web.alerts", "collector.web.cases"]]
    assert driver_imports(tmp_path, outside) == ["collector.web.cases imports sqlite3"]
