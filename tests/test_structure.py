"""The import rules of the design, read from the source of the whole package.

Every import statement counts, at module level or inside a function, except those under
``if TYPE_CHECKING:`` (they never run). Two rules:

- no module imports another module's private names (``from m import _x``), nor a private module
  of a package it is not part of (``reckon.pva.protocol._types`` from ``reckon.pva.cli``): what a
  module shares it names publicly;
- no import circles, with one exception written out below.
"""

from __future__ import annotations

import ast
from pathlib import Path

import reckon

SRC = Path(reckon.__file__).resolve().parent

# ``open_store(url)`` (core/stores/urls.py) imports the store class a URL names inside the
# function, and each store's ``__reduce__`` names ``urls.reopen``: a plugin registry's circle,
# broken at import time by the function-level import.
KNOWN_CIRCLES = [
    [
        "reckon.core.stores.local",
        "reckon.core.stores.near",
        "reckon.core.stores.objectstore",
        "reckon.core.stores.redis",
        "reckon.core.stores.urls",
    ]
]


def _name(path: Path) -> str:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_name(p): p for p in sorted(SRC.rglob("*.py"))}


def _target(module: str, node: ast.ImportFrom, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".")
    if not is_package:
        base = base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _scan() -> tuple[dict[str, set[str]], list[str]]:
    graph: dict[str, set[str]] = {}
    private: list[str] = []
    for module, path in MODULES.items():
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                node.body = []
        deps: set[str] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                deps.update(a.name for a in node.names if a.name in MODULES)
            if not isinstance(node, ast.ImportFrom):
                continue
            target = _target(module, node, path.name == "__init__.py")
            if not target.startswith("reckon"):
                continue
            for alias in node.names:
                full = f"{target}.{alias.name}"
                deps.add(full if full in MODULES else target)
                if alias.name[:1] == "_" and alias.name[:2] != "__" and full not in MODULES:
                    private.append(f"{module}: from {target} import {alias.name}")
            parts = target.split(".")
            for i, part in enumerate(parts):
                if part.startswith("_") and not part.startswith("__"):
                    owner = ".".join(parts[:i])
                    if module != owner and not module.startswith(owner + "."):
                        private.append(f"{module}: imports {target}, private to {owner}")
                    break
        graph[module] = {d for d in deps if d in MODULES} - {module}
    return graph, private


def _circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

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
            group: list[str] = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(groups)


def test_the_scan_sees_the_package() -> None:
    graph, _ = _scan()
    # the scan must see real edges, or the rules below would pass on nothing
    assert "reckon.pva.protocol._types" in graph["reckon.pva.protocol._codec"]
    assert "reckon.core.stores.urls" in graph["reckon.core.stores.local"]
    assert _circles({"a": {"b"}, "b": {"a"}, "c": {"a"}}) == [["a", "b"]]


def test_no_module_reads_another_modules_private_names() -> None:
    _, private = _scan()
    assert private == []


def test_no_import_circles_but_the_store_registry() -> None:
    graph, _ = _scan()
    assert _circles(graph) == KNOWN_CIRCLES
