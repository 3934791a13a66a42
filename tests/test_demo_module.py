"""`python -m reckon.demo ACT` runs one act of the tour (the module entry point; the `reckon demo`
command is tested in test_demo_tour.py). It lived in tests/core, whose venv has no rich, so CI
always skipped it: here it runs with the full install."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SRC = str(Path(__file__).resolve().parents[1] / "src")


def test_the_core_act_runs_alone_from_the_module(tmp_path: Path) -> None:
    env = dict(os.environ, PYTHONPATH=SRC, RECKON_CACHE_DIR=str(tmp_path), COLUMNS="160")
    out = subprocess.run(
        [sys.executable, "-m", "reckon.demo", "core"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=True,
    ).stdout
    assert "NONE   asked twice, computed 2x" in out
    assert "MEMORY asked twice, computed 1x" in out
    assert "50 callers" in out and "computed 1x" in out
    assert "store_hit" in out and "without computing" in out
    assert "recorded tasks" in out
    assert "act core done" in out and "act memo" not in out  # that act alone
