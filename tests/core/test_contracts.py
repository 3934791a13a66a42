"""Contracts of the core that no behaviour test pins down on its own: documented defaults, the
one exception hierarchy, and the layering rule (the core imports nothing of reckon above it)."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import reckon.errors as errors
from reckon.core import CachingLevel, Engine, Introspector, LocalStore, MemoryTier

CORE = Path(__file__).resolve().parents[2] / "src" / "reckon" / "core"


def test_documented_defaults(tmp_path: Path) -> None:
    engine = Engine()
    assert engine.memory.budget == 1 << 30 == MemoryTier().budget  # 1 GiB
    assert engine.introspector._history.maxlen == 10_000 == Introspector()._history.maxlen
    assert engine.introspector.capture is True
    assert engine.store is None
    with LocalStore(tmp_path) as store:
        assert store.inline_threshold == 4096 and store.sync is False
    assert [level.name for level in CachingLevel] == ["NONE", "MEMORY", "FULL"]
    assert CachingLevel.NONE < CachingLevel.MEMORY < CachingLevel.FULL


def test_every_exception_reckon_raises_is_a_reckon_error() -> None:
    classes = [c for _, c in inspect.getmembers(errors, inspect.isclass)]
    exceptions = [c for c in classes if issubclass(c, BaseException)]
    assert len(exceptions) > 10
    for cls in exceptions:
        if issubclass(cls, Warning):
            continue  # warnings (CodecWarning, ...) are not raised
        assert issubclass(cls, errors.ReckonError), cls
    # The core's own errors share one base under ReckonError.
    for name in ("InvalidRequestIdError", "CodecError", "StoreError", "EngineClosedError"):
        assert issubclass(getattr(errors, name), errors.CoreError)


def test_the_core_imports_nothing_of_reckon_but_itself_and_errors() -> None:
    allowed = ("reckon.core", "reckon.errors")
    for path in CORE.rglob("*.py"):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            for name in names:
                if name == "reckon" or name.startswith("reckon."):
                    assert name.startswith(allowed), f"{path.name} imports {name}"


def test_the_engine_module_keeps_the_names_other_layers_import() -> None:
    """engine.py was split into modules of its own; what was imported from it still is, and is
    the same object as the package's export."""
    import reckon.core
    import reckon.core.engine as engine_module

    for name in ("Engine", "current_task_id", "on_engine_created"):
        assert getattr(engine_module, name) is getattr(reckon.core, name)
    assert Engine.__module__ == "reckon.core.engine"
    # The halves written elsewhere are methods of the engine itself (no extra hop per request).
    for method in ("_load_direct", "_write", "_resolve_slow", "_run_async"):
        assert callable(getattr(Engine, method))
