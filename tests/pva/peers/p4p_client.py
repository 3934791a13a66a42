"""Run a snippet against p4p's client in a child process (fresh env, no leaked global contexts).

``python p4p_client.py CODE``: CODE runs with ``ctx`` (a ``p4p.client.thread.Context``),
``emit(obj)`` (prints one JSON line), ``plain(value)`` (p4p value -> JSON-able Python) and
``wait_line()`` (blocks for one line on stdin, for tests that pace the child) in scope.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

import numpy as np
from p4p import Value
from p4p.client.thread import Context


def plain(value: Any) -> Any:
    if isinstance(value, Value):
        return {key: plain(value[key]) for key in value.keys()}  # noqa: SIM118 (a p4p Value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if hasattr(value, "raw"):
        return plain(value.raw)
    return repr(value)


def emit(obj: Any) -> None:
    print(json.dumps(obj), flush=True)


def wait_line() -> str:
    return sys.stdin.readline()


def main() -> None:
    code = sys.argv[1]
    ctx = Context("pva", nt=False)
    scope = {
        "ctx": ctx,
        "emit": emit,
        "plain": plain,
        "wait_line": wait_line,
        "time": time,
        "np": np,
        "json": json,
    }
    try:
        exec(compile(code, "<p4p-client>", "exec"), scope)
    except Exception as exc:
        emit({"error": type(exc).__name__, "message": str(exc)})
    finally:
        ctx.close()


if __name__ == "__main__":
    main()
