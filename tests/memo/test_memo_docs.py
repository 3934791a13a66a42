"""docs/memo.md: every ```python block runs, in order, in one fresh process."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

DOC = Path(__file__).resolve().parents[2] / "docs" / "memo.md"


def test_doc_examples_run(tmp_path: Path, run_py: Any) -> None:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.DOTALL)
    assert len(blocks) >= 10
    script = tmp_path / "doc_examples.py"
    script.write_text("\n\n".join(blocks) + "\nprint('DOC OK')\n")
    proc = run_py(
        f"import runpy; runpy.run_path({str(script)!r}, run_name='__main__')",
        env={"RECKON_CACHE_DIR": str(tmp_path / "cache")},
        cwd=tmp_path,
    )
    assert "DOC OK" in proc.stdout
