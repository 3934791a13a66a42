"""What a user sees: tracebacks without reckon's frames, verbose lines, why a call recomputed."""

from __future__ import annotations

import asyncio
import traceback
from pathlib import Path
from typing import Any

import pytest

import reckon
from reckon import memoize

RECKON_DIR = str(Path(reckon.__file__).resolve().parent)


def _frames(exc: BaseException) -> list[traceback.FrameSummary]:
    return list(traceback.extract_tb(exc.__traceback__))


def _failing_helper(x: int) -> int:
    raise ValueError(f"bad input {x}")


def test_an_error_of_the_function_reaches_the_caller_without_reckon_frames(
    cache_dir: Path,
) -> None:
    @memoize(store=cache_dir)
    def compute(x: int) -> int:
        return _failing_helper(x)

    with pytest.raises(ValueError, match="bad input 3") as info:
        compute(3)
    frames = _frames(info.value)
    assert [f.name for f in frames] == [
        "test_an_error_of_the_function_reaches_the_caller_without_reckon_frames",
        "compute",
        "_failing_helper",
    ]
    assert not any(f.filename.startswith(RECKON_DIR) for f in frames)


def test_a_recursive_or_async_or_method_call_is_as_clean(cache_dir: Path) -> None:
    @memoize(store=cache_dir)
    def down(n: int) -> int:
        return _failing_helper(n) if n == 0 else down(n - 1)

    @memoize(store=cache_dir)
    async def later(x: int) -> int:
        await asyncio.sleep(0)
        return _failing_helper(x)

    class Model:
        @memoize(store=cache_dir)
        def fit(self, x: int) -> int:
            return _failing_helper(x)

    errors: list[BaseException] = []
    for call in (lambda: down(2), lambda: asyncio.run(later(1)), lambda: Model().fit(2)):
        with pytest.raises(ValueError) as info:
            call()
        errors.append(info.value)
    for exc in errors:
        names = [f.name for f in _frames(exc) if f.filename.startswith(RECKON_DIR)]
        assert names == [], names
    assert [f.name for f in _frames(errors[0])].count("down") == 3


def test_an_error_of_reckon_itself_keeps_its_traceback(cache_dir: Path) -> None:
    @memoize(store=cache_dir)
    def takes(x: Any) -> int:
        return 1

    with open(__file__) as fh, pytest.raises(reckon.errors.UnhashableArgumentError) as info:
        takes(fh)
    assert any(f.filename.startswith(RECKON_DIR) for f in _frames(info.value))
