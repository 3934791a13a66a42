"""docs/service.md runs: its python blocks in order, after writing its file= blocks."""

from __future__ import annotations

import re
import sys
import types
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[2] / "docs" / "service.md"
FENCE = re.compile(r"^```(\w+)([^\n]*)\n(.*?)^```", re.S | re.M)


def test_docs_examples_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocks = FENCE.findall(DOC.read_text())
    files = [
        (m.group(1), body) for _, info, body in blocks if (m := re.search(r"file=(\S+)", info))
    ]
    code = [body for lang, info, body in blocks if lang == "python" and "file=" not in info]
    assert {name for name, _ in files} == {"greet.proto", "greet_impl.py", "deploy.toml"}
    assert len(code) >= 4
    for name, body in files:
        (tmp_path / name).write_text(body)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    module = types.ModuleType("docs_service")  # dataclasses look their module up
    monkeypatch.setitem(sys.modules, "docs_service", module)
    try:
        for body in code:
            exec(compile(body, str(DOC), "exec"), module.__dict__)
    finally:
        for mod in [m for m in sys.modules if m.startswith(("greet_api", "greet_impl"))]:
            del sys.modules[mod]
