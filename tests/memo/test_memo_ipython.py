"""Functions defined in a notebook cell (no source file) memoize, across kernel restarts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("IPython")

CELL = "@memoize(store={store!r})\ndef cell_square(x):\n    print('RAN', x)\n    return x * x\n"

SESSION = """
from IPython.core.interactiveshell import InteractiveShell
shell = InteractiveShell.instance()
def run(cell):
    result = shell.run_cell(cell)
    result.raise_error()
    return result.result
run("from reckon import memoize")
run({cell!r})
print("VALUE", run("cell_square(4)"), run("cell_square(4)"))
"""


def test_cell_function_memoizes_across_sessions(cache_dir: Path, run_py: Any) -> None:
    session = SESSION.format(cell=CELL.format(store=str(cache_dir)))
    first = run_py(session).stdout
    assert first.count("RAN 4") == 1
    assert "VALUE 16 16" in first
    second = run_py(session).stdout
    assert "RAN" not in second, "a new session with the same cell hits the store"
    assert "VALUE 16 16" in second


def test_redefined_cell_function_is_a_new_key(cache_dir: Path, run_py: Any) -> None:
    cell = CELL.format(store=str(cache_dir))
    changed = cell.replace("'RAN'", "'RAN2'").replace("x * x", "x * x + 1")
    code = SESSION.format(cell=cell) + f"run({changed!r})\nprint('VALUE2', run('cell_square(4)'))\n"
    out = run_py(code).stdout
    assert "RAN 4" in out and "RAN2 4" in out and "VALUE2 17" in out
