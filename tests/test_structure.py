"""The package's structure, as static tools see it (issue 12): imports inside the package are
explicit and relative, so the import graph reads from the file tree; it shows the data flow
between the top-level parts and has no circle."""

from __future__ import annotations

import ast
import tomllib
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE_DIRS: dict[str, str] = tomllib.loads((ROOT / "pyproject.toml").read_text())[
    "tool"]["setuptools"]["package-dir"]


def _modules() -> dict[str, Path]:
    """Module name → file, through pyproject's package-dir mapping."""
    found: dict[str, Path] = {}
    for package, folder in PACKAGE_DIRS.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            parts = [p for p in path.relative_to(ROOT / folder).with_suffix("").parts
                     if p != "__init__"]
            found[".".join([package, *parts])] = path
    return found


MODULES = _modules()


def _imports(module: str, path: Path) -> Iterator[tuple[str, ast.ImportFrom | ast.Import]]:
    """The package modules `module` imports (at any depth of its code), with the statement."""
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package[:len(package) - node.level + 1] if node.level else []
            prefix = ".".join(base + ([node.module] if node.module else []))
            names = [f"{prefix}.{a.name}" if f"{prefix}.{a.name}" in MODULES else prefix
                     for a in node.names]
        else:
            continue
        for name in names:
            while name and name not in MODULES:
                name = name.rpartition(".")[0]
            if name and name != module:
                yield name, node


def _part(module: str) -> str:
    """A top-level part: a package folder (`builder/stages`), or the folder of a module."""
    path = MODULES[module].relative_to(ROOT)
    return "/".join(path.parts[:2]) if len(path.parts) > 2 else path.parts[0]


def test_imports_inside_the_package_are_relative():
    absolute = [f"{MODULES[m].relative_to(ROOT)}:{node.lineno}"
                for m in MODULES for _, node in _imports(m, MODULES[m])
                if isinstance(node, ast.ImportFrom) and not node.level]
    assert absolute == []


def test_the_import_graph_shows_the_data_flow_and_has_no_circle():
    graph = {m: {t for t, _ in _imports(m, p)} for m, p in MODULES.items()}
    edges = {(_part(a), _part(b)) for a, targets in graph.items() for b in targets
             if _part(a) != _part(b)}
    assert len(edges) >= 30
    for flow in [("builder/steps", "builder/stages"), ("builder/stages", "validation"),
                 ("builder/release", "validation"), ("training_reference", "validation"),
                 ("evaluation", "validation"), ("validation", "schemas")]:
        assert flow in edges
    # no circle: a depth-first walk never meets a module still on its path
    state: dict[str, int] = {}

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for target in sorted(graph[module]):
            assert state.get(target) != 1, " → ".join([*path, module, target])
            if target not in state:
                visit(target, [*path, module])
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [])
