"""Caching on an fsspec file system (the S3 example, run on fsspec's in-memory and local file
systems since tests have no network)."""

from __future__ import annotations

import pickle
import uuid
from pathlib import Path
from typing import Any

import fsspec
import pytest

from reckon import CachingLevel, MemoizedGroup, memoize
from reckon.core import Store
from reckon.core.stores import ObjectStore
from reckon.errors import ConfigurationError

calls: list[Any] = []


@pytest.fixture(autouse=True)
def _reset() -> None:
    calls.clear()


def _memory_url() -> str:
    return f"memory://reckon-tests/{uuid.uuid4().hex}"


def test_memoize_on_the_memory_file_system() -> None:
    store = ObjectStore(_memory_url())
    assert isinstance(store, Store)

    @memoize(store=store)
    def square(x: int) -> int:
        calls.append(x)
        return x * x

    assert [square(3), square(3)] == [9, 9]
    square.group.engine.clear(CachingLevel.MEMORY)  # the next hit is read from the file system
    assert square.would_hit(3)
    assert square(3) == 9
    assert calls == [3]
    usage = store.usage()
    assert usage.entries == 1 and usage.bytes > 0
    assert len(list(store.keys())) == 1


def test_processes_share_a_cache_through_a_url(tmp_path: Path, run_py: Any) -> None:
    url = f"file://{tmp_path / 'bucket'}"
    code = f"""
        from reckon import memoize
        from reckon.core.stores import ObjectStore
        @memoize(store=ObjectStore({url!r}), name="fsspec.f")
        def f(x):
            print("RAN", x)
            return x + 1
        print("VALUE", f(41))
    """
    assert "RAN 41" in run_py(code).stdout
    out = run_py(code).stdout
    assert "RAN" not in out and "VALUE 42" in out


def test_corrupt_objects_are_dropped_and_recomputed() -> None:
    store = ObjectStore(_memory_url())
    group = MemoizedGroup(f"fsspec-corrupt-{uuid.uuid4().hex}", store=store)

    @memoize(group=group)
    def f(x: int) -> int:
        calls.append(x)
        return x

    f(1)
    (key,) = list(store.keys())
    fs = fsspec.filesystem("memory")
    path = f"{store.url.removeprefix('memory:/')}/{key[:2]}/{key}"
    fs.pipe_file(path, b"RKFS" + b"\0" * 30)  # wrong length and checksum
    assert store.get(key) is None
    assert not store.contains(key)
    group.engine.clear(CachingLevel.MEMORY)
    assert f(1) == 1
    assert calls == [1, 1]


def test_budget_evicts_the_oldest_writes() -> None:
    evicted: list[str] = []
    store = ObjectStore(_memory_url(), budget=2500, on_evict=evicted.append)
    keys = [f"{i:064x}" for i in range(4)]
    for key in keys:
        store.put(key, b"x" * 1000)
    usage = store.usage()
    assert usage.bytes <= 2500 and usage.budget == 2500
    assert evicted and set(evicted) <= set(keys[:2])
    assert store.get(keys[-1]) == b"x" * 1000
    assert store.evict(0) == usage.entries
    assert store.usage().entries == 0


def test_pieces_keys_and_errors() -> None:
    store = ObjectStore(_memory_url())
    key = "ab" * 32
    store.put(key, [b"hello ", memoryview(b"world")])
    assert store.get(key) == b"hello world"
    assert store.delete(key) and not store.delete(key)
    assert store.get(key) is None
    with pytest.raises(ValueError):
        store.get("not-a-key")
    with pytest.raises(ConfigurationError):
        ObjectStore(_memory_url(), budget=0)


def test_store_and_group_pickle(tmp_path: Path) -> None:
    store = ObjectStore(f"file://{tmp_path / 'b'}", budget=10_000)
    again = pickle.loads(pickle.dumps(store))
    assert (again.url, again.budget) == (store.url, store.budget)
    group = MemoizedGroup(f"fsspec-pickle-{uuid.uuid4().hex}", store=store)
    copy = pickle.loads(pickle.dumps(group))
    assert copy.name == group.name


def test_store_reads_of_nested_calls_are_not_side_effects(tmp_path: Path) -> None:
    import warnings

    store = ObjectStore(f"file://{tmp_path / 'nested'}")
    group = MemoizedGroup(f"fsspec-nested-{uuid.uuid4().hex}", store=store)

    @memoize(group=group)
    def inner(x: int) -> int:
        return x + 1

    @memoize(group=group)
    def outer(x: int) -> int:
        return inner(x) * 2

    inner(1)
    group.engine.clear(CachingLevel.MEMORY)  # inner(1) is read from files under tmp_path
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert outer(1) == 4
