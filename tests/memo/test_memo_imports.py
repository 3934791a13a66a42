"""The memo package's modules import each other in one direction only.

Read from the source (every import statement, at module level or inside a function, except
``if TYPE_CHECKING:`` blocks): no module reaches itself through others, and no module imports
another one's private names.
"""

from __future__ import annotations

import ast
from pathlib import Path

import reckon.memo

MEMO = Path(reckon.memo.__file__).resolve().parent


def _imports() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for path in sorted(MEMO.glob("*.py")):
        name = "reckon.memo" if path.stem == "__init__" else f"reckon.memo.{path.stem}"
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                node.body = []
        deps: set[str] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("reckon.memo"):
                if node.module == "reckon.memo":
                    deps.update(f"reckon.memo.{alias.name}" for alias in node.names)
                else:
                    deps.add(str(node.module))
            elif isinstance(node, ast.Import):
                deps.update(a.name for a in node.names if a.name.startswith("reckon.memo."))
        graph[name] = deps - {name}
    return graph


def test_no_import_circle_inside_reckon_memo() -> None:
    graph = _imports()
    assert "reckon.memo.codegraph" in graph  # the walk over code has a module of its own
    circles: list[list[str]] = []

    def visit(start: str, node: str, path: list[str]) -> None:
        for dep in sorted(graph.get(node, ())):
            if dep == start and dep != "reckon.memo":
                circles.append([*path, dep])
            elif dep not in path and dep in graph and dep != "reckon.memo":
                visit(start, dep, [*path, dep])

    for module in graph:
        if module != "reckon.memo":
            visit(module, module, [module])
    assert circles == []


def test_no_module_imports_private_names_of_another() -> None:
    found: list[str] = []
    for path in sorted(MEMO.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("reckon."):
                private = [a.name for a in node.names if a.name.startswith("_")]
                # A private module of the package imported whole is fine; its names are not.
                if node.module != "reckon.memo" and private:
                    found.append(f"{path.name}: from {node.module} import {', '.join(private)}")
    assert found == []
