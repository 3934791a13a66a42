"""The memory tier: LRU order under a byte budget; pinned entries are never evicted."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

from reckon.core import CachingLevel, Engine, MemoryTier, RequestId, estimate_size
from reckon.core.memory import MISSING

MEMORY = CachingLevel.MEMORY


def test_lru_order_under_a_small_budget() -> None:
    tier = MemoryTier(budget=300)
    for key in (1, 2, 3):
        tier.put(key, f"v{key}", 100)
    assert tier.lookup(1) == "v1"  # 1 is now the most recent: 2 is the least
    tier.put(4, "v4", 100)
    assert list(tier.keys()) == [3, 1, 4]
    assert tier.lookup(2) is MISSING
    tier.put(5, "v5", 250)  # needs room for 250: evicts 3, 1 and 4 in that order
    assert list(tier.keys()) == [5]
    assert tier.bytes == 250 and len(tier) == 1 and tier.evicted == 4


def test_replace_discard_clear_and_budget_changes() -> None:
    tier = MemoryTier(budget=1000)
    tier.put(1, "a", 100)
    tier.put(1, "b", 200)
    assert tier.lookup(1) == "b" and tier.bytes == 200 and len(tier) == 1
    assert tier.discard(1) and not tier.discard(1)
    assert tier.bytes == 0
    for key in range(10):
        tier.put(key, key, 100)
    tier.budget = 450
    assert list(tier.keys()) == [6, 7, 8, 9] and tier.bytes == 400
    tier.clear()
    assert len(tier) == 0 and tier.bytes == 0
    tier.put(1, "too big", 5000)  # bigger than the whole budget: not kept
    assert 1 not in tier and tier.bytes == 0


def test_pinned_entries_are_never_evicted() -> None:
    tier = MemoryTier(budget=200)
    tier.put(1, "pinned", 150, pin=True)
    tier.put(2, "other", 150)  # over budget: only the unpinned entry can go
    assert tier.lookup(1) == "pinned" and 2 not in tier
    assert tier.pin(1)  # a second pin
    tier.unpin(1)
    tier.put(3, "third", 10)
    assert 1 in tier
    tier.unpin(1)  # last pin: joins the LRU order, as the most recent
    assert not tier.is_pinned(1)
    tier.put(4, "fourth", 150)
    assert 1 not in tier and 3 not in tier and 4 in tier
    assert not tier.pin(99)


def test_engine_evicts_least_recently_used_values() -> None:
    value = b"x" * 1000
    size = estimate_size(value)
    engine = Engine(memory_budget=3 * size + size // 2)
    ids = [RequestId("lru", i) for i in range(5)]
    for rid in ids[:3]:
        engine.get(rid, MEMORY, lambda: bytes(value))
    engine.get(ids[0], MEMORY, lambda: b"recomputed")  # a hit: 0 becomes most recent
    engine.get(ids[3], MEMORY, lambda: bytes(value))  # evicts 1
    assert [engine.contains(rid, MEMORY) for rid in ids] == [True, False, True, True, False]
    engine.get(ids[4], MEMORY, lambda: bytes(value))  # evicts 2
    assert [engine.contains(rid, MEMORY) for rid in ids] == [True, False, False, True, True]
    assert engine.get(ids[0], MEMORY, lambda: b"recomputed") == value
    assert engine.stats()["memory"]["evicted"] == 2


def test_an_entry_being_waited_on_is_not_evicted() -> None:
    """A value computed while a waiter on a busy event loop has not yet taken it stays in memory
    however much else arrives; once taken, it is evictable like any other."""
    big = b"a" * 6000
    engine = Engine(memory_budget=int(estimate_size(big) * 1.5))
    a, b, c = RequestId("a"), RequestId("b"), RequestId("c")
    started, release, unblock = threading.Event(), threading.Event(), threading.Event()

    def compute_a() -> bytes:
        started.set()
        release.wait(60)
        return big

    loop = asyncio.new_event_loop()
    loop_thread = threading.Thread(target=loop.run_forever)
    loop_thread.start()
    try:
        owner = threading.Thread(target=engine.get, args=(a, MEMORY, compute_a))
        owner.start()
        assert started.wait(60)
        waiter = asyncio.run_coroutine_threadsafe(engine.resolve(a, MEMORY, compute_a), loop)
        deadline = time.monotonic() + 60
        while engine.stats()["counters"]["shared"] < 1:
            assert time.monotonic() < deadline
            time.sleep(0.002)
        loop.call_soon_threadsafe(unblock.wait, 60)  # the waiter's loop is now busy
        release.set()
        owner.join(60)
        assert engine.memory.is_pinned(a.memory_key)
        engine.get(b, MEMORY, lambda: b"b" * 6000)  # over budget: b goes, a cannot
        assert engine.contains(a, MEMORY) and not engine.contains(b, MEMORY)
        unblock.set()
        assert waiter.result(60) == big
        deadline = time.monotonic() + 60
        while engine.memory.is_pinned(a.memory_key):
            assert time.monotonic() < deadline
            time.sleep(0.002)
        engine.get(c, MEMORY, lambda: b"c" * 6000)  # now a is an ordinary LRU entry
        assert not engine.contains(a, MEMORY) and engine.contains(c, MEMORY)
    finally:
        loop.call_soon_threadsafe(loop.stop)
        loop_thread.join(60)
        loop.close()


def test_hits_from_many_threads_while_evicting() -> None:
    engine = Engine(memory_budget=20 * estimate_size(b"x" * 100))
    ids = [RequestId("churn", i) for i in range(200)]
    errors: list[Any] = []

    def worker(offset: int) -> None:
        try:
            for i in range(2000):
                rid = ids[(i * 7 + offset) % len(ids)]
                key = rid.parts[1] if rid.parts else None
                assert engine.get(rid, MEMORY, lambda k=key: b"x" * 100 + str(k).encode()) == (
                    b"x" * 100 + str(key).encode()
                )
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    usage = engine.memory.usage()
    assert usage["bytes"] <= usage["budget"] and usage["pinned"] == 0


def test_bad_budgets_and_sizes_raise_configuration_errors() -> None:
    import pytest

    from reckon.core import Introspector
    from reckon.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match="budget"):
        Engine(memory_budget=-1)
    with pytest.raises(ConfigurationError, match="history"):
        Introspector(history=-5)
    with pytest.raises(ConfigurationError, match="maxsize"):
        Introspector().subscribe(maxsize=0)


def test_add_keeps_the_value_already_present_and_evicts_over_the_budget() -> None:
    tier = MemoryTier(budget=300)
    first, second = object(), object()
    assert tier.add(1, first, 100) is first
    assert tier.add(1, second, 100) is first  # present: the first object wins, size unchanged
    assert tier.bytes == 100
    tier.put(2, "pinned", 100, pin=True)
    assert tier.add(2, "other", 100) == "pinned" and tier.is_pinned(2)
    tier.add(3, "v3", 100)
    tier.add(4, "v4", 150)  # over the budget: the least recent unpinned entries go
    assert tier.lookup(1) is MISSING and tier.lookup(3) is MISSING
    assert list(tier.keys()) == [4, 2] and tier.bytes == 250
