"""Engine basics: levels, hits, failures, records, stats."""

from __future__ import annotations

import asyncio

import pytest

from reckon.core import CachingLevel, Engine, Outcome, RequestId, TaskState
from reckon.errors import (
    CyclicRequestError,
    EngineClosedError,
    InvalidCachingLevelError,
    InvalidRequestIdError,
)

NONE, MEMORY, FULL = CachingLevel.NONE, CachingLevel.MEMORY, CachingLevel.FULL


class Counter:
    def __init__(self, value: object = "v") -> None:
        self.calls = 0
        self.value = value

    def __call__(self) -> object:
        self.calls += 1
        return self.value


def test_memory_level_computes_once_and_hits_after() -> None:
    engine = Engine()
    rid, compute = RequestId("m"), Counter()
    assert engine.get(rid, MEMORY, compute) == "v"
    assert engine.get(RequestId("m"), MEMORY, compute) == "v"  # an equal id, another object
    assert compute.calls == 1
    assert engine.contains(rid, MEMORY) and engine.contains(rid, FULL)
    counters = engine.stats()["counters"]
    assert counters["computed"] == 1 and counters["memory_hit"] == 1
    assert counters["requests"] == 2


def test_none_level_computes_every_time_and_keeps_nothing() -> None:
    engine = Engine()
    rid, compute = RequestId("n"), Counter()
    engine.get(rid, NONE, compute)
    engine.get(rid, NONE, compute)
    assert compute.calls == 2
    assert not engine.contains(rid, MEMORY)
    assert len(engine.memory) == 0
    # NONE ignores a value another level cached, and records every computation.
    engine.get(rid, MEMORY, compute)
    engine.get(rid, NONE, compute)
    assert compute.calls == 4
    assert len(engine.introspector.history()) == 4


def test_full_without_store_behaves_as_memory() -> None:
    engine = Engine()
    rid, compute = RequestId("f"), Counter()
    engine.get(rid, FULL, compute)
    engine.get(rid, FULL, compute)
    assert compute.calls == 1


def test_none_is_a_valid_value() -> None:
    engine = Engine()
    compute = Counter(None)
    assert engine.get(RequestId("none"), MEMORY, compute) is None
    assert engine.get(RequestId("none"), MEMORY, compute) is None
    assert compute.calls == 1


def test_failures_are_delivered_and_never_cached() -> None:
    engine = Engine()
    rid = RequestId("fail")
    calls = 0

    def boom() -> int:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ValueError("first time")
        return 7

    with pytest.raises(ValueError, match="first time"):
        engine.get(rid, MEMORY, boom)
    assert engine.get(rid, MEMORY, boom) == 7
    records = engine.introspector.history()
    assert [r.outcome for r in records] == [Outcome.FAILED, Outcome.COMPUTED]
    assert records[0].error == "ValueError: first time"
    assert records[0].state is TaskState.FAILED
    assert engine.stats()["counters"]["failed"] == 1


async def test_resolve_sync_and_async_compute() -> None:
    engine = Engine()

    async def slow() -> str:
        await asyncio.sleep(0)
        return "async"

    assert await engine.resolve(RequestId("a"), MEMORY, slow) == "async"
    assert await engine.resolve(RequestId("s"), MEMORY, lambda: "sync") == "sync"
    assert await engine.resolve(RequestId("a"), MEMORY, slow) == "async"
    assert engine.get(RequestId("a"), MEMORY, slow) == "async"  # shared tiers
    assert engine.stats()["counters"]["computed"] == 2


def test_get_runs_a_coroutine_compute_outside_a_loop() -> None:
    engine = Engine()

    async def coro() -> int:
        await asyncio.sleep(0)
        return 5

    assert engine.get(RequestId("c"), MEMORY, coro) == 5


def test_nested_requests_record_their_parent() -> None:
    engine = Engine()

    def leaf() -> int:
        return 1

    def middle() -> int:
        return engine.get(RequestId("leaf"), MEMORY, leaf, title="leaf") + 1

    def top() -> int:
        return engine.get(RequestId("middle"), MEMORY, middle, title="middle") + 1

    assert engine.get(RequestId("top"), MEMORY, top, title="top") == 3
    by_title = {r.title: r for r in engine.introspector.history()}
    assert by_title["top"].parent is None
    assert by_title["middle"].parent == by_title["top"].task_id
    assert by_title["leaf"].parent == by_title["middle"].task_id
    assert [r.title for r in engine.introspector.children(by_title["top"].task_id)] == ["middle"]


async def test_nested_async_requests_record_their_parent() -> None:
    engine = Engine()

    async def child() -> int:
        await asyncio.sleep(0)
        return 1

    async def parent() -> int:
        a, b = await asyncio.gather(
            engine.resolve(RequestId("c1"), MEMORY, child, title="c1"),
            engine.resolve(RequestId("c2"), MEMORY, child, title="c2"),
        )
        return a + b

    assert await engine.resolve(RequestId("p"), MEMORY, parent, title="p") == 2
    by_title = {r.title: r for r in engine.introspector.history()}
    assert by_title["c1"].parent == by_title["p"].task_id
    assert by_title["c2"].parent == by_title["p"].task_id


def test_a_request_for_its_own_value_fails_instead_of_hanging() -> None:
    engine = Engine()
    rid = RequestId("self")

    def compute() -> int:
        return engine.get(rid, MEMORY, compute)

    with pytest.raises(CyclicRequestError):
        engine.get(rid, MEMORY, compute)


def test_bad_arguments_raise_specific_errors() -> None:
    engine = Engine()
    with pytest.raises(InvalidCachingLevelError):
        engine.get(RequestId("x"), 7, lambda: 1)  # type: ignore[arg-type]
    with pytest.raises(InvalidRequestIdError):
        engine.get("not an id", MEMORY, lambda: 1)  # type: ignore[arg-type]
    assert engine.get(RequestId("x"), "memory", lambda: 1) == 1  # type: ignore[arg-type]


def test_evict_clear_close() -> None:
    engine = Engine()
    a, b = RequestId("a"), RequestId("b")
    engine.get(a, MEMORY, lambda: 1)
    engine.get(b, MEMORY, lambda: 2)
    engine.evict(a)
    assert not engine.contains(a, MEMORY) and engine.contains(b, MEMORY)
    engine.clear(MEMORY)
    assert len(engine.memory) == 0 and engine.memory.bytes == 0
    with engine:
        engine.get(a, MEMORY, lambda: 1)
    with pytest.raises(EngineClosedError):
        engine.get(a, MEMORY, lambda: 1)


def test_stats_are_plain_types() -> None:
    engine = Engine()
    engine.get(RequestId("a"), MEMORY, lambda: b"x" * 100)
    stats = engine.stats()
    assert stats["store"] is None
    assert stats["memory"]["entries"] == 1 and stats["memory"]["bytes"] >= 100

    def plain(v: object) -> bool:
        if isinstance(v, dict):
            return all(isinstance(k, str) and plain(x) for k, x in v.items())
        return v is None or type(v) in (int, float, str, bool)

    assert plain(stats)


def test_get_on_the_loop_computing_the_value_raises_instead_of_deadlocking() -> None:
    from reckon.errors import BlockingGetError

    engine = Engine()
    rid = RequestId("blocking")

    async def main() -> None:
        release = asyncio.Event()

        async def compute() -> int:
            await release.wait()
            return 1

        task = asyncio.ensure_future(engine.resolve(rid, MEMORY, compute))
        await asyncio.sleep(0)
        with pytest.raises(BlockingGetError, match="resolve"):
            engine.get(rid, MEMORY, lambda: 2)
        release.set()
        assert await task == 1

    asyncio.run(main())


def test_default_engine_is_shared_and_recreated_after_fork(
    tmp_path: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    from reckon.core import default_engine
    from reckon.core.defaults import set_default_engine

    monkeypatch.setenv("RECKON_CACHE_DIR", str(tmp_path))
    old = set_default_engine(None)
    try:
        engine = default_engine()
        assert default_engine() is engine and engine.store is not None
        engine.get(RequestId("parent only"), MEMORY, lambda: 1)
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: a fresh engine, without the parent's memory
            try:
                child = default_engine()
                fresh = child is not engine and not child.contains(RequestId("parent only"), MEMORY)
                os.write(write, b"ok" if fresh else b"shared")
            finally:
                os._exit(0)
        os.close(write)
        assert os.read(read, 16) == b"ok"
        os.waitpid(pid, 0)
        os.close(read)
    finally:
        current = set_default_engine(old)
        if current is not None:
            current.close()


def test_the_hit_path_takes_no_lock() -> None:
    """Hits still answer while every lock of the engine, its memory tier and its introspector
    is held by someone else."""
    import threading

    engine = Engine()
    rid = RequestId("lock-free")
    engine.get(rid, MEMORY, lambda: "cached")
    got: list[object] = []

    async def resolve() -> object:
        return await engine.resolve(rid, MEMORY, lambda: "recomputed")

    def hit() -> None:
        got.append(engine.get(rid, MEMORY, lambda: "recomputed"))
        got.append(asyncio.run(resolve()))

    with engine._lock, engine.memory._lock, engine.introspector._lock:
        worker = threading.Thread(target=hit)
        worker.start()
        worker.join(30)
        assert not worker.is_alive()
    assert got == ["cached", "cached"]


def test_get_with_an_async_compute_inside_a_running_loop_raises() -> None:
    from reckon.errors import BlockingGetError

    engine = Engine()

    async def compute() -> int:
        return 1

    async def main() -> None:
        with pytest.raises(BlockingGetError, match="resolve"):
            engine.get(RequestId("async-in-loop"), MEMORY, compute)

    asyncio.run(main())
    assert not engine.contains(RequestId("async-in-loop"), MEMORY)
