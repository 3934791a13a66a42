"""The README's python examples run as written (in a scratch directory, EPICS kept on loopback)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_python_blocks_run(tmp_path: Path) -> None:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    assert len(blocks) >= 3, "the README lost its usage examples"
    from reckon.pva.config import loopback_environment

    env = {**os.environ, "RECKON_CACHE_DIR": str(tmp_path / "cache"), **loopback_environment()}
    for i, block in enumerate(blocks):
        block = block.replace("/tmp/reckon-readme", str(tmp_path / "readme-store"))
        script = tmp_path / f"block{i}.py"
        script.write_text(block)
        done = subprocess.run(
            [sys.executable, str(script)],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, f"README block {i} failed:\n{block}\n{done.stderr}"
