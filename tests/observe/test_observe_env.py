"""RECKON_OBSERVE serves a plain program that only memoizes: no call to serve() in its code."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

SCRIPT = textwrap.dedent(
    """
    from reckon import memoize
    from reckon.observe import Client
    from reckon.observe.startup import autostart

    @memoize
    def square(x: int) -> int:
        return x * x

    assert [square(i) for i in range(3)] == [0, 1, 4]
    # The program asks its own introspection server, over the wire, what it computed.
    # RECKON_OBSERVE asked for port 0: the server reports the one it bound.
    with Client(autostart().ws_url) as client:
        titles = [t["title"] for t in client.tasks(limit=10)]
    print("TITLES", sorted(titles))
    """
)


def test_reckon_observe_serves_a_plain_memoizing_program(tmp_path: Path) -> None:
    script = tmp_path / "job.py"
    script.write_text(SCRIPT)
    env = dict(os.environ, RECKON_OBSERVE="127.0.0.1:0", RECKON_CACHE_DIR=str(tmp_path / "cache"))
    done = subprocess.run(
        [sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert re.search(r"serving http://127\.0\.0\.1:[1-9][0-9]*/", done.stderr), done.stderr
    line = next(x for x in done.stdout.splitlines() if x.startswith("TITLES"))
    assert line.count("square") == 3, line
    # Memoized computations are titled with their (short) arguments, not just the function.
    for i in range(3):
        assert f"job.square({i})" in line or f"__main__.square({i})" in line, line
