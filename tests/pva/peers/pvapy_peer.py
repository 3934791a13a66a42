"""Run a snippet with pvapy (pvAccessCPP) in a child process: ``python pvapy_peer.py CODE``.

CODE runs with ``pva`` (the ``pvaccess`` module), ``np``, ``time``, ``emit(obj)`` (prints one
JSON line) and ``wait_line()`` (blocks for one line on stdin) in scope. A snippet that serves
PVs emits "ready" and waits for a line before it stops its server.
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np
import pvaccess as pva


def emit(obj: object) -> None:
    print(json.dumps(obj), flush=True)


def wait_line() -> str:
    return sys.stdin.readline()


def main() -> None:
    scope = {"pva": pva, "np": np, "time": time, "emit": emit, "wait_line": wait_line}
    try:
        exec(compile(sys.argv[1], "<pvapy>", "exec"), scope)
    except Exception as exc:
        emit({"error": type(exc).__name__, "message": str(exc)})


if __name__ == "__main__":
    main()
