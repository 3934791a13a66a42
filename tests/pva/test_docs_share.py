"""The ```python redis blocks of docs/pva.md (the sharing examples) run against a real
redis-server (REDIS_URL), on loopback with free ports."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from .share_support import RedisProcess

DOC = Path(__file__).resolve().parents[2] / "docs" / "pva.md"
BLOCKS = re.findall(r"```python redis\n(.*?)```", DOC.read_text(), flags=re.S)


@pytest.fixture
def redis_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    proc = RedisProcess(tmp_path)
    monkeypatch.setenv("REDIS_URL", proc.url)
    yield proc.url
    proc.kill()


def test_the_doc_has_sharing_examples() -> None:
    assert len(BLOCKS) >= 1


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_sharing_example_runs(index: int, redis_url: str, pva_env: dict[str, str]) -> None:
    assert os.environ["REDIS_URL"] == redis_url
    code = BLOCKS[index]
    exec(compile(code, f"{DOC.name}[redis block {index}]", "exec"), {"__name__": f"doc_{index}"})
