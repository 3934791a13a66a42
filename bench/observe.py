"""Observe benchmarks: what watching costs the watched program, and how fast events flow.

1. Cost per computation (an engine miss at level NONE with a trivial compute) with capture off,
   on, and on with a subscribed client; and the cost of a memory hit with capture off and on.
   Target: capture adds <= 2 us per computation and nothing to a hit.
2. Events per second delivered to a subscribed client while the engine computes flat out.
   Target: >= 10,000 events/s.

The subscribed client runs in a child process (as ``reckon top`` would, in another terminal);
the server runs in the benchmarked process, because that is where its cost lands. Each per-op
figure is the best of a few repetitions: the machine is shared, and one busy moment must not
decide a figure.

Run: ``.venv/bin/python bench/observe.py``.
"""

from __future__ import annotations

import gc
import json
import subprocess
import sys
import time
from collections.abc import Callable

from rich.console import Console
from rich.table import Table

from reckon.core import CachingLevel, Engine, RequestId, TaskEvent
from reckon.observe import serve

N_MISS = 20_000
N_HIT = 200_000
REPEATS = 5
FLOOD_COMPUTATIONS = 40_000
#: CPU time of this whole process (the engine's thread and the server's): what observing costs
#: the observed program, and far steadier than wall time on a machine other jobs share.
CLOCK = time.process_time_ns

_CLIENT = r"""
import asyncio, json, sys, time
from reckon.observe import AsyncClient, EventsPush

async def main(url):
    async with AsyncClient(url) as client:
        sub = await client.subscribe(queue=int(sys.argv[2]), coalesce=sys.argv[3] == "1")
        print("ready", flush=True)
        loop = asyncio.get_running_loop()
        stop = loop.run_in_executor(None, sys.stdin.readline)
        count, first, last, dropped = 0, None, None, 0
        enough = asyncio.Event()
        target = [None]
        async def consume():
            nonlocal count, first, last, dropped
            async for push in sub:
                if isinstance(push, EventsPush):
                    if push.events:
                        now = time.perf_counter()
                        first = first or now
                        last = now
                        count += len(push.events)
                    dropped = push.dropped
                    if target[0] is not None and count + dropped >= target[0]:
                        enough.set()
        task = asyncio.ensure_future(consume())
        wanted = int(await stop)
        target[0] = wanted
        if wanted and count + dropped < wanted:
            try:
                await asyncio.wait_for(enough.wait(), 30)
            except asyncio.TimeoutError:
                pass
        else:
            await asyncio.sleep(0.5)
        task.cancel()
        span = (last - first) if first and last and last > first else 0.0
        print(json.dumps({"events": count, "span": span, "dropped": dropped,
                          "local_dropped": sub.local_dropped}), flush=True)

asyncio.run(main(sys.argv[1]))
"""


class SubscribedClient:
    """A child process subscribed to the server; ``finish()`` returns what it received."""

    def __init__(self, url: str, queue: int = 10_000, coalesce: bool = False) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _CLIENT, url, str(queue), "1" if coalesce else "0"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if line.strip() != "ready":
            raise SystemExit(f"benchmark client failed to start: {line!r}")

    def finish(self, drain_until: int | None = None) -> dict[str, float]:
        """Stop the client (after ``drain_until`` events arrived or 30 s) and report."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(f"{drain_until or 0}\n")
        self.proc.stdin.flush()
        self.proc.stdin.write("stop\n")
        self.proc.stdin.flush()
        result: dict[str, float] = json.loads(self.proc.stdout.readline())
        self.proc.wait(30)
        return result


def best_ns(fn: Callable[[], None], n: int) -> float:
    """Best-of-REPEATS nanoseconds per call of a loop of ``n`` calls that ``fn`` runs."""
    best = float("inf")
    for _ in range(REPEATS):
        gc.collect()
        t0 = CLOCK()
        fn()
        best = min(best, (CLOCK() - t0) / n)
    return best


def best_interleaved(
    engine: Engine, make: Callable[[Engine, int], Callable[[], None]], n: int
) -> tuple[float, float]:
    """(capture off, capture on) ns per call, measured alternately so that a busy moment of
    the shared machine hits both cases alike."""
    run = make(engine, n)
    best = {False: float("inf"), True: float("inf")}
    for _ in range(REPEATS):
        for capture in (False, True):
            engine.introspector.capture = capture
            engine.introspector.clear_history()
            gc.collect()
            t0 = CLOCK()
            run()
            best[capture] = min(best[capture], (CLOCK() - t0) / n)
    engine.introspector.capture = True
    return best[False], best[True]


def miss_loop(engine: Engine, n: int) -> Callable[[], None]:
    rid = RequestId("bench", "miss")
    get = engine.get
    level = CachingLevel.NONE

    def compute() -> int:
        return 1

    def run() -> None:
        for _ in range(n):
            get(rid, level, compute, title="bench")

    return run


def hit_loop(engine: Engine, n: int) -> Callable[[], None]:
    rid = RequestId("bench", "hit")
    engine.get(rid, CachingLevel.MEMORY, lambda: 1)
    get = engine.get
    level = CachingLevel.MEMORY

    def compute() -> int:
        return 1

    def run() -> None:
        for _ in range(n):
            get(rid, level, compute)

    return run


def breakdown() -> Table:
    """Where a subscribed client's cost lands, per event, measured piece by piece."""
    import asyncio

    from reckon.observe import protocol as p
    from reckon.observe.server import _event_dict, _EventQueue

    eng = Engine(name="breakdown")
    events: list[TaskEvent] = []
    eng.introspector.add_listener(events.append)
    rid = RequestId("bench", "breakdown")
    for _ in range(2_000):
        eng.get(rid, CachingLevel.NONE, int, title="breakdown")
    n = len(events)
    record = events[-1].record
    loop = asyncio.new_event_loop()
    queue = _EventQueue(loop, 10**9)
    dicts = [_event_dict(e) for e in events]

    def snap() -> None:
        for _ in range(n):
            TaskEvent(0, record.snapshot())

    def put() -> None:
        for e in events:
            queue.put(e)

    def to_dict() -> None:
        for e in events:
            _event_dict(e)

    def pack() -> None:
        for i in range(0, n, 2_000):
            p.encode_events(1, dicts[i : i + 2_000], 0)

    table = Table(title="where a subscribed client's cost goes (process CPU ns per event)")
    table.add_column("step")
    table.add_column("thread")
    table.add_column("ns/event", justify="right")
    table.add_row(
        "core: record snapshot + TaskEvent (Introspector._emit)",
        "engine",
        f"{best_ns(snap, n):,.0f}",
    )
    table.add_row("observe: bounded queue hand-off (listener)", "engine", f"{best_ns(put, n):,.0f}")
    table.add_row(
        "observe: TaskRecord.to_dict + event map", "server", f"{best_ns(to_dict, n):,.0f}"
    )
    table.add_row("observe: msgpack frame of 2,000 events", "server", f"{best_ns(pack, n):,.0f}")
    table.caption = "a computation makes 3 events (pending, running, done)"
    loop.close()
    eng.close()
    return table


def bare_loop(n: int) -> Callable[[], None]:
    def compute() -> int:
        return 1

    def run() -> None:
        for _ in range(n):
            compute()

    return run


def main() -> None:
    console = Console(width=120)
    rows: list[tuple[str, float, float | None]] = []

    # ------------------------------------------------------------------ cost per computation
    engine = Engine(name="bench")
    handle = serve(engine)
    bare = best_ns(bare_loop(N_MISS), N_MISS)

    miss_off, miss_on = best_interleaved(engine, miss_loop, N_MISS)
    hit_off, hit_on = best_interleaved(engine, hit_loop, N_HIT)
    engine.introspector.clear_history()

    client = SubscribedClient(handle.url)  # the default queue of 10,000 events
    miss_sub = best_ns(miss_loop(engine, N_MISS), N_MISS)
    hit_sub = best_ns(hit_loop(engine, N_HIT), N_HIT)
    received = client.finish()
    engine.introspector.clear_history()
    client = SubscribedClient(handle.url, coalesce=True)  # as reckon top and the web page
    miss_coalesced = best_ns(miss_loop(engine, N_MISS), N_MISS)
    received_coalesced = client.finish()

    rows += [
        ("plain function call (reference)", bare, None),
        ("computation, capture off", miss_off, None),
        ("computation, capture on", miss_on, miss_on - miss_off),
        ("computation, capture on + subscribed client", miss_sub, miss_sub - miss_off),
        (
            "computation, capture on + coalescing client (top, web)",
            miss_coalesced,
            miss_coalesced - miss_off,
        ),
        ("memory hit, capture off", hit_off, None),
        ("memory hit, capture on", hit_on, hit_on - hit_off),
        ("memory hit, capture on + subscribed client", hit_sub, hit_sub - hit_off),
    ]
    table = Table(title=f"cost per request (process CPU ns, best of {REPEATS})")
    table.add_column("case")
    table.add_column("ns/op", justify="right")
    table.add_column("added by observing", justify="right")
    table.add_column("x capture off", justify="right")
    for name, ns, added in rows:
        base = hit_off if "hit" in name else miss_off
        table.add_row(
            name,
            f"{ns:,.0f}",
            "" if added is None else f"{added:+,.0f} ns ({added / 1000:+.2f} us)",
            f"{ns / base:.2f}" if "reference" not in name else "",
        )
    console.print(table)
    for name, got in (("subscribed", received), ("coalescing", received_coalesced)):
        console.print(
            f"{name} client received {int(got['events']):,} events during these runs "
            f"(dropped {int(got['dropped'] + got['local_dropped']):,})"
        )

    # ------------------------------------------------------------------ where the cost goes
    console.print(breakdown())

    # ------------------------------------------------------------------ events per second
    # The engine produces a burst as fast as it can while a client (another process) is
    # subscribed with a queue large enough to hold it all: the server falls behind at once and
    # then delivers as fast as it is able, so events / (last arrival - first arrival) is the
    # delivery capacity, not the producer's pace.
    engine.introspector.clear_history()
    flood = Table(title="events delivered to a subscribed client (saturated)")
    flood.add_column("subscription")
    flood.add_column("events produced", justify="right")
    flood.add_column("events delivered", justify="right")
    flood.add_column("delivered/s", justify="right")
    flood.add_column("dropped", justify="right")
    flood.add_column("target >= 10,000/s")
    for label, queue in (("queue 1,000,000", 1_000_000), ("queue 10,000 (default)", 10_000)):
        client = SubscribedClient(handle.url, queue=queue)
        before = engine.introspector.counters()["computed"]
        rid = RequestId("bench", "flood")
        for _ in range(FLOOD_COMPUTATIONS):
            engine.get(rid, CachingLevel.NONE, int, title="flood")
        produced = 3 * (engine.introspector.counters()["computed"] - before)  # 3 events each
        time.sleep(0.2)
        got = client.finish(drain_until=produced)
        rate = got["events"] / got["span"] if got["span"] else 0.0
        flood.add_row(
            label,
            f"{produced:,}",
            f"{int(got['events']):,}",
            f"{rate:,.0f}",
            f"{int(got['dropped'] + got['local_dropped']):,}",
            "met" if rate >= 10_000 else "MISSED",
        )
    console.print(flood)
    handle.stop()
    engine.close()


if __name__ == "__main__":
    main()
