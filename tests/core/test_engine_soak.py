"""A randomized soak: threads and event loops asking for overlapping ids at every level, with
failing computations and cancelled waiters. Afterwards nothing is left in flight or pinned, and
every value received was the right one."""

from __future__ import annotations

import asyncio
import random
import threading
from pathlib import Path
from typing import Any

from reckon.core import CachingLevel, Engine, LocalStore, RequestId

KEYS = 40
LEVELS = [CachingLevel.NONE, CachingLevel.MEMORY, CachingLevel.FULL]


def expected(k: int) -> tuple[str, int]:
    return ("value", k)


def test_soak_threads_and_loops_with_failures_and_cancellations(tmp_path: Path) -> None:
    engine = Engine(store=LocalStore(tmp_path / "store"), memory_budget=1_500)
    ids = [RequestId("soak", k) for k in range(KEYS)]
    errors: list[str] = []
    computes = [0]
    lock = threading.Lock()

    def sync_compute(k: int, rng: random.Random) -> Any:
        with lock:
            computes[0] += 1
        if rng.random() < 0.1:
            raise KeyError(k)
        return expected(k)

    def thread_worker(seed: int) -> None:
        rng = random.Random(seed)
        for _ in range(400):
            k = rng.randrange(KEYS)
            try:
                value = engine.get(ids[k], rng.choice(LEVELS), lambda k=k: sync_compute(k, rng))
                if value != expected(k):
                    errors.append(f"thread got {value!r} for {k}")
            except KeyError as exc:
                if exc.args != (k,):
                    errors.append(f"thread got the wrong failure {exc!r} for {k}")

    async def loop_worker(seed: int) -> None:
        rng = random.Random(seed)

        async def compute(k: int) -> Any:
            await asyncio.sleep(rng.random() * 0.002)
            return sync_compute(k, rng)

        async def one(k: int) -> None:
            try:
                value = await engine.resolve(ids[k], rng.choice(LEVELS), lambda: compute(k))
                if value != expected(k):
                    errors.append(f"task got {value!r} for {k}")
            except KeyError as exc:
                if exc.args != (k,):
                    errors.append(f"task got the wrong failure {exc!r} for {k}")

        for _ in range(40):
            tasks = [asyncio.ensure_future(one(rng.randrange(KEYS))) for _ in range(10)]
            await asyncio.sleep(rng.random() * 0.002)
            for task in tasks:
                if rng.random() < 0.2:
                    task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    threads = [threading.Thread(target=thread_worker, args=(n,)) for n in range(4)]
    threads += [
        threading.Thread(target=asyncio.run, args=(loop_worker(100 + n),)) for n in range(3)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
        assert not t.is_alive(), "a worker hung"
    assert errors == []
    stats = engine.stats()
    assert stats["inflight"] == 0
    assert stats["memory"]["pinned"] == 0
    assert stats["memory"]["bytes"] <= 1_500
    assert engine.introspector.live() == []
    counters = stats["counters"]
    assert counters["shared"] > 0 and counters["store_hit"] > 0  # the mix really happened
    assert counters["computed"] + counters["failed"] + counters["cancelled"] >= 1
    assert computes[0] >= counters["computed"]
    engine.close()
    # What reached the store is right.
    with Engine(store=LocalStore(tmp_path / "store")) as fresh:
        for k in range(KEYS):
            if fresh.contains(ids[k]):
                assert fresh.get(ids[k], CachingLevel.FULL, lambda: None) == expected(k)
