"""The engine with a store: levels, persistence across processes, leases, failures of the store."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
import threading
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from _core_helpers import SRC, RecordingStore, run_python

from reckon.core import CachingLevel, Engine, LocalStore, Outcome, RequestId
from reckon.errors import CodecWarning

NONE, MEMORY, FULL = CachingLevel.NONE, CachingLevel.MEMORY, CachingLevel.FULL


class BrokenStore(RecordingStore):
    """Every operation fails, as a store on a vanished disk would."""

    def __getattribute__(self, name: str) -> Any:
        if name in ("get", "put", "delete", "contains", "keys", "usage", "evict", "flush", "lease"):

            def fail(*args: object, **kwargs: object) -> Any:
                raise OSError(f"disk on fire during {name}")

            return fail
        return super().__getattribute__(name)


def test_memory_and_none_never_touch_the_store() -> None:
    store = RecordingStore()
    engine = Engine(store=store)
    engine.get(RequestId("m"), MEMORY, lambda: 1)
    engine.get(RequestId("m"), MEMORY, lambda: 1)
    engine.get(RequestId("n"), NONE, lambda: 2)
    engine.contains(RequestId("m"), MEMORY)
    assert store.calls == []
    assert store.data == {}


def test_full_writes_once_with_its_cost_and_reads_in_a_fresh_engine() -> None:
    store = RecordingStore()
    rid = RequestId("full")

    def slow() -> str:
        time.sleep(0.02)
        return "value"

    first = Engine(store=store)
    assert first.get(rid, FULL, slow) == "value"
    assert first.stats()["counters"]["stored"] == 1
    assert list(store.data) == [rid.disk_key]
    assert store.costs[rid.disk_key] >= 0.015
    fresh = Engine(store=store)
    assert fresh.get(rid, FULL, lambda: pytest.fail("must come from the store")) == "value"
    (record,) = fresh.introspector.history()
    assert record.outcome is Outcome.STORE_HIT
    assert fresh.stats()["counters"]["store_hit"] == 1
    assert fresh.get(rid, FULL, lambda: pytest.fail("now from memory")) == "value"
    assert fresh.stats()["counters"]["memory_hit"] == 1


def test_full_survives_a_new_engine_in_a_new_process(store_dir: Path) -> None:
    code = textwrap.dedent(
        """
        import sys
        from reckon.core import CachingLevel, Engine, LocalStore, RequestId
        engine = Engine(store=LocalStore(sys.argv[1]))
        rid = RequestId("persist", 42)
        def compute():
            print("computed")
            return {"answer": 42, "blob": b"x" * 100_000}
        value = engine.get(rid, CachingLevel.FULL, compute)
        assert value["answer"] == 42 and len(value["blob"]) == 100_000
        print(engine.introspector.history()[0].outcome.value)
        """
    )
    first = run_python(code, str(store_dir))
    assert first.split() == ["computed", "computed"]
    second = run_python(code, str(store_dir))
    assert second.split() == ["store_hit"]


async def test_resolve_full_round_trips_through_a_local_store(store_dir: Path) -> None:
    rid = RequestId("async-full")
    with Engine(store=LocalStore(store_dir)) as engine:
        assert await engine.resolve(rid, FULL, lambda: asyncio.sleep(0, [1, 2, 3])) == [1, 2, 3]
    with Engine(store=LocalStore(store_dir)) as engine:
        assert await engine.resolve(rid, FULL, lambda: pytest.fail("stored")) == [1, 2, 3]
        assert engine.introspector.history()[0].outcome is Outcome.STORE_HIT


def test_numpy_array_through_the_store_is_memory_mapped(store_dir: Path) -> None:
    array = np.arange(3 << 18, dtype=np.float32).reshape(-1, 3)
    fortran = np.asfortranarray(array)
    rid, rid_f = RequestId("array"), RequestId("array", "F")
    with Engine(store=LocalStore(store_dir)) as engine:
        engine.get(rid, FULL, lambda: array)
        engine.get(rid_f, FULL, lambda: fortran)
    with Engine(store=LocalStore(store_dir)) as engine:
        back = engine.get(rid, FULL, lambda: pytest.fail("stored"))
        back_f = engine.get(rid_f, FULL, lambda: pytest.fail("stored"))
    assert np.array_equal(back, array) and back.dtype == array.dtype
    assert np.array_equal(back_f, array) and back_f.flags.f_contiguous
    assert not back.flags.writeable  # a read-only view of the mapped file, not a copy
    assert back.ctypes.data % 64 == 0


def test_a_value_that_cannot_be_encoded_is_returned_kept_in_memory_and_named() -> None:
    store = RecordingStore()
    engine = Engine(store=store)
    lock = threading.Lock()
    with pytest.warns(CodecWarning, match=r"'the lock'.*_thread.lock"):
        assert engine.get(RequestId("lock"), FULL, lambda: lock, title="the lock") is lock
    assert store.data == {}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert engine.get(RequestId("lock"), FULL, lambda: None) is lock  # from memory
    assert engine.stats()["counters"]["encode_errors"] == 1


def test_store_errors_degrade_to_misses() -> None:
    engine = Engine(store=BrokenStore())
    rid = RequestId("broken")
    calls = []
    assert engine.get(rid, FULL, lambda: calls.append(1) or "v") == "v"
    assert engine.get(rid, FULL, lambda: calls.append(1) or "v") == "v"  # memory still works
    assert calls == [1]
    assert engine.contains(rid, FULL)
    assert not engine.contains(RequestId("other"), FULL)
    engine.evict(rid)
    engine.clear(CachingLevel.FULL)
    engine.flush()
    stats = engine.stats()
    assert stats["store"] is None
    assert stats["counters"]["store_errors"] >= 4


async def test_store_errors_degrade_to_misses_in_resolve() -> None:
    engine = Engine(store=BrokenStore())
    assert await engine.resolve(RequestId("b"), FULL, lambda: asyncio.sleep(0, 5)) == 5


def test_a_corrupt_stored_value_is_dropped_and_recomputed() -> None:
    store = RecordingStore()
    rid = RequestId("corrupt")
    store.data[rid.disk_key] = b"\x03 definitely not a frame"
    engine = Engine(store=store)
    assert engine.get(rid, FULL, lambda: "fresh") == "fresh"
    assert Engine(store=store).get(rid, FULL, lambda: pytest.fail("rewritten")) == "fresh"


def test_evict_and_clear_reach_the_store(local_store: LocalStore) -> None:
    engine = Engine(store=local_store)
    a, b = RequestId("a"), RequestId("b")
    engine.get(a, FULL, lambda: "a")
    engine.get(b, FULL, lambda: "b")
    engine.flush()
    engine.evict(a)
    assert not engine.contains(a) and engine.contains(b)
    assert not local_store.contains(a.disk_key) and local_store.contains(b.disk_key)
    engine.clear(MEMORY)
    assert not engine.contains(b, MEMORY) and engine.contains(b, FULL)
    engine.clear(FULL)
    assert not engine.contains(b) and local_store.usage().entries == 0
    stats = engine.stats()
    assert stats["store"]["entries"] == 0 and stats["store"]["budget"] == local_store.budget


def test_a_memory_flight_joined_at_full_is_stored() -> None:
    store = RecordingStore()
    engine = Engine(store=store)
    rid = RequestId("upgrade")
    started, release = threading.Event(), threading.Event()

    def compute() -> str:
        started.set()
        release.wait(30)
        return "v"

    owner = threading.Thread(target=engine.get, args=(rid, MEMORY, compute))
    owner.start()
    assert started.wait(30)
    joined: list[str] = []
    joiner = threading.Thread(target=lambda: joined.append(engine.get(rid, FULL, compute)))
    joiner.start()
    deadline = time.monotonic() + 30
    while engine.stats()["counters"]["shared"] < 1 and time.monotonic() < deadline:
        time.sleep(0.005)
    release.set()
    owner.join(30)
    joiner.join(30)
    assert joined == ["v"]
    assert rid.disk_key in store.data


LEASE_CHILD = textwrap.dedent(
    """
    import os, sys, time
    from reckon.core import CachingLevel, Engine, LocalStore, RequestId
    store_dir, log_path, go_path = sys.argv[1:4]
    engine = Engine(store=LocalStore(store_dir))
    def compute():
        with open(log_path, "a") as log:
            log.write(f"{os.getpid()}\\n")
        time.sleep(0.5)
        return "shared-" + str(os.getpid())
    print("ready", flush=True)
    while not os.path.exists(go_path):
        time.sleep(0.001)
    if sys.argv[4] == "async":
        import asyncio

        async def compute_async():
            await asyncio.sleep(0)
            return compute()

        value = asyncio.run(engine.resolve(RequestId("leased"), CachingLevel.FULL, compute_async))
    else:
        value = engine.get(RequestId("leased"), CachingLevel.FULL, compute)
    print(value, engine.introspector.history()[0].outcome.value, flush=True)
    engine.close()
    """
)


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_two_processes_asking_at_once_compute_once(tmp_path: Path, mode: str) -> None:
    store_dir, log, go = tmp_path / "store", tmp_path / "log", tmp_path / "go"
    LocalStore(store_dir).close()
    env = dict(os.environ)
    env["PYTHONPATH"] = SRC + os.pathsep + env.get("PYTHONPATH", "")
    children = [
        subprocess.Popen(
            [sys.executable, "-c", LEASE_CHILD, str(store_dir), str(log), str(go), mode],
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        for _ in range(2)
    ]
    for child in children:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "ready"
    go.touch()
    outputs = [child.communicate(timeout=120)[0].split() for child in children]
    assert all(child.returncode == 0 for child in children)
    assert len(log.read_text().split()) == 1  # computed once
    values = {out[0] for out in outputs}
    assert len(values) == 1  # both got the one computed value
    assert sorted(out[1] for out in outputs) == ["computed", "store_hit"]


def test_a_broken_store_is_logged_once_in_a_while_not_at_every_request(
    caplog: pytest.LogCaptureFixture,
) -> None:
    engine = Engine(store=BrokenStore())
    with caplog.at_level("WARNING", logger="reckon.core"):
        for i in range(50):
            engine.get(RequestId("quiet", i), FULL, lambda: 1)
    gets = [r for r in caplog.records if "store get failed" in r.getMessage()]
    assert len(gets) == 1 and "disk on fire" in gets[0].getMessage()
    assert engine.stats()["counters"]["store_errors"] >= 100  # all counted


def test_a_store_hit_is_recorded_and_announced_like_a_flight_load() -> None:
    """A store hit made without a flight (nobody else computing the id) still leaves a finished
    record with its three states, its parent, and one event per state, in order."""
    store = RecordingStore()
    rid = RequestId("hit-record")
    Engine(store=store).get(rid, FULL, lambda: {"v": 1})
    engine = Engine(store=store)
    events: list[Any] = []
    engine.introspector.add_listener(events.append)

    def outer() -> Any:
        return engine.get(rid, FULL, lambda: pytest.fail("must come from the store"), title="in")

    assert engine.get(RequestId("outer"), MEMORY, outer, title="out") == {"v": 1}
    records = {r.title: r for r in engine.introspector.history()}
    inner = records["in"]
    assert inner.outcome is Outcome.STORE_HIT and inner.finished and inner.error is None
    assert inner.parent == records["out"].task_id and inner.level is FULL
    assert [s.value for s in inner.times] == ["pending", "loading", "done"]
    assert list(inner.times.values()) == sorted(inner.times.values())
    assert inner.size is not None and inner.size > 0
    assert engine.introspector.live() == []
    mine = [e for e in events if e.record.task_id == inner.task_id]
    assert [e.record.state.value for e in mine] == ["pending", "loading", "done"]
    assert [len(e.record.times) for e in mine] == [1, 2, 3]
    assert [e.record.outcome for e in mine] == [None, None, Outcome.STORE_HIT]
    assert [e.seq for e in events] == sorted(e.seq for e in events)
    counters = engine.stats()["counters"]
    assert counters["store_hit"] == 1 and counters["requests"] == 2
    assert engine.get(rid, FULL, lambda: pytest.fail("now from memory")) == {"v": 1}


async def test_a_store_hit_in_resolve_is_recorded() -> None:
    store = RecordingStore()
    rid = RequestId("hit-resolve")
    Engine(store=store).get(rid, FULL, lambda: [1, 2])
    store.calls.clear()
    engine = Engine(store=store)
    assert await engine.resolve(rid, FULL, lambda: pytest.fail("from the store")) == [1, 2]
    (record,) = engine.introspector.history()
    assert record.outcome is Outcome.STORE_HIT
    assert [c for c in store.calls if c[0] == "get"] == [("get", rid.disk_key)]


def test_a_full_miss_reads_the_store_once_before_the_lease_and_once_after() -> None:
    store = RecordingStore()
    engine = Engine(store=store)
    rid = RequestId("miss-reads")
    assert engine.get(rid, FULL, lambda: 3) == 3
    assert [c for c in store.calls if c[0] == "get"] == [("get", rid.disk_key)] * 2


def test_a_store_hit_does_not_capture_when_capture_is_off() -> None:
    store = RecordingStore()
    rid = RequestId("hit-nocapture")
    Engine(store=store).get(rid, FULL, lambda: 5)
    engine = Engine(store=store)
    engine.introspector.capture = False
    assert engine.get(rid, FULL, lambda: pytest.fail("from the store")) == 5
    assert engine.introspector.history() == []
    assert engine.stats()["counters"]["store_hit"] == 1


def test_an_array_reaches_the_store_as_pieces_not_copied(store_dir: Path) -> None:
    """At FULL the codec's out-of-band buffers go to the store as they are: the store is handed
    the array's own memory (no joined copy), and reads it back whole."""
    handed: list[Any] = []

    class Watching(LocalStore):
        def put(self, key: str, data: Any, *, cost: float = 0.0) -> None:
            handed.append(data)
            super().put(key, data, cost=cost)

    array = np.arange(300_000, dtype=np.float64).reshape(300, 1000)
    with Engine(store=Watching(store_dir)) as engine:
        engine.get(RequestId("pieces"), FULL, lambda: array)
    (data,) = handed
    assert isinstance(data, list) and len(data) >= 2
    assert any(np.shares_memory(np.frombuffer(p, np.uint8), array) for p in data)
    with Engine(store=LocalStore(store_dir)) as engine:
        back = engine.get(RequestId("pieces"), FULL, lambda: pytest.fail("from the store"))
    assert np.array_equal(back, array)


def test_store_hits_without_observers_read_back_as_full_records() -> None:
    """Without observers a store hit is kept compactly; every query still sees a whole
    TaskRecord (the same object each time), in order, bounded, with its parent."""
    from reckon.core import Introspector, TaskRecord, TaskState

    store = RecordingStore()
    writer = Engine(store=store)
    for i in range(6):
        writer.get(RequestId("lazy", i), FULL, lambda i=i: {"i": i})
    engine = Engine(store=store, introspector=Introspector(history=5))

    def outer() -> int:
        return sum(
            engine.get(RequestId("lazy", i), FULL, lambda: pytest.fail("store"), title=f"l{i}")["i"]
            for i in range(6)
        )

    assert engine.get(RequestId("sum"), MEMORY, outer, title="sum") == 15
    history = engine.introspector.history()
    assert all(type(r) is TaskRecord for r in history)
    assert [r.title for r in history] == ["l2", "l3", "l4", "l5", "sum"]  # bounded, in order
    assert engine.introspector.history()[0] is history[0]
    (total,) = engine.introspector.tasks(title="sum")
    loads = engine.introspector.children(total.task_id)
    assert [r.title for r in loads] == ["l2", "l3", "l4", "l5"]
    for r in loads:
        assert r.state is TaskState.DONE and r.outcome is Outcome.STORE_HIT and r.level is FULL
        assert list(r.times) == [TaskState.PENDING, TaskState.LOADING, TaskState.DONE]
        assert r.size is not None and r.size > 0 and r.engine == "default"
        assert engine.introspector.task(r.task_id) is r
        assert r.to_dict()["times"].keys() == {"pending", "loading", "done"}
    assert len(engine.introspector.tasks(state=TaskState.DONE)) == 5
    assert sorted(r.task_id for r in loads) == [r.task_id for r in history[:4]]
    engine.get(RequestId("lazy", 0), FULL, lambda: 0)  # a memory hit now: no record
    engine.evict(RequestId("lazy", 1))
    engine.introspector.clear_history()
    assert engine.introspector.history() == []


def test_a_store_hit_is_sized_by_the_bytes_read_and_other_codecs_by_their_estimate() -> None:
    """Store hits are sized with their decode (no walk of the value); a codec without
    ``decode_sized`` is sized by its own estimate, and a codec swapped in later is used."""
    import pickle
    import sys

    from reckon.core import PickleCodec

    store = RecordingStore()
    value = {"i": 1, "payload": "x" * 40}
    rid = RequestId("sized")
    Engine(store=store).get(rid, FULL, lambda: value)
    encoded = PickleCodec().encode(value)
    engine = Engine(store=store)
    got = engine.get(rid, FULL, lambda: pytest.fail("from the store"))
    assert got == value
    expected = len(encoded) + sys.getsizeof(got)
    assert engine.memory.size_of(rid.memory_key) == expected
    (record,) = engine.introspector.history()
    assert record.outcome is Outcome.STORE_HIT and record.size == expected

    class PlainCodec:
        """A codec with the three methods of the protocol only."""

        def encode(self, value: object) -> bytes:
            return pickle.dumps(value)

        def decode(self, data: bytes | memoryview) -> object:
            return pickle.loads(data)

        def estimate_size(self, value: object) -> int:
            return 12345

    plain = PlainCodec()
    Engine(store=store, codec=plain).get(RequestId("plain"), FULL, lambda: [1, 2])
    other = Engine(store=store, codec=plain)
    assert other.get(RequestId("plain"), FULL, lambda: pytest.fail("store")) == [1, 2]
    assert other.memory.size_of(RequestId("plain").memory_key) == 12345
    swapped = Engine(store=store)
    swapped.codec = plain  # replaced after construction: store hits decode with it
    assert swapped.get(RequestId("plain"), FULL, lambda: pytest.fail("store")) == [1, 2]
    assert swapped.memory.size_of(RequestId("plain").memory_key) == 12345
