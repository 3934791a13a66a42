"""One computation however many ask: threads, tasks and event loops at once; failures;
cancellation of waiters and of computations."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from reckon.core import CachingLevel, Engine, Outcome, RequestId, TaskState
from reckon.errors import ComputationCancelledError

MEMORY = CachingLevel.MEMORY
THREADS = 100
LOOPS = 4
TASKS_PER_LOOP = 25
WAIT = 60.0


def wait_for(predicate: Callable[[], bool], what: str, timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.002)


async def until(predicate: Callable[[], bool]) -> None:
    """Poll a condition another thread makes true (an asyncio.Event cannot cross threads)."""
    deadline = time.monotonic() + WAIT
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.001)


def shared(engine: Engine) -> int:
    return int(engine.stats()["counters"]["shared"])


class Crowd:
    """100 threads calling get and 4 event loops (own threads) with 25 resolve tasks each, all
    released by one barrier at the same moment, all asking for ``rid``."""

    def __init__(
        self, engine: Engine, rid: RequestId, sync: Callable[[], Any], async_: Callable[[], Any]
    ) -> None:
        self.results: list[tuple[str, Any]] = []
        self._lock = threading.Lock()
        self._barrier = threading.Barrier(THREADS + LOOPS)
        self._threads = [
            threading.Thread(target=self._thread, args=(engine, rid, sync)) for _ in range(THREADS)
        ] + [threading.Thread(target=self._loop, args=(engine, rid, async_)) for _ in range(LOOPS)]

    def _keep(self, kind: str, outcome: Any) -> None:
        with self._lock:
            self.results.append((kind, outcome))

    def _thread(self, engine: Engine, rid: RequestId, compute: Callable[[], Any]) -> None:
        self._barrier.wait(WAIT)
        try:
            self._keep("thread", engine.get(rid, MEMORY, compute))
        except Exception as exc:
            self._keep("thread", exc)

    def _loop(self, engine: Engine, rid: RequestId, compute: Callable[[], Any]) -> None:
        async def main() -> None:
            async def one() -> None:
                try:
                    self._keep("task", await engine.resolve(rid, MEMORY, compute))
                except Exception as exc:
                    self._keep("task", exc)

            self._barrier.wait(WAIT)
            await asyncio.gather(*(one() for _ in range(TASKS_PER_LOOP)))

        asyncio.run(main())

    def start(self) -> None:
        for t in self._threads:
            t.start()

    def join(self) -> None:
        for t in self._threads:
            t.join(WAIT)
            assert not t.is_alive()


def make_computes(
    release: threading.Event, outcome: Callable[[], Any]
) -> tuple[Any, Any, list[int]]:
    calls: list[int] = []
    lock = threading.Lock()

    def sync() -> Any:
        with lock:
            calls.append(1)
        assert release.wait(WAIT)
        return outcome()

    async def async_() -> Any:
        with lock:
            calls.append(1)
        await until(release.is_set)
        return outcome()

    return sync, async_, calls


def test_200_threads_and_tasks_on_several_loops_share_one_computation() -> None:
    engine = Engine()
    rid = RequestId("crowd")
    value = object()
    release = threading.Event()
    sync, async_, calls = make_computes(release, lambda: value)
    crowd = Crowd(engine, rid, sync, async_)
    crowd.start()
    wait_for(lambda: shared(engine) == THREADS + LOOPS * TASKS_PER_LOOP - 1, "every waiter")
    release.set()
    crowd.join()
    assert len(calls) == 1
    assert len(crowd.results) == 200
    assert all(result is value for _, result in crowd.results)
    assert {kind for kind, _ in crowd.results} == {"thread", "task"}
    counters = engine.stats()["counters"]
    assert counters["computed"] == 1 and counters["requests"] == 200
    assert len(engine.introspector.history()) == 1
    assert engine.get(rid, MEMORY, lambda: pytest.fail("cached")) is value


def test_200_waiters_all_get_the_one_exception_and_the_next_call_computes_again() -> None:
    engine = Engine()
    rid = RequestId("crowd-fails")
    release = threading.Event()
    error = RuntimeError("the computation failed")

    def fail() -> Any:
        raise error

    sync, async_, calls = make_computes(release, fail)
    crowd = Crowd(engine, rid, sync, async_)
    crowd.start()
    wait_for(lambda: shared(engine) == THREADS + LOOPS * TASKS_PER_LOOP - 1, "every waiter")
    release.set()
    crowd.join()
    assert len(calls) == 1
    assert len(crowd.results) == 200
    assert all(result is error for _, result in crowd.results)
    assert engine.stats()["counters"]["failed"] == 1
    assert not engine.contains(rid, MEMORY)  # failures are never cached
    assert engine.get(rid, MEMORY, lambda: "second time") == "second time"


async def test_cancelling_every_waiter_cancels_the_computation() -> None:
    engine = Engine()
    rid = RequestId("abandoned")
    started, cancelled = asyncio.Event(), asyncio.Event()

    async def compute() -> str:
        started.set()
        try:
            await asyncio.sleep(WAIT)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return "never"

    waiters = [asyncio.create_task(engine.resolve(rid, MEMORY, compute)) for _ in range(3)]
    await started.wait()
    for w in waiters:
        w.cancel()
    for w in waiters:
        with pytest.raises(asyncio.CancelledError):
            await w
    await asyncio.wait_for(cancelled.wait(), WAIT)
    (record,) = engine.introspector.history()
    assert record.state is TaskState.CANCELLED and record.outcome is Outcome.CANCELLED
    assert engine.stats()["counters"]["cancelled"] == 1
    # A new request starts a new computation.
    assert await engine.resolve(rid, MEMORY, lambda: "again") == "again"


async def test_cancelling_some_waiters_including_the_first_does_not() -> None:
    engine = Engine()
    rid = RequestId("kept")
    started, release = asyncio.Event(), asyncio.Event()
    runs = 0

    async def compute() -> str:
        nonlocal runs
        runs += 1
        started.set()
        await release.wait()
        return "done"

    first = asyncio.create_task(engine.resolve(rid, MEMORY, compute))
    await started.wait()
    others = [asyncio.create_task(engine.resolve(rid, MEMORY, compute)) for _ in range(3)]
    await asyncio.sleep(0)
    first.cancel()  # the caller that started the computation
    others[0].cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    release.set()
    results = await asyncio.gather(*others, return_exceptions=True)
    assert isinstance(results[0], asyncio.CancelledError)
    assert results[1:] == ["done", "done"]
    assert runs == 1
    assert engine.introspector.history()[0].outcome is Outcome.COMPUTED


class LoopThread:
    """An event loop running in a thread of its own until stopped."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever)
        self.thread.start()

    def submit(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def task(self, make: Callable[[], Any]) -> asyncio.Task[Any]:
        async def create() -> asyncio.Task[Any]:
            return asyncio.ensure_future(make())

        task: asyncio.Task[Any] = self.submit(create()).result(WAIT)
        return task

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(WAIT)
        self.loop.close()


def _outcome(loop: LoopThread, task: asyncio.Task[Any]) -> Any:
    async def get() -> Any:
        try:
            return await task
        except BaseException as exc:
            return exc

    return loop.submit(get()).result(WAIT)


def test_waiters_on_other_loops_keep_a_computation_alive_and_cancelling_all_ends_it() -> None:
    engine = Engine()
    rid = RequestId("loops")
    started, computation_cancelled = threading.Event(), threading.Event()

    async def compute() -> str:
        started.set()
        try:
            await asyncio.sleep(WAIT)
        except asyncio.CancelledError:
            computation_cancelled.set()
            raise
        return "never"

    a, b = LoopThread(), LoopThread()
    try:
        task_a = a.task(lambda: engine.resolve(rid, MEMORY, compute))
        assert started.wait(WAIT)
        task_b = b.task(lambda: engine.resolve(rid, MEMORY, compute))
        wait_for(lambda: shared(engine) == 1, "the second loop's waiter")
        # Cancel the waiter on the loop that runs the computation: it goes on for the other.
        a.loop.call_soon_threadsafe(task_a.cancel)
        assert isinstance(_outcome(a, task_a), asyncio.CancelledError)
        time.sleep(0.05)
        assert not computation_cancelled.is_set()
        assert engine.introspector.live()[0].state is TaskState.RUNNING
        # Cancel the last waiter, on the other loop: the computation is cancelled on its loop.
        b.loop.call_soon_threadsafe(task_b.cancel)
        assert isinstance(_outcome(b, task_b), asyncio.CancelledError)
        assert computation_cancelled.wait(WAIT)
        assert engine.introspector.live() == []
        assert engine.introspector.history()[0].state is TaskState.CANCELLED
    finally:
        a.stop()
        b.stop()


def test_when_the_computing_loop_shuts_down_waiters_elsewhere_start_over() -> None:
    engine = Engine()
    rid = RequestId("orphaned")
    started = threading.Event()
    runs: list[int] = []

    async def compute() -> str:
        runs.append(1)
        started.set()
        if len(runs) == 1:
            await asyncio.sleep(WAIT)  # cut short when its loop shuts down
        return "second run"

    async def first_loop() -> None:
        waiter = asyncio.ensure_future(engine.resolve(rid, MEMORY, compute))
        await until(lambda: shared(engine) >= 1)
        waiter.cancel()
        # asyncio.run now cancels the computation, which nobody asked for.

    b = LoopThread()
    try:
        runner = threading.Thread(target=asyncio.run, args=(first_loop(),))
        runner.start()
        assert started.wait(WAIT)
        task_b = b.task(lambda: engine.resolve(rid, MEMORY, compute))
        runner.join(WAIT)
        assert _outcome(b, task_b) == "second run"
        assert len(runs) == 2
    finally:
        b.stop()


async def test_a_thread_waiter_keeps_the_computation_when_tasks_are_cancelled() -> None:
    engine = Engine()
    rid = RequestId("thread-keeps")
    started = asyncio.Event()
    release = threading.Event()

    async def compute() -> str:
        started.set()
        await until(release.is_set)
        return "value"

    task = asyncio.create_task(engine.resolve(rid, MEMORY, compute))
    await started.wait()
    got: list[Any] = []
    thread = threading.Thread(target=lambda: got.append(engine.get(rid, MEMORY, compute)))
    thread.start()
    await until(lambda: shared(engine) >= 1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.sleep(0.01)
    release.set()
    await until(lambda: not thread.is_alive())
    assert got == ["value"]


async def test_engine_cancel_by_task_id_async() -> None:
    engine = Engine()
    rid = RequestId("operator")
    started, cancelled = asyncio.Event(), asyncio.Event()

    async def compute() -> str:
        started.set()
        try:
            await asyncio.sleep(WAIT)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return "never"

    waiters = [asyncio.create_task(engine.resolve(rid, MEMORY, compute)) for _ in range(3)]
    await started.wait()
    (live,) = engine.introspector.live()
    assert engine.cancel(live.task_id) is True
    assert engine.cancel(live.task_id) is False  # no longer running
    assert engine.cancel(10**12) is False
    for w in waiters:
        with pytest.raises(ComputationCancelledError, match="cancelled by an operator"):
            await w
    await asyncio.wait_for(cancelled.wait(), WAIT)
    record = engine.introspector.task(live.task_id)
    assert record is not None and record.state is TaskState.CANCELLED
    assert await engine.resolve(rid, MEMORY, lambda: "again") == "again"


def test_engine_cancel_by_task_id_sync() -> None:
    engine = Engine()
    rid = RequestId("operator-sync")
    started, release = threading.Event(), threading.Event()

    def compute() -> str:
        started.set()
        release.wait(WAIT)
        return "discarded"

    results: list[Any] = []

    def call() -> None:
        try:
            results.append(engine.get(rid, MEMORY, compute))
        except ComputationCancelledError as exc:
            results.append(exc)

    owner = threading.Thread(target=call)
    owner.start()
    assert started.wait(WAIT)
    joiner = threading.Thread(target=call)
    joiner.start()
    wait_for(lambda: shared(engine) == 1, "the joiner")
    (live,) = engine.introspector.live()
    assert engine.cancel(live.task_id)
    joiner.join(WAIT)  # released at once, while the computing thread still runs
    assert len(results) == 1 and isinstance(results[0], ComputationCancelledError)
    release.set()
    owner.join(WAIT)
    assert isinstance(results[1], ComputationCancelledError)
    assert not engine.contains(rid, MEMORY)  # the discarded value was not cached
    assert engine.get(rid, MEMORY, lambda: "fresh") == "fresh"


def test_resolve_waiting_on_a_thread_computation_and_get_waiting_on_a_loop() -> None:
    engine = Engine()
    release = threading.Event()
    started = threading.Event()

    def slow() -> str:
        started.set()
        release.wait(WAIT)
        return "from thread"

    owner = threading.Thread(target=engine.get, args=(RequestId("t"), MEMORY, slow))
    owner.start()
    assert started.wait(WAIT)

    async def join() -> Any:
        task = asyncio.ensure_future(engine.resolve(RequestId("t"), MEMORY, slow))
        await until(lambda: shared(engine) >= 1)
        release.set()
        return await task

    assert asyncio.run(join()) == "from thread"
    owner.join(WAIT)
