"""`reckon demo` runs (in a subprocess: the demo uses rich, which the core suite never imports)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

import pytest
from _core_helpers import SRC


@pytest.mark.skipif(importlib.util.find_spec("rich") is None, reason="the demo needs rich")
def test_demo_runs_and_shows_each_step(tmp_path: object) -> None:
    env = dict(os.environ, PYTHONPATH=SRC, RECKON_CACHE_DIR=str(tmp_path), COLUMNS="160")
    out = subprocess.run(
        [sys.executable, "-m", "reckon.demo"],
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
