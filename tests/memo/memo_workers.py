"""Module-level memoized functions for tests that cross process boundaries (pickled by reference).

Each records its body runs by appending a line to a file named by its first argument's directory,
so the parent can count how often a body really ran, whatever process ran it.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Any

from reckon import memoize
from reckon.memo import MemoizedGroup

# A private directory per process: a test that forgets to pass its group along fails (each worker
# would get a cache of its own) instead of silently sharing a stale one.
GROUP = MemoizedGroup("memo-workers", store=tempfile.mkdtemp(prefix="memo-workers-"))


def _record(log: str, x: object) -> None:
    with open(log, "a") as f:
        f.write(f"{os.getpid()} {x}\n")
        f.flush()


@memoize(group=GROUP, assume_pure=True)
def slow_square(log: str, x: int, delay: float = 0.0) -> int:
    _record(log, x)
    if delay:
        time.sleep(delay)
    return x * x


@memoize(group=GROUP, assume_pure=True)
def square(log: str, x: int) -> int:
    _record(log, x)
    return x * x


def square_all(fn: Any, log: str, xs: list[int]) -> list[int]:
    """Call the memoized ``fn`` (pickled with its group) on every x."""
    return [fn(log, x) for x in xs]


def body_runs(log: str) -> list[str]:
    p = Path(log)
    return p.read_text().splitlines() if p.exists() else []
