"""In one process: a rebound closure variable or global the function reads is a new key."""

from __future__ import annotations

from pathlib import Path

from reckon import memoize

OFFSET = 0


def test_closure_change_recomputes(cache_dir: Path) -> None:
    i = 0

    @memoize(store=cache_dir)
    def square(x: int) -> int:
        return x**2 + i

    assert square(2) == 4
    i = 1
    assert square(2) == 5, "when the closure changes, the function recomputes"
    i = 0
    assert square(2) == 4


def test_global_constant_change_recomputes(cache_dir: Path) -> None:
    global OFFSET

    @memoize(store=cache_dir)
    def shifted(x: int) -> int:
        return x + OFFSET

    try:
        assert shifted(1) == 1
        OFFSET = 10
        assert shifted(1) == 11
    finally:
        OFFSET = 0
    assert shifted(1) == 1
