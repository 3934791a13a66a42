"""The decorator through the public API: options, keys, management methods, errors."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from reckon import CachingLevel, Memoized, MemoizedGroup, memoize
from reckon.errors import (
    ConfigurationError,
    InvalidCachingLevelError,
    NotMemoizableError,
    UnhashableArgumentError,
)

calls: list[Any] = []


@pytest.fixture(autouse=True)
def _reset_calls() -> None:
    calls.clear()


OPTION_SETS: list[dict[str, Any]] = [
    {},
    {"name": "tests.square"},
    {"level": CachingLevel.MEMORY},
    {"level": CachingLevel.FULL},
    {"size": 1000},
    {"size": "10KiB"},
    {"size": "1 MB", "policy": "lru"},
    {"policy": "gds"},
    {"ttl": 3600},
    {"version": "1.0"},
    {"replay_stdout": True},
    {"replay_logs": True},
    {"assume_pure": True},
    {"key": lambda x: x % 100},
]


@pytest.mark.parametrize("options", OPTION_SETS, ids=lambda o: ",".join(o) or "defaults")
def test_option_combinations_call_2_3_2(options: dict[str, Any], cache_dir: Path) -> None:
    @memoize(
        store=cache_dir,
        **{k: v for k, v in options.items() if k not in ("size", "policy")},
        **({"size": options["size"]} if "size" in options else {}),
        **({"policy": options["policy"]} if "policy" in options else {}),
    )
    def square(x: int) -> int:
        calls.append(x)
        return x**2

    assert [square(2), square(3), square(2)] == [4, 9, 4]
    assert calls == [2, 3]
    assert isinstance(square, Memoized)
    assert repr(square).startswith("<memoized")


def test_group_option_and_group_by_name(cache_dir: Path) -> None:
    group = MemoizedGroup("decorator-test-group", store=cache_dir, size="1 MiB", policy="lru")

    @memoize(group="decorator-test-group")
    def f(x: int) -> int:
        calls.append(x)
        return x + 1

    assert f.group is group
    assert [f(1), f(1)] == [2, 2]
    assert calls == [1]
    assert (cache_dir / "index.sqlite3").exists()


def test_level_none_always_computes(cache_dir: Path) -> None:
    @memoize(store=cache_dir, level=CachingLevel.NONE)
    def f(x: int) -> int:
        calls.append(x)
        return x

    f(1)
    f(1)
    assert calls == [1, 1]
    assert not f.would_hit(1)


def test_argument_binding_shares_keys(cache_dir: Path) -> None:
    @memoize(store=cache_dir)
    def f(a: int, b: int = 2, *rest: int, c: int = 3, **extra: int) -> int:
        calls.append((a, b, rest, c, extra))
        return a + b + sum(rest) + c + sum(extra.values())

    assert f(1, b=2) == f(a=1, b=2) == f(1) == f(1, 2) == f(1, 2, c=3) == 6
    assert len(calls) == 1
    f(1, 2, 3)
    f(1, 2, 3, c=3)
    assert len(calls) == 2
    f(1, x=1, y=2)
    f(1, y=2, x=1)  # **kwargs order does not matter
    assert len(calls) == 3
    with pytest.raises(TypeError):
        f()  # type: ignore[call-arg]


def test_positional_fast_path_matches_binding(cache_dir: Path) -> None:
    @memoize(store=cache_dir)
    def g(a: Any, b: Any = None) -> Any:
        calls.append((a, b))
        return (a, b)

    g(1)
    g(1, None)
    g(a=1)
    g(b=None, a=1)
    assert len(calls) == 1
    g(True)  # True == 1 but is another value
    g(1.0)
    assert len(calls) == 3


def test_numpy_shape_is_part_of_the_key(cache_dir: Path) -> None:
    @memoize(store=cache_dir)
    def total(a: np.ndarray) -> float:
        calls.append(a.shape)
        return float(a.sum())

    total(np.zeros((2, 3)))
    total(np.zeros((3, 2)))
    total(np.zeros((2, 3)))
    assert calls == [(2, 3), (3, 2)]


def test_ignore_and_key(cache_dir: Path) -> None:
    @memoize(store=cache_dir, ignore=["verbose"])
    def f(x: int, verbose: bool = False) -> int:
        calls.append(x)
        return x

    f(1, verbose=False)
    f(1, verbose=True)
    f(1, True)
    assert calls == [1]

    @memoize(store=cache_dir, key=lambda path, mode="r": path)
    def g(path: str, mode: str = "r") -> str:
        calls.append(path)
        return path

    g("a", "r")
    g("a", "rb")
    assert calls == [1, "a"]
    with pytest.raises(ConfigurationError, match="verbos"):
        memoize(store=cache_dir, ignore=["verbos"])(lambda_free)


def lambda_free(x: int, verbose: bool = False) -> int:
    return x


def test_unhashable_argument_names_the_argument(cache_dir: Path, tmp_path: Path) -> None:
    @memoize(store=cache_dir)
    def f(x: int, handle: Any) -> int:
        return x

    with open(tmp_path / "file", "w") as handle, pytest.raises(UnhashableArgumentError) as info:
        f(1, handle)
    message = str(info.value)
    assert "handle" in message
    assert "ignore=" in message and "key=" in message


def test_would_hit_evict_clear(cache_dir: Path) -> None:
    @memoize(store=cache_dir)
    def f(x: int) -> int:
        calls.append(x)
        return x

    assert not f.would_hit(1)
    f(1)
    f(2)
    assert f.would_hit(1) and f.would_hit(x=1)
    f.evict(1)
    assert not f.would_hit(1)
    assert f.would_hit(2)
    f(1)
    assert calls == [1, 2, 1]
    assert f.clear() >= 2
    assert not f.would_hit(1) and not f.would_hit(2)
    f(2)
    assert calls == [1, 2, 1, 2]


def test_would_hit_after_write_read(cache_dir: Path) -> None:
    """charmonium's read/write cycle: a value written then read back still hits."""

    @memoize(store=cache_dir)
    def double(x: int) -> int:
        return 2 * x

    double(2)
    double.group.flush()
    double.group.engine.clear(CachingLevel.MEMORY)
    assert double.would_hit(2)
    double(3)
    assert double.would_hit(2) and double.would_hit(3)
    assert [double(2), double(3)] == [4, 6]


def test_stats(cache_dir: Path) -> None:
    @memoize(store=cache_dir)
    def f(x: int) -> int:
        return x

    for x in (1, 2, 1, 1):
        f(x)
    s = f.stats()
    assert (s["hits"], s["misses"], s["calls"]) == (2, 2, 4)
    assert s["compute_seconds"] > 0 and s["saved_seconds"] > 0
    assert s["hit_ratio"] == 0.5
    f.reset_stats()
    assert f.stats()["calls"] == 0


def test_ttl_option_expires(cache_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import sys
    import types

    now = [1000.0]
    module = sys.modules["reckon.memo.memoize"]
    monkeypatch.setattr(module, "time", types.SimpleNamespace(time=lambda: now[0]))

    @memoize(store=cache_dir, ttl=10)
    def f(x: int) -> int:
        calls.append(x)
        return x

    f(1)
    now[0] += 5
    f(1)
    assert calls == [1]
    assert f.would_hit(1)
    now[0] += 10
    assert not f.would_hit(1)
    f(1)
    assert calls == [1, 1]


def test_errors_are_not_cached(cache_dir: Path) -> None:
    @memoize(store=cache_dir)
    def f(x: int) -> int:
        calls.append(x)
        if len(calls) == 1:
            raise ValueError("first time fails")
        return x

    with pytest.raises(ValueError):
        f(1)
    assert f(1) == 1
    assert calls == [1, 1]


def test_generators_and_lambdas_are_refused() -> None:
    def gen(n: int) -> Any:
        yield from range(n)

    async def agen(n: int) -> Any:
        yield n

    with pytest.raises(NotMemoizableError, match="generator"):
        memoize(gen)
    with pytest.raises(NotMemoizableError, match="async generator"):
        memoize(agen)
    with pytest.raises(NotMemoizableError, match="lambda"):
        memoize(lambda x: x)
    with pytest.raises(NotMemoizableError, match="Python function"):
        memoize(len)  # type: ignore[arg-type]
    with pytest.raises(NotMemoizableError, match="already memoized"):
        memoize(memoize(lambda_free))


def test_bad_configuration() -> None:
    with pytest.raises(ConfigurationError, match="size"):
        memoize(size="lots")
    with pytest.raises(ConfigurationError, match="ttl"):
        memoize(ttl=-1)
    with pytest.raises(ConfigurationError, match="policy"):
        MemoizedGroup("bad", policy="fifo")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="either group"):
        memoize(group="x", store="/tmp/x")
    # levels are checked by the core's as_level, for the decorator and for groups alike
    for make in (lambda lv: memoize(level=lv), lambda lv: MemoizedGroup("lv", level=lv)):
        with pytest.raises(InvalidCachingLevelError, match="'disk'"):
            make("disk")
        with pytest.raises(InvalidCachingLevelError, match="7"):
            make(7)


def test_levels_by_name_or_number(cache_dir: Path) -> None:
    calls: list[int] = []

    @memoize(level="memory")
    def once(x: int) -> int:
        calls.append(x)
        return x

    once(1)
    once(1)
    assert calls == [1] and once.level is CachingLevel.MEMORY
    assert MemoizedGroup("by-number", level=0).level is CachingLevel.NONE


async def test_async_functions(cache_dir: Path) -> None:
    @memoize(store=cache_dir)
    async def fetch(x: int) -> int:
        calls.append(x)
        await asyncio.sleep(0)
        return x * 10

    assert asyncio.iscoroutinefunction(fetch)
    assert await fetch(1) == 10
    results = await asyncio.gather(fetch(2), fetch(2), fetch(1))
    assert results == [20, 20, 10]
    assert calls == [1, 2]
    assert fetch.would_hit(2)


def test_composition(cache_dir: Path) -> None:
    @memoize(store=cache_dir)
    def double(x: int) -> int:
        calls.append(("double", x))
        return x * 2

    @memoize(store=cache_dir)
    def double_square(x: int) -> int:
        calls.append(("double_square", x))
        return double(x) ** 2

    assert double_square(3) == 36
    assert double_square.would_hit(3)
    assert double.would_hit(3)
    assert double_square(3) == 36
    assert calls == [("double_square", 3), ("double", 3)]


def test_memoized_as_argument_hashes_by_code(cache_dir: Path) -> None:
    @memoize(store=cache_dir)
    def inc(x: int) -> int:
        return x + 1

    @memoize(store=cache_dir)
    def apply(fn: Any, x: int) -> int:
        calls.append(x)
        return fn(x)

    assert apply(inc, 1) == 2
    assert apply(inc, 1) == 2
    assert calls == [1]


def test_logging_lines(cache_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="reckon.memo")

    @memoize(store=cache_dir)
    def loud(x: str) -> int:
        return len(x)

    loud("a" * 5000)
    loud("a" * 5000)
    loud.group.flush()
    text = [r.getMessage() for r in caplog.records if r.name == "reckon.memo"]
    assert any(t.startswith("miss: ") for t in text)
    assert any(t.startswith("store: ") for t in text)
    assert any(t.startswith("hit: ") for t in text)
    assert all(len(t) < 400 for t in text), "argument reprs are truncated"


def test_impurity_warns_once_unless_assume_pure(cache_dir: Path) -> None:
    from reckon.errors import ImpurityWarning

    @memoize(store=cache_dir)
    def stamp(x: int) -> float:
        return time.time() + x

    with pytest.warns(ImpurityWarning, match="stamp"):
        stamp(1)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        stamp(2)  # once per function

        @memoize(store=cache_dir, assume_pure=True)
        def stamp2(x: int) -> float:
            return time.time() + x

        stamp2(1)


def test_time_accounting_is_not_overreported(cache_dir: Path) -> None:
    """charmonium's time_cost bug: time is counted once, for the body only; a hit adds the
    entry's compute time to time saved and nothing to time computing."""

    @memoize(store=cache_dir, assume_pure=True)
    def slow(x: int) -> int:
        time.sleep(0.02)
        return x

    slow(1)
    computed = slow.stats()["compute_seconds"]
    assert 0.02 <= computed < 30
    slow(1)
    slow(1)
    s = slow.stats()
    assert s["compute_seconds"] == computed
    assert s["saved_seconds"] == pytest.approx(2 * computed)
