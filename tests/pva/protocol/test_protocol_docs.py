"""The examples in docs/pva-protocol.md and the module docstrings run."""

from __future__ import annotations

import doctest
import pathlib
import re

import pytest

from reckon.pva.protocol import nt

DOC = pathlib.Path(__file__).parents[3] / "docs" / "pva-protocol.md"
BLOCKS = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)


def test_doc_has_examples() -> None:
    assert len(BLOCKS) >= 3


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_doc_example_runs(index: int) -> None:
    exec(compile(BLOCKS[index], f"{DOC.name}[{index}]", "exec"), {})


def test_nt_doctest() -> None:
    assert doctest.testmod(nt).failed == 0
