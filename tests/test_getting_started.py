"""docs/getting-started.md runs as written: its file= blocks are written to a scratch folder, then
its python blocks and its `sh run` blocks run there in order, in one fresh process."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

DOC = Path(__file__).resolve().parents[1] / "docs" / "getting-started.md"
FENCE = re.compile(r"^```(\w+)([^\n]*)\n(.*?)^```", re.S | re.M)

DRIVER = """
import json, os, subprocess, sys
steps = json.loads(sys.argv[1])
namespace = {"__name__": "getting_started"}
sys.path.insert(0, os.getcwd())
for kind, body in steps:
    if kind == "python":
        exec(compile(body, "docs/getting-started.md", "exec"), namespace)
    else:
        for line in body.splitlines():
            subprocess.run(line, shell=True, check=True)
"""


def test_getting_started_runs(tmp_path: Path) -> None:
    blocks = FENCE.findall(DOC.read_text())
    steps: list[tuple[str, str]] = []
    for lang, info, body in blocks:
        name = re.search(r"file=(\S+)", info)
        if name:
            (tmp_path / name.group(1)).write_text(body)
        elif lang == "python":
            steps.append(("python", body))
        elif lang == "sh" and info.split() == ["run"]:
            steps.append(("sh", body))
    assert [k for k, _ in steps].count("python") == 4 and len(steps) == 6
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    r = subprocess.run(
        [sys.executable, "-c", DRIVER, json.dumps(steps)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert (tmp_path / "hello_api" / "hello_reckon.py").exists()
