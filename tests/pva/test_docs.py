"""Every ```python block of docs/pva.md runs (on loopback, free ports), so the docs cannot rot."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[2] / "docs" / "pva.md"
BLOCKS = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)


def test_the_doc_has_examples() -> None:
    assert len(BLOCKS) >= 5


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_doc_example_runs(index: int, pva_env: dict[str, str]) -> None:
    code = BLOCKS[index]
    exec(compile(code, f"{DOC.name}[block {index}]", "exec"), {"__name__": f"doc_{index}"})
