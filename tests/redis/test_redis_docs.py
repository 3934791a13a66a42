"""The Redis example of docs/stores.md runs against the test server."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[2] / "docs" / "stores.md"


def test_redis_doc_example_runs(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    blocks = re.findall(r"```python redis\n(.*?)```", DOC.read_text(), flags=re.S)
    assert len(blocks) == 1
    monkeypatch.setenv("REDIS_URL", redis_url)
    exec(compile(blocks[0], str(DOC), "exec"), {"__name__": "docs_stores_redis"})
