"""``reckon demo``: the inner core in a few seconds.

One computation at each caching level, 50 concurrent callers (threads and asyncio tasks) sharing
one computation, nested computations recording their parent, and a second process served from the
store on disk; then the recorded tasks as a table. The store lives in a temporary directory unless
``RECKON_CACHE_DIR`` is set (then in ``$RECKON_CACHE_DIR/demo``).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any

from rich.console import Console
from rich.table import Table

from reckon.core import CachingLevel, Engine, LocalStore, RequestId, TaskRecord

NONE, MEMORY, FULL = CachingLevel.NONE, CachingLevel.MEMORY, CachingLevel.FULL


def _slow_square(x: int, seconds: float = 0.05) -> int:
    time.sleep(seconds)
    return x * x


def _levels(engine: Engine, console: Console) -> None:
    console.rule("[bold]1. one computation at each level")
    for level in (NONE, MEMORY, FULL):
        rid = RequestId("demo", "square", level.name)
        calls = 0

        def compute() -> int:
            nonlocal calls
            calls += 1
            return _slow_square(7)

        for _ in range(2):
            engine.get(rid, level, compute, title=f"square(7) at {level.name}")
        kept = "kept nowhere" if level is NONE else "kept in memory"
        if level is FULL:
            kept = "kept in memory and in the store"
        console.print(f"  {level.name:<6} asked twice, computed {calls}x, {kept}")


def _crowd(engine: Engine, console: Console) -> None:
    console.rule("[bold]2. 50 concurrent callers, one computation")
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
        barrier.wait()
        results.append(engine.get(rid, MEMORY, compute, title="crowd"))

    async def tasks() -> None:
        barrier.wait()
        values: list[str] = await asyncio.gather(
            *(engine.resolve(rid, MEMORY, compute_async, title="crowd") for _ in range(25))
        )
        results.extend(values)

    threads = [threading.Thread(target=thread_caller) for _ in range(25)]
    threads.append(threading.Thread(target=asyncio.run, args=(tasks(),)))
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    console.print(
        f"  {len(results)} callers (25 threads, 25 asyncio tasks) got "
        f"{set(results)!r}; computed {calls}x"
    )


def _nested(engine: Engine, console: Console) -> None:
    console.rule("[bold]3. nested computations record their parent")

    def part(i: int) -> int:
        return engine.get(
            RequestId("demo", "part", i), FULL, lambda: _slow_square(i, 0.01), title=f"part {i}"
        )

    def total() -> int:
        return sum(part(i) for i in range(3))

    value = engine.get(RequestId("demo", "total"), FULL, total, title="total of parts")
    console.print(f"  total = {value}; its parts appear under it in the table below")


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


def _second_run(store_dir: str, console: Console) -> None:
    console.rule("[bold]4. a second process, served from the store")
    src = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, PYTHONPATH=src + os.pathsep + os.environ.get("PYTHONPATH", ""))
    out = subprocess.run(
        [sys.executable, "-c", _SECOND_RUN, store_dir],
        capture_output=True,
        text=True,
        env=env,
        check=True,
        timeout=60,
    ).stdout.split()
    console.print(
        f"  pid {os.getpid()} computed it; a new process read {out[0]} ({out[1]}, "
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


def run() -> None:
    console = Console()
    started = time.perf_counter()
    base = os.environ.get("RECKON_CACHE_DIR")
    holder = None
    if base:
        store_dir = os.path.join(base, "demo")
    else:
        holder = tempfile.TemporaryDirectory(prefix="reckon-demo-")
        store_dir = holder.name
    try:
        store = LocalStore(store_dir)
        with Engine(store=store, name="demo") as engine:
            if os.environ.get("RECKON_OBSERVE"):  # watch the demo live: reckon top / the web page
                from reckon.observe import autostart

                autostart(engine)
            engine.clear(FULL)  # a fresh start, so every step computes the first time
            _levels(engine, console)
            _crowd(engine, console)
            _nested(engine, console)
            engine.flush()
            _second_run(store_dir, console)
            console.print()
            console.print(_table(sorted(engine.introspector.history(), key=lambda r: r.task_id)))
            counters = engine.stats()["counters"]
            console.print("  counters: " + ", ".join(f"{k}={v}" for k, v in counters.items() if v))
    finally:
        if holder is not None:
            holder.cleanup()
    console.print(f"[dim]demo finished in {time.perf_counter() - started:.1f} s[/dim]")


if __name__ == "__main__":
    run()
