"""Fixtures for the memo tests: private cache directories and fresh Python processes."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest
from memo_support import child_env

HERE = Path(__file__).resolve().parent


@pytest.fixture
def cache_dir(tmp_path: Path) -> Path:
    path = tmp_path / "cache"
    path.mkdir()
    return path


RunPy = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def run_py() -> RunPy:
    """Run a Python snippet in a fresh interpreter; fail the test with its output on error."""

    def run(
        code: str,
        *,
        env: dict[str, str] | None = None,
        pythonpath: list[Path] | None = None,
        cwd: Path | None = None,
        check: bool = True,
    ) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [sys.executable, "-c", textwrap.dedent(code)],
            capture_output=True,
            text=True,
            env=child_env(env, pythonpath),
            cwd=cwd,
            timeout=120,
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"child failed ({proc.returncode})\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
            )
        return proc

    return run
