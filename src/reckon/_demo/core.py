"""Act 1, the core: caching levels, one computation shared by 50 callers, nested parents, a
second process served from the store, and the task table the engine recorded."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from typing import Any

from rich.table import Table

from reckon._demo.common import Act, run_python
from reckon.core import CachingLevel, Engine, RequestId, TaskRecord

NONE, MEMORY, FULL = CachingLevel.NONE, CachingLevel.MEMORY, CachingLevel.FULL


def _slow_square(x: int, seconds: float = 0.05) -> int:
    time.sleep(seconds)
    return x * x


def _levels(act: Act) -> None:
    act.console.print("[bold]one computation at each level[/bold]")
    for level in (NONE, MEMORY, FULL):
        rid = RequestId("demo", "square", level.name)
        calls = 0

        def compute() -> int:
            nonlocal calls
            calls += 1
            return _slow_square(7)

        for _ in range(2):
            act.engine.get(rid, level, compute, title=f"square(7) at {level.name}")
        kept = "kept nowhere" if level is NONE else "kept in memory"
        if level is FULL:
            kept = "kept in memory and in the store"
        act.say(f"{level.name:<6} asked twice, computed {calls}x, {kept}")


def _crowd(act: Act) -> None:
    act.console.print("[bold]50 concurrent callers, one computation[/bold]")
    engine = act.engine
    rid = RequestId("demo", "crowd")
    calls = 0
    lock = threading.Lock()

    def compute() -> str:
        nonlocal calls
        with lock:
            calls += 1
        time.sleep(0.3)
        return "shared result"

    async def compute_async() -> str:
        return await asyncio.to_thread(compute)

    results: list[Any] = []
    barrier = threading.Barrier(26)

    def thread_caller() -> None:
        barrier.wait(30)
        results.append(engine.get(rid, MEMORY, compute, title="crowd"))

    async def tasks() -> None:
        barrier.wait(30)
        values: list[str] = await asyncio.gather(
            *(engine.resolve(rid, MEMORY, compute_async, title="crowd") for _ in range(25))
        )
        results.extend(values)

    threads = [threading.Thread(target=thread_caller, daemon=True) for _ in range(25)]
    threads.append(threading.Thread(target=asyncio.run, args=(tasks(),), daemon=True))
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    act.say(
        f"{len(results)} callers (25 threads, 25 asyncio tasks) got "
        f"{set(results)!r}; computed {calls}x"
    )


def _nested(act: Act) -> None:
    act.console.print("[bold]nested computations record their parent[/bold]")
    engine = act.engine

    def part(i: int) -> int:
        return engine.get(
            RequestId("demo", "part", i), FULL, lambda: _slow_square(i, 0.01), title=f"part {i}"
        )

    def total() -> int:
        return sum(part(i) for i in range(3))

    value = engine.get(RequestId("demo", "total"), FULL, total, title="total of parts")
    act.say(f"total = {value}; its parts appear under it in the table below")


_SECOND_RUN = """
import sys
from reckon.core import CachingLevel, Engine, LocalStore, RequestId
engine = Engine(store=LocalStore(sys.argv[1]), name="second process")
def fail():
    raise SystemExit("the second run must not compute")
value = engine.get(RequestId("demo", "total"), CachingLevel.FULL, fail, title="total of parts")
record = engine.introspector.history()[0]
print(value, record.outcome.value, f"{record.duration * 1e3:.1f}")
"""


def _second_run(act: Act) -> None:
    act.console.print("[bold]a second process, served from the store[/bold]")
    store_dir = act.shared["store_dir"]
    out = run_python(_SECOND_RUN, store_dir).split()
    act.say(
        f"pid {os.getpid()} computed it; a new process read {out[0]} ({out[1]}, "
        f"{out[2]} ms), without computing"
    )


def _table(records: list[TaskRecord]) -> Table:
    table = Table(title="recorded tasks (Engine.introspector.history())")
    for column in ("task", "title", "level", "state", "outcome", "parent", "size", "ms"):
        table.add_column(
            column, justify="right" if column in ("task", "parent", "size", "ms") else "left"
        )
    for r in records:
        table.add_row(
            str(r.task_id),
            r.title,
            r.level.name,
            r.state.value,
            r.outcome.value if r.outcome else "",
            "" if r.parent is None else str(r.parent),
            "" if r.size is None else f"{r.size:,}",
            f"{(r.duration or 0) * 1e3:.1f}",
        )
    return table


def run(act: Act) -> None:
    engine: Engine = act.engine
    engine.clear(FULL)  # a fresh start, so every step computes the first time
    _levels(act)
    _crowd(act)
    _nested(act)
    engine.flush()
    _second_run(act)
    act.console.print(_table(sorted(engine.introspector.history(), key=lambda r: r.task_id)))
    counters = engine.stats()["counters"]
    act.say("counters: " + ", ".join(f"{k}={v}" for k, v in counters.items() if v))
    act.why(
        "whoever asks, however many at once, in this process or the next, "
        "the work is done once and every answer is recorded."
    )
