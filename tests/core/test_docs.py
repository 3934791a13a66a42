"""docs/core.md cannot rot: every ```python block runs, in order, in one namespace."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[2] / "docs" / "core.md"
BLOCKS = re.findall(r"^```python\n(.*?)^```", DOC.read_text(), flags=re.S | re.M)


def test_the_doc_has_examples() -> None:
    assert len(BLOCKS) >= 8


def test_every_python_block_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECKON_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    from reckon.core.defaults import set_default_engine

    old = set_default_engine(None)
    namespace: dict[str, object] = {"__name__": "docs_core"}
    try:
        for number, block in enumerate(BLOCKS, 1):
            try:
                exec(compile(block, f"docs/core.md block {number}", "exec"), namespace)
            except Exception as exc:
                raise AssertionError(f"docs/core.md python block {number} failed: {exc!r}") from exc
    finally:
        engine = set_default_engine(old)
        if engine is not None:
            engine.close()
