"""RECKON_OBSERVE serves a plain program that only memoizes: no call to serve() in its code."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from reckon._net import free_port

SCRIPT = textwrap.dedent(
    """
    import os
    from reckon import memoize
    from reckon.observe import Client

    @memoize
    def square(x: int) -> int:
        return x * x

    assert [square(i) for i in range(3)] == [0, 1, 4]
    # The program asks its own introspection server, over the wire, what it computed.
    with Client(f"ws://{os.environ['RECKON_OBSERVE']}/ws") as client:
        titles = [t["title"] for t in client.tasks(limit=10)]
    print("TITLES", sorted(titles))
    """
)


def test_reckon_observe_serves_a_plain_memoizing_program(tmp_path: Path) -> None:
    script = tmp_path / "job.py"
    script.write_text(SCRIPT)
    address = f"127.0.0.1:{free_port()}"
    env = dict(os.environ, RECKON_OBSERVE=address, RECKON_CACHE_DIR=str(tmp_path / "cache"))
    done = subprocess.run(
        [sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert f"serving http://{address}/" in done.stderr
    line = next(x for x in done.stdout.splitlines() if x.startswith("TITLES"))
    assert line.count("square") == 3, line
