"""The package's imports run one way: no cycle, and no import against the layering.

Layers, from the top: the estimators (``_base``, ``_classifier``, ``_regressor`` and every other
top-level module) may import anything; ``features``, ``solvers`` and ``targets`` sit below them;
``backbones`` and ``utils`` at the bottom, with ``_config`` (settings) under everything:

- ``utils`` imports nothing of the package but ``_config``, and ``_config`` nothing at all;
- ``backbones`` and ``solvers`` import only ``utils``;
- ``features`` and ``targets`` import ``backbones`` and ``utils``.

Imports inside functions count: a lazy import is still a dependency. The graph is read from the
source with :mod:`ast`, so nothing is imported to check it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import faast_sklearn

PACKAGE = Path(faast_sklearn.__file__).resolve().parent

# Layer of a module -> the layers it may import (besides its own; cycles are checked apart).
ALLOWED = {
    "config": set(),
    "utils": {"config"},
    "backbones": {"utils", "config"},
    "solvers": {"utils", "config"},
    "features": {"backbones", "utils", "config"},
    "targets": {"backbones", "utils", "config"},
    "estimators": {"features", "solvers", "targets", "backbones", "utils", "config"},
}


def _modules(root: Path) -> dict[str, Path]:
    """Dotted module name -> file, for every module of the package under ``root``."""
    found = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def import_graph(root: Path) -> dict[str, set[str]]:
    """Module -> the package's modules it imports, at module level or inside functions."""
    modules = _modules(root)
    graph = {}
    for name, path in modules.items():
        is_pkg = path.name == "__init__.py"
        base = name.split(".") if is_pkg else name.split(".")[:-1]
        edges = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    stem = base[: len(base) - (node.level - 1)]
                    module = ".".join(stem + ([node.module] if node.module else []))
                else:
                    module = node.module or ""
                # "from pkg import sub" depends on the module pkg.sub where there is one, else
                # on pkg (a name defined there).
                targets = [
                    f"{module}.{alias.name}" if f"{module}.{alias.name}" in modules else module
                    for alias in node.names
                ]
            else:
                continue
            for target in targets:
                while target and target not in modules:
                    target = target.rpartition(".")[0]
                # A package's __init__ gathering its own submodules is no dependency of design.
                if target and target != name and not (is_pkg and target.startswith(name + ".")):
                    edges.add(target)
        graph[name] = edges
    return graph


def layer_of(module: str, package: str) -> str:
    parts = module.split(".")[1:]
    if not parts:
        return "estimators"  # the package's __init__: the public API
    if parts[0] == "_config":
        return "config"
    if parts[0] in ALLOWED and parts[0] not in {"estimators", "config"}:
        return parts[0]
    return "estimators"


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan's algorithm)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
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
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def violations(graph: dict[str, set[str]], package: str) -> list[str]:
    bad = []
    for module, edges in sorted(graph.items()):
        mine = layer_of(module, package)
        for target in sorted(edges):
            theirs = layer_of(target, package)
            if theirs != mine and theirs not in ALLOWED[mine]:
                bad.append(f"{module} ({mine}) imports {target} ({theirs})")
    return bad


def test_no_import_cycle():
    found = cycles(import_graph(PACKAGE))
    assert not found, "Import cycles:\n" + "\n".join(" <-> ".join(c) for c in found)


def test_imports_follow_the_layering():
    bad = violations(import_graph(PACKAGE), PACKAGE.name)
    assert not bad, "Imports against the layering:\n" + "\n".join(bad)


def test_every_layer_has_modules():
    # A renamed subpackage must not silently fall into the top layer and escape the rules.
    layers = {layer_of(m, PACKAGE.name) for m in import_graph(PACKAGE)}
    assert layers == set(ALLOWED)


@pytest.fixture
def toy(tmp_path):
    """A package with one cycle (utils.a <-> utils.b, the second one lazy) and one import
    against the layering (backbones.x imports features.y)."""
    root = tmp_path / "toy"
    files = {
        "__init__.py": "from .features import y\n",
        "_config.py": "",
        "utils/__init__.py": "",
        "utils/a.py": "from . import b\n",
        "utils/b.py": "def f():\n    from .a import g\n",
        "backbones/__init__.py": "",
        "backbones/x.py": "import toy.features.y\nfrom ..utils import a\n",
        "features/__init__.py": "",
        "features/y.py": "from ..backbones.x import z\nfrom .._config import c\n",
        "solvers/__init__.py": "",
        "targets.py": "",
    }
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def test_the_checks_find_a_lazy_cycle_and_an_upward_import(toy):
    graph = import_graph(toy)
    assert graph["toy.utils.b"] == {"toy.utils.a"}
    found = cycles(graph)
    assert ["toy.utils.a", "toy.utils.b"] in found
    assert ["toy.backbones.x", "toy.features.y"] in found
    assert violations(graph, "toy") == [
        "toy.backbones.x (backbones) imports toy.features.y (features)"
    ]
