"""Introspection: records, bounded history, counters, capture switch, listeners, subscriptions."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from reckon.core import (
    CachingLevel,
    Engine,
    Introspector,
    Outcome,
    RequestId,
    TaskEvent,
    TaskRecord,
    TaskState,
)

MEMORY = CachingLevel.MEMORY


def test_records_carry_state_times_outcome_size_and_plain_dicts() -> None:
    engine = Engine(name="e1")
    engine.get(RequestId("r"), MEMORY, lambda: b"x" * 1000, title="payload")
    (record,) = engine.introspector.history()
    assert record.title == "payload" and record.engine == "e1" and record.level is MEMORY
    assert record.state is TaskState.DONE and record.outcome is Outcome.COMPUTED
    assert record.size is not None and record.size >= 1000
    assert list(record.times) == [TaskState.PENDING, TaskState.RUNNING, TaskState.DONE]
    times = list(record.times.values())
    assert times == sorted(times)
    d = record.to_dict()
    assert d["request_id"] == RequestId("r").disk_key
    assert d["state"] == "done" and d["outcome"] == "computed" and d["level"] == 1
    assert set(d["times"]) == {"pending", "running", "done"}
    assert TaskState.DONE == "done" and Outcome.STORE_HIT.value == "store_hit"


def test_hits_leave_no_record_but_count() -> None:
    engine = Engine()
    for _ in range(5):
        engine.get(RequestId("hit"), MEMORY, lambda: 1)
    assert len(engine.introspector.history()) == 1
    counters = engine.introspector.counters()
    assert counters["memory_hit"] == 4 and counters["requests"] == 5
    engine.introspector.reset_counters()
    engine.get(RequestId("hit"), MEMORY, lambda: 1)
    assert engine.introspector.counters()["memory_hit"] == 1


def test_history_is_bounded_and_can_be_cleared() -> None:
    engine = Engine(introspector=Introspector(history=10))
    for i in range(25):
        engine.get(RequestId(i), MEMORY, lambda: 0, title=f"t{i}")
    history = engine.introspector.history()
    assert [r.title for r in history] == [f"t{i}" for i in range(15, 25)]
    assert engine.introspector.counters()["computed"] == 25
    engine.introspector.clear_history()
    assert engine.introspector.history() == []


def test_capture_off_records_nothing_but_counts() -> None:
    introspector = Introspector(capture=False)
    events: list[TaskEvent] = []
    introspector.add_listener(events.append)
    engine = Engine(introspector=introspector)
    engine.get(RequestId("quiet"), MEMORY, lambda: 1)
    assert introspector.history() == [] and introspector.live() == [] and events == []
    assert introspector.counters()["computed"] == 1
    introspector.capture = True
    engine.get(RequestId("loud"), MEMORY, lambda: 1)
    assert len(introspector.history()) == 1 and len(events) == 3


def test_queries_filter_and_order_newest_first() -> None:
    engine = Engine()
    for i in range(5):
        engine.get(RequestId(i), MEMORY, lambda: 0, title=f"job {i % 2}")
    with pytest.raises(ZeroDivisionError):
        engine.get(RequestId("bad"), MEMORY, lambda: 1 / 0, title="bad job")
    it = engine.introspector
    assert [r.title for r in it.tasks(limit=2)] == ["bad job", "job 0"]
    assert len(it.tasks(title="job 1")) == 2
    (failed,) = it.tasks(state=TaskState.FAILED)
    assert failed.error is not None and failed.error.startswith("ZeroDivisionError")
    assert it.task(failed.task_id) is failed and it.task(-1) is None


def test_listener_sees_snapshots_of_every_transition_and_can_be_removed() -> None:
    engine = Engine()
    events: list[TaskEvent] = []
    remove = engine.introspector.add_listener(events.append)
    engine.get(RequestId("a"), MEMORY, lambda: 1)
    assert [e.record.state for e in events] == [
        TaskState.PENDING,
        TaskState.RUNNING,
        TaskState.DONE,
    ]
    assert [e.seq for e in events] == sorted(e.seq for e in events)
    assert events[0].record is not events[2].record  # snapshots, not the live record
    remove()
    engine.get(RequestId("b"), MEMORY, lambda: 1)
    assert len(events) == 3


def test_a_failing_listener_does_not_break_the_engine() -> None:
    engine = Engine()

    def bad(event: TaskEvent) -> None:
        raise RuntimeError("listener bug")

    engine.introspector.add_listener(bad)
    assert engine.get(RequestId("a"), MEMORY, lambda: 1) == 1


async def test_subscription_receives_events_from_other_threads() -> None:
    engine = Engine()
    sub = engine.introspector.subscribe()
    threads = [
        threading.Thread(target=engine.get, args=(RequestId("t", i), MEMORY, lambda i=i: i))
        for i in range(5)
    ]
    for t in threads:
        t.start()
    got: list[TaskEvent] = []
    async with sub:
        async for event in sub:
            got.append(event)
            if sum(e.record.state is TaskState.DONE for e in got) == 5:
                break
    for t in threads:
        t.join(30)
    assert len(got) == 15
    assert {e.record.request_id for e in got} == {RequestId("t", i) for i in range(5)}
    assert sub not in engine.introspector._subscriptions


async def test_a_full_subscription_drops_and_counts() -> None:
    engine = Engine()
    sub = engine.introspector.subscribe(maxsize=4)
    for i in range(3):
        engine.get(RequestId(i), MEMORY, lambda: 0)  # 9 events
    assert sub.pending() == 4 and sub.dropped == 5
    first = await sub.__anext__()
    assert first.record.state is TaskState.PENDING
    sub.close()
    rest = [e async for e in sub]
    assert len(rest) == 3  # what was queued is still delivered, then the iteration ends


async def test_closing_a_waiting_subscription_ends_its_iteration() -> None:
    sub = Introspector().subscribe()

    async def consume() -> list[Any]:
        return [e async for e in sub]

    task = asyncio.create_task(consume())
    await asyncio.sleep(0.01)
    threading.Thread(target=sub.close).start()
    assert await asyncio.wait_for(task, 30) == []


def test_record_snapshot_is_independent() -> None:
    record = TaskRecord(1, RequestId("x"), "x", MEMORY, "e")
    snap = record.snapshot()
    record.state = TaskState.DONE
    record.times[TaskState.DONE] = 0.0
    assert snap.state is TaskState.PENDING and TaskState.DONE not in snap.times
    assert "x" in repr(record)
