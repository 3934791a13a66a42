"""Store hits made without a flight: logged without a lock while nobody observes, moved into the
history in the order things finished, bounded, and followed live as soon as someone observes."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from _core_helpers import RecordingStore

from reckon.core import (
    CachingLevel,
    Engine,
    Introspector,
    Outcome,
    RequestId,
    TaskRecord,
    TaskState,
)

MEMORY, FULL = CachingLevel.MEMORY, CachingLevel.FULL


def stored(n: int, prefix: str = "l") -> tuple[RecordingStore, list[RequestId]]:
    """A store holding ``n`` values, written by an engine that is then dropped."""
    store = RecordingStore()
    ids = [RequestId(prefix, i) for i in range(n)]
    writer = Engine(store=store)
    for i, rid in enumerate(ids):
        writer.get(rid, FULL, lambda i=i: {"i": i})
    return store, ids


def hit(engine: Engine, rid: RequestId, title: str) -> Any:
    return engine.get(rid, FULL, lambda: pytest.fail("expected a store hit"), title=title)


def test_loads_and_computations_keep_the_order_they_finished_in() -> None:
    store, ids = stored(3)
    engine = Engine(store=store)
    hit(engine, ids[0], "l0")
    hit(engine, ids[1], "l1")
    engine.get(RequestId("c"), MEMORY, lambda: 1, title="c")
    hit(engine, ids[2], "l2")
    engine.get(RequestId("d"), MEMORY, lambda: 2, title="d")
    history = engine.introspector.history()
    assert [r.title for r in history] == ["l0", "l1", "c", "l2", "d"]
    assert all(type(r) is TaskRecord for r in history)
    loads = [r for r in history if r.title.startswith("l")]
    for r in loads:
        assert r.outcome is Outcome.STORE_HIT and r.state is TaskState.DONE and r.level is FULL
        times = r.times
        assert list(times) == [TaskState.PENDING, TaskState.LOADING, TaskState.DONE]
        assert times[TaskState.PENDING] <= times[TaskState.LOADING] <= times[TaskState.DONE]
    # Task ids are taken when a load finishes: increasing in the order of the history here.
    assert [r.task_id for r in loads] == sorted(r.task_id for r in loads)


def test_an_observer_switches_store_hits_to_live_events_and_back() -> None:
    store, ids = stored(4)
    engine = Engine(store=store)
    introspector = engine.introspector
    assert introspector._quiet
    events: list[Any] = []
    remove = introspector.add_listener(events.append)
    assert not introspector._quiet
    hit(engine, ids[0], "seen")
    assert [e.record.state for e in events] == [
        TaskState.PENDING,
        TaskState.LOADING,
        TaskState.DONE,
    ]
    remove()
    assert introspector._quiet
    hit(engine, ids[1], "logged")
    assert len(events) == 3  # nobody listens: the load is logged, not announced
    introspector.capture = False
    assert not introspector._quiet
    hit(engine, ids[2], "uncaptured")
    introspector.capture = True
    assert introspector._quiet and introspector.capture
    sub = introspector.subscribe()
    assert not introspector._quiet
    sub.close()
    assert introspector._quiet
    hit(engine, ids[3], "logged again")
    assert [r.title for r in introspector.history()] == ["seen", "logged", "logged again"]
    assert engine.stats()["counters"]["store_hit"] == 4


def test_the_load_log_is_bounded_while_nobody_reads_it() -> None:
    store, ids = stored(10)
    engine = Engine(store=store, introspector=Introspector(history=3))
    for i, rid in enumerate(ids):
        hit(engine, rid, f"l{i}")
    assert len(engine.introspector._loads) <= 3
    assert [r.title for r in engine.introspector.history()] == ["l7", "l8", "l9"]
    engine.get(RequestId("after"), MEMORY, lambda: 0, title="after")
    assert [r.title for r in engine.introspector.history()] == ["l8", "l9", "after"]
    engine.introspector.clear_history()
    assert engine.introspector.history() == []
    quiet = Engine(store=store, introspector=Introspector(history=0))
    hit(quiet, ids[0], "kept nowhere")
    assert quiet.introspector.history() == [] and len(quiet.introspector._loads) == 0


def test_store_hits_logged_from_many_threads_while_the_history_is_read() -> None:
    """Loads logged without a lock by several threads, while another thread keeps reading (and
    so moving them into the history): none lost, none twice, each thread's in its own order."""
    threads_n, per_thread = 6, 60
    store, ids = stored(threads_n * per_thread)
    engine = Engine(store=store)
    introspector = engine.introspector
    done = threading.Event()
    errors: list[BaseException] = []

    def load(t: int) -> None:
        try:
            for i in range(per_thread):
                hit(engine, ids[t * per_thread + i], f"t{t}-{i}")
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    def read() -> None:
        while not done.is_set():
            introspector.history()
            introspector.tasks(limit=5)

    reader = threading.Thread(target=read)
    reader.start()
    workers = [threading.Thread(target=load, args=(t,)) for t in range(threads_n)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=60)
    done.set()
    reader.join(timeout=60)
    assert not errors
    history = introspector.history()
    assert len(history) == threads_n * per_thread
    assert len({r.task_id for r in history}) == len(history)
    for t in range(threads_n):
        mine = [r.title for r in history if r.title.startswith(f"t{t}-")]
        assert mine == [f"t{t}-{i}" for i in range(per_thread)]
