"""The engine's flights: joining one, leaving one, and finishing one for every waiter.

A flight is one computation of a key with any number of waiters (threads and asyncio tasks on
any loops). :class:`FlightSide` is the bottom of the engine's bases (then the store's
:class:`~reckon.core._engine_store.StoreSide`, the asyncio path's
:class:`~reckon.core._engine_async.AsyncSide`, and :class:`~reckon.core.engine.Engine`), so
each side calls the lifecycle below directly, with no hop and no declarations of it twice.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

from reckon.core._flight import CURRENT, Flight, cancel_task, settle, settle_all
from reckon.core.ids import RequestId
from reckon.core.levels import CachingLevel
from reckon.core.memory import MISSING, MemoryTier
from reckon.core.tasks import Introspector, Outcome, TaskRecord, TaskState, new_task_id
from reckon.errors import ComputationCancelledError, CyclicRequestError, EngineClosedError

__all__ = ["FlightSide"]

_COMPUTED, _STORE_HIT = Outcome.COMPUTED, Outcome.STORE_HIT
_FAILED_OUTCOME, _CANCELLED_OUTCOME = Outcome.FAILED, Outcome.CANCELLED
_RUNNING = TaskState.RUNNING
_DONE, _FAILED, _CANCELLED = TaskState.DONE, TaskState.FAILED, TaskState.CANCELLED


class FlightSide:
    """The flight table's half of :class:`~reckon.core.engine.Engine` (its deepest base)."""

    # Set by Engine.__init__ (declared here for the type checker).
    name: str
    introspector: Introspector
    memory: MemoryTier
    _lock: threading.Lock
    _inflight: dict[int, Flight]
    _by_task: dict[int, Flight]
    _closed: bool
    _hit: Callable[[], Any]
    _count_request: Callable[[], int]
    _count_shared: Callable[[], int]
    _count_end: dict[Outcome, Callable[[], int]]

    def _enter(
        self,
        id: RequestId,
        level: CachingLevel,
        title: str | None,
        fut: asyncio.Future[Any] | None,
        thread_waiter: bool,
    ) -> tuple[Flight | None, bool, Any]:
        """Under the lock: a hit (None, False, value), a joined flight, or a new one we own."""
        key = id.memory_key
        introspector = self.introspector
        with self._lock:
            if self._closed:
                raise EngineClosedError(
                    f"engine {self.name!r} is closed; create a new Engine to make requests"
                )
            if level:
                value = self.memory.lookup(key)
                if value is not MISSING:
                    self._hit()  # counts the request too
                    return None, False, value
            self._count_request()
            flight = self._inflight.get(key)
            if flight is not None:
                current = CURRENT.get()
                while current is not None:
                    if current is flight:
                        raise CyclicRequestError(
                            f"request {id.short()} depends on itself: computation "
                            f"{flight.task_id} ({flight.record.title}) asked for its own value"
                        )
                    current = current.parent
                flight.waiters += 1
                if level > flight.level:
                    flight.level = level
                    flight.record.level = level
                if fut is not None:
                    flight.futures.append(fut)
                if thread_waiter and flight.event is None:
                    flight.event = threading.Event()
                self._count_shared()
                return flight, False, MISSING
            parent = CURRENT.get()
            record = TaskRecord(
                new_task_id(),
                id,
                title,
                level,
                self.name,
                None if parent is None else parent.task_id,
            )
            flight = Flight(id, level, record, parent)
            if fut is not None:
                flight.futures.append(fut)
            self._inflight[key] = flight
            self._by_task[flight.task_id] = flight
        introspector.begin(record)
        return flight, True, MISSING

    def _forget_locked(self, flight: Flight) -> None:
        """Take ``flight`` out of the in-flight tables: later requests start afresh."""
        if self._inflight.get(flight.key) is flight:
            del self._inflight[flight.key]
        self._by_task.pop(flight.task_id, None)

    def _leave(self, flight: Flight) -> None:
        """A waiter is done with ``flight`` (served, failed or cancelled)."""
        unpin = False
        abandon = False
        with self._lock:
            flight.waiters -= 1
            if flight.waiters > 0:
                return
            if flight.done:
                unpin, flight.pinned = flight.pinned, False
            else:
                abandon = True
                self._forget_locked(flight)  # nobody may join a flight being cancelled
        if unpin:
            self.memory.unpin(flight.key)
        elif abandon:
            # Every waiter was cancelled: cancel the computation itself.
            self._finish(flight, exc=asyncio.CancelledError(), outcome=_CANCELLED_OUTCOME)
            self._cancel_task(flight)

    def _running(self, flight: Flight) -> None:
        self.introspector.transition(flight.record, _RUNNING)

    def _fail(self, flight: Flight, exc: BaseException) -> None:
        if not isinstance(exc, Exception):
            # KeyboardInterrupt, SystemExit, ...: the computing thread was interrupted.
            deliver: BaseException = ComputationCancelledError(
                f"computation {flight.task_id} ({flight.record.title}) was interrupted by "
                f"{type(exc).__name__}"
            )
        else:
            deliver = exc
        self._finish(flight, exc=deliver, outcome=_FAILED_OUTCOME)

    def _finish(
        self,
        flight: Flight,
        *,
        value: Any = None,
        exc: BaseException | None = None,
        outcome: Outcome,
        size: int | None = None,
    ) -> bool:
        """Deliver the result to every waiter, once. False when the flight was already done."""
        with self._lock:
            if flight.done:
                return False
            flight.done = True
            flight.value = value
            flight.exc = exc
            self._forget_locked(flight)
            if exc is None and flight.level and not self._closed:
                # Pinned until the last waiter has its value, so it cannot be evicted between
                # being computed and being delivered.
                # (A thread finishing its own computation takes the value from the flight, not
                # from memory: it needs no pin for itself.)
                others = flight.waiters - (flight.thread == threading.get_ident())
                pin = others > 0
                self.memory.put(flight.key, value, size or 0, pin=pin)
                flight.pinned = pin
            futures, flight.futures = flight.futures, []
            event = flight.event
        if event is not None:
            event.set()
        if futures:
            self._deliver(flight, futures)
        self._record_end(flight, outcome, size, exc)
        return True

    def _deliver(self, flight: Flight, futures: list[asyncio.Future[Any]]) -> None:
        """Settle the waiters' futures: directly on this thread's loop, and with one thread-safe
        call per other loop (however many of its tasks wait)."""
        running = asyncio._get_running_loop()
        elsewhere: dict[asyncio.AbstractEventLoop, list[asyncio.Future[Any]]] = {}
        for fut in futures:
            loop = fut.get_loop()
            if loop is running:
                settle(fut, flight)
            else:
                elsewhere.setdefault(loop, []).append(fut)
        for loop, futs in elsewhere.items():
            try:
                loop.call_soon_threadsafe(settle_all, futs, flight)
            except RuntimeError:  # that loop is closed: its waiters are gone
                for _ in futs:
                    self._leave(flight)

    def _record_end(
        self, flight: Flight, outcome: Outcome, size: int | None, exc: BaseException | None
    ) -> None:
        self._count_end[outcome]()
        if outcome is _COMPUTED or outcome is _STORE_HIT:
            state = _DONE
        elif outcome is _FAILED_OUTCOME:
            state = _FAILED
        else:
            state = _CANCELLED
        error = None
        if exc is not None and outcome is _FAILED_OUTCOME:
            error = f"{type(exc).__name__}: {exc}"
        elif isinstance(exc, ComputationCancelledError):
            error = str(exc)
        self.introspector.transition(flight.record, state, outcome=outcome, size=size, error=error)

    def _cancel_task(self, flight: Flight) -> None:
        task, loop = flight.task, flight.loop
        if task is None or loop is None or task.done():
            return
        try:
            if asyncio._get_running_loop() is loop:
                cancel_task(task, flight.awaitable)
            else:
                loop.call_soon_threadsafe(cancel_task, task, flight.awaitable)
        except RuntimeError:
            pass  # its loop is closed: the task is gone with it
