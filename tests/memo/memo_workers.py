"""Module-level memoized functions for tests that cross process boundaries (pickled by reference).

Each records its body runs by appending a line to a file named by its first argument's directory,
so the parent can count how often a body really ran, whatever process ran it.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from reckon import memoize
from reckon.memo import MemoizedGroup

GROUP = MemoizedGroup("memo-workers", store=os.environ.get("MEMO_TEST_STORE", "/tmp/unused"))


def _record(log: str, x: object) -> None:
    with open(log, "a") as f:
        f.write(f"{os.getpid()} {x}\n")
        f.flush()


@memoize(group=GROUP)
def slow_square(log: str, x: int, delay: float = 0.0) -> int:
    _record(log, x)
    if delay:
        time.sleep(delay)
    return x * x


@memoize(group=GROUP)
def square(log: str, x: int) -> int:
    _record(log, x)
    return x * x


def square_all(log: str, xs: list[int]) -> list[int]:
    return [square(log, x) for x in xs]


def body_runs(log: str) -> list[str]:
    p = Path(log)
    return p.read_text().splitlines() if p.exists() else []
