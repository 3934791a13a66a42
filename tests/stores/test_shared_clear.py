"""``f.clear()`` on one machine removes what another machine's process stored in a shared store.

"Machines" are processes with their own cache directory (so their own near tier) sharing one
Redis, or one S3 bucket served by moto.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from reckon.core import open_store
from reckon.memo.entries import read_rows

_MACHINE = """
import sys
from reckon import memoize

url, action = sys.argv[1], sys.argv[2]


@memoize(store=url, name="shared.f", assume_pure=True)
def f(x):
    print("RAN", x)
    return x * 10


if action == "compute":
    assert [f(x) for x in range(5)] == [0, 10, 20, 30, 40]
    f.group.flush()
else:
    print("REMOVED", f.clear())
    f.group.flush()
"""


def _machine(script: Path, home: Path, url: str, action: str) -> str:
    env = {**os.environ, "RECKON_CACHE_DIR": str(home)}
    done = subprocess.run(
        [sys.executable, str(script), url, action],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.parametrize("kind", ["redis", "s3"])
def test_clear_on_machine_b_removes_what_machine_a_stored(
    kind: str, tmp_path: Path, store_url: Callable[..., str]
) -> None:
    url = store_url(kind, "clear", **({"timeout": 5} if kind == "redis" else {}))
    script = tmp_path / "machine.py"
    script.write_text(_MACHINE)
    a, b = tmp_path / "machine-a", tmp_path / "machine-b"
    assert _machine(script, a, url, "compute").count("RAN") == 5
    far = open_store(url, near=None)
    rows, _unknown = read_rows(far)
    assert sorted(r.args for r in rows) == ["0", "1", "2", "3", "4"], "metadata beside values"
    assert "RAN" not in _machine(script, b, url, "compute")  # B shares A's values
    # A third machine that never computed nor read them finds them by the store's metadata.
    c = tmp_path / "machine-c"
    assert "REMOVED 5" in _machine(script, c, url, "clear")
    assert read_rows(far)[0] == []
    assert _machine(script, tmp_path / "machine-d", url, "compute").count("RAN") == 5
