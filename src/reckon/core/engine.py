"""The engine: memory tier, store, and computations shared by everyone who asks at once.

How a request travels:

1. **Hit path** (no lock): look the id's ``memory_key`` up in the memory tier; on a hit bump the
   LRU order and a counter and return the object. Nothing else happens, so a hit costs a few
   hundred nanoseconds.
2. **Slow path** (under the engine lock): look again, then either join the *flight* already
   computing this key or start one. A flight is one computation with any number of waiters:
   threads blocked in :meth:`Engine.get` and asyncio tasks awaiting :meth:`Engine.resolve` on any
   event loop. The flight delivers its value (or its exception) to every waiter.
3. **The flight**: at level FULL it first tries the store, then takes the store's lease for the
   key (so two processes compute once), looks again, computes, delivers, and writes the encoded
   value to the store. ``get`` computes in the calling thread. ``resolve`` calls ``compute`` on
   the caller's loop and awaits what it returns in a task of its own, so cancelling the caller
   does not cancel the computation while other waiters remain; when the last waiter leaves by
   cancellation, the computation is cancelled. (A plain value completes at once: a synchronous
   function cannot be interrupted midway anyway.)

Failures are delivered, never cached. Store failures are logged and become misses.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import threading
import time
import warnings
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from types import CoroutineType as _CoroutineType
from typing import Any, TypeVar, cast, overload

from reckon.core.codec import Codec, PickleCodec
from reckon.core.ids import RequestId
from reckon.core.levels import CachingLevel, as_level
from reckon.core.memory import MISSING, MemoryTier
from reckon.core.stores.base import Store, StoreData
from reckon.core.tasks import (
    Introspector,
    Outcome,
    TaskRecord,
    TaskState,
    new_task_id,
)
from reckon.errors import (
    BlockingGetError,
    CodecError,
    CodecWarning,
    ComputationCancelledError,
    CyclicRequestError,
    EngineClosedError,
    InvalidRequestIdError,
)

__all__ = ["Engine", "current_task_id", "on_engine_created"]

T = TypeVar("T")
log = logging.getLogger("reckon.core")

_FULL = CachingLevel.FULL
_MEMORY = CachingLevel.MEMORY
# Enum members read from module globals: ``Outcome.STORE_HIT`` costs a class attribute lookup
# through the enum metaclass, several times a global's.
_STORE_HIT, _COMPUTED = Outcome.STORE_HIT, Outcome.COMPUTED
_FAILED_OUTCOME, _CANCELLED_OUTCOME = Outcome.FAILED, Outcome.CANCELLED
_PENDING, _RUNNING, _LOADING = TaskState.PENDING, TaskState.RUNNING, TaskState.LOADING
_DONE, _FAILED, _CANCELLED = TaskState.DONE, TaskState.FAILED, TaskState.CANCELLED
_now = time.time
_MAX_RETRIES = 8  # restarts of a flight whose event loop went away under it


class _Abandoned(Exception):
    """Delivered to waiters when the loop running their computation stopped under it (not a
    cancellation anyone asked for): they start the request again."""


class _Flight:
    """One computation in progress and the waiters sharing it."""

    __slots__ = (
        "awaitable",
        "done",
        "event",
        "exc",
        "futures",
        "id",
        "key",
        "level",
        "loop",
        "parent",
        "pinned",
        "record",
        "task",
        "task_id",
        "thread",
        "value",
        "waiters",
    )

    def __init__(
        self, id: RequestId, level: CachingLevel, record: TaskRecord, parent: _Flight | None
    ) -> None:
        self.id = id
        self.key = id.memory_key
        self.level = level
        self.record = record
        self.task_id = record.task_id
        self.parent = parent
        self.waiters = 1
        self.done = False
        self.value: Any = None
        self.exc: BaseException | None = None
        self.event: threading.Event | None = None
        self.futures: list[asyncio.Future[Any]] = []
        self.task: asyncio.Task[None] | None = None
        self.awaitable: Awaitable[Any] | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.thread: int | None = None
        self.pinned = False


# The flight whose computation is running in this context: the parent of requests made now.
_CURRENT: ContextVar[_Flight | None] = ContextVar("reckon_current_flight", default=None)


def current_task_id() -> int | None:
    """The task id of the computation running in this context (None outside computations)."""
    flight = _CURRENT.get()
    return None if flight is None else flight.task_id


_CREATED_HOOKS: list[Callable[[Engine], None]] = []


def on_engine_created(hook: Callable[[Engine], None]) -> Callable[[], None]:
    """Call ``hook(engine)`` for every Engine created from now on; returns a function removing it.

    This is how layers above the core learn of engines without the core importing them: the
    package root registers ``reckon.observe.autostart`` here when ``$RECKON_OBSERVE`` is set, so
    a plain program that memoizes is served live. Hooks run in the creating thread, after the
    engine is complete; an exception in a hook is logged, never raised.
    """
    _CREATED_HOOKS.append(hook)

    def remove() -> None:
        with contextlib.suppress(ValueError):
            _CREATED_HOOKS.remove(hook)

    return remove


class _GuardedLease:
    """A store lease whose failures degrade to "compute anyway" instead of failing the request."""

    __slots__ = ("_cm", "_engine", "_entered")

    def __init__(self, engine: Engine, cm: Any) -> None:
        self._engine = engine
        self._cm = cm
        self._entered = False

    def acquire(self) -> bool:
        if self._cm is None:
            return True
        try:
            mine = bool(self._cm.__enter__())
        except Exception as exc:
            self._engine._store_failed("lease", exc)
            return True
        self._entered = True
        return mine

    def release(self) -> None:
        if not self._entered:
            return
        self._entered = False
        try:
            self._cm.__exit__(None, None, None)
        except Exception as exc:
            self._engine._store_failed("lease release", exc)


class Engine:
    """Resolves requests through the memory tier and a store, computing each miss once."""

    def __init__(
        self,
        *,
        store: Store | None = None,
        memory_budget: int = 1 << 30,
        codec: Codec | None = None,
        introspector: Introspector | None = None,
        name: str = "default",
    ) -> None:
        self.name = name
        self.store: Store | None = store
        self.codec: Codec = codec if codec is not None else PickleCodec()
        self.introspector: Introspector = (
            introspector if introspector is not None else Introspector()
        )
        self.memory = MemoryTier(memory_budget)
        self._lock = threading.Lock()
        self._inflight: dict[int, _Flight] = {}
        self._by_task: dict[int, _Flight] = {}
        self._closed = False
        self._store_log: dict[str, tuple[float, int]] = {}
        # The hit path's bound methods (the memory tier never replaces its dict).
        self._mem_get = self.memory._data.get
        self._mem_bump = self.memory._data.move_to_end
        self._hit = self.introspector.memory_hits.bump
        bump = self.introspector.bumper
        self._count_request = bump("requests")
        self._count_shared = bump("shared")
        self._count_end = {
            Outcome.COMPUTED: bump("computed"),
            Outcome.STORE_HIT: bump("store_hit"),
            Outcome.FAILED: bump("failed"),
            Outcome.CANCELLED: bump("cancelled"),
        }
        self._count_store_hit = self._count_end[Outcome.STORE_HIT]
        # The store-hit path's bound methods and codec entry point (see _load_direct).
        self._finished = self.introspector.finished
        self._log_load = self.introspector._log_load
        self._sized_codec: Codec | None = None
        self._decode_sized: Callable[[Any], tuple[Any, int]]
        self._decoder()
        for hook in tuple(_CREATED_HOOKS):
            try:
                hook(self)
            except Exception:  # a watcher that fails must not take the engine down with it
                log.exception("an on_engine_created hook failed for engine %r", name)

    def __repr__(self) -> str:
        return f"Engine(name={self.name!r}, store={self.store!r}, memory={len(self.memory)})"

    # ================================================================== public API
    def get(
        self,
        id: RequestId,
        level: CachingLevel,
        compute: Callable[[], T],
        *,
        title: str | None = None,
    ) -> T:
        """The value of ``id``: from memory, the store, a computation in flight, or ``compute``
        called in this thread. Thread-safe; shares computations with :meth:`resolve`."""
        try:
            key = id.memory_key
        except AttributeError:
            raise _not_an_id(id) from None
        value = self._mem_get(key, MISSING)
        if value is not MISSING and level:
            try:  # noqa: SIM105 (contextlib.suppress costs more than the whole hit)
                self._mem_bump(key)
            except KeyError:
                pass
            self._hit()
            return value  # type: ignore[no-any-return]  # (cast() would cost a call)
        if level is _FULL and key not in self._inflight and self.store is not None:
            # Nobody computes it: try the store without a flight (see _load_direct).
            value = self._load_direct(id, title)
            if value is not MISSING:
                return value  # type: ignore[no-any-return]
            return self._get_slow(id, level, compute, title, True)
        return self._get_slow(id, level, compute, title)

    @overload
    async def resolve(
        self,
        id: RequestId,
        level: CachingLevel,
        compute: Callable[[], Awaitable[T]],
        *,
        title: str | None = None,
    ) -> T: ...

    @overload
    async def resolve(
        self,
        id: RequestId,
        level: CachingLevel,
        compute: Callable[[], T],
        *,
        title: str | None = None,
    ) -> T: ...

    async def resolve(
        self,
        id: RequestId,
        level: CachingLevel,
        compute: Callable[[], T | Awaitable[T]],
        *,
        title: str | None = None,
    ) -> T:
        """The value of ``id``, awaiting a shared computation when there is no cached value.

        ``compute`` may return the value or an awaitable of it; it runs in a task of its own on
        this loop, which is cancelled when every waiter has been cancelled.
        """
        try:
            key = id.memory_key
        except AttributeError:
            raise _not_an_id(id) from None
        value = self._mem_get(key, MISSING)
        if value is not MISSING and level:
            try:  # noqa: SIM105 (contextlib.suppress costs more than the whole hit)
                self._mem_bump(key)
            except KeyError:
                pass
            self._hit()
            return value  # type: ignore[no-any-return]  # (cast() would cost a call)
        return cast(T, await self._resolve_slow(id, level, compute, title))

    def contains(self, id: RequestId, level: CachingLevel = CachingLevel.FULL) -> bool:
        """Whether a value for ``id`` is kept at ``level`` (NONE keeps nothing: always False)."""
        level = as_level(level)
        if level is CachingLevel.NONE:
            return False
        if id.memory_key in self.memory:
            return True
        if level is _FULL and self.store is not None:
            try:
                return bool(self.store.contains(id.disk_key))
            except Exception as exc:
                self._store_failed("contains", exc)
        return False

    def evict(self, id: RequestId) -> None:
        """Forget ``id`` in memory and in the store (a computation in flight is not affected)."""
        self.memory.discard(id.memory_key)
        if self.store is not None:
            try:
                self.store.delete(id.disk_key)
            except Exception as exc:
                self._store_failed("delete", exc)

    def clear(self, level: CachingLevel) -> None:
        """MEMORY: empty the memory tier; FULL: the memory tier and the store. NONE: nothing."""
        level = as_level(level)
        if level >= _MEMORY:
            self.memory.clear()
        if level is _FULL and self.store is not None:
            store = self.store
            try:
                store.flush()
                store.evict(0)
                for key in list(store.keys()):
                    store.delete(key)
            except Exception as exc:
                self._store_failed("clear", exc)

    def cancel(self, task_id: int) -> bool:
        """Cancel the running computation ``task_id``; its waiters get
        :class:`~reckon.errors.ComputationCancelledError`. False when it is not running."""
        with self._lock:
            flight = self._by_task.get(task_id)
            if flight is None or flight.done:
                return False
            self._forget_locked(flight)
        self._finish(
            flight,
            exc=ComputationCancelledError(
                f"computation {task_id} ({flight.record.title}) was cancelled by an operator"
            ),
            outcome=_CANCELLED_OUTCOME,
        )
        self._cancel_task(flight)
        return True

    def stats(self) -> dict[str, Any]:
        """Counters and tier usage, as plain types (msgpack-able)."""
        store_usage: dict[str, Any] | None = None
        if self.store is not None:
            try:
                usage = self.store.usage()
                store_usage = {
                    "entries": int(usage.entries),
                    "bytes": int(usage.bytes),
                    "budget": None if usage.budget is None else int(usage.budget),
                }
            except Exception as exc:
                self._store_failed("usage", exc)
        with self._lock:
            inflight = len(self._inflight)
        return {
            "name": self.name,
            "counters": self.introspector.counters(),
            "memory": self.memory.usage(),
            "store": store_usage,
            "inflight": inflight,
        }

    def flush(self) -> None:
        """Wait until every value handed to the store has been written."""
        if self.store is not None:
            try:
                self.store.flush()
            except Exception as exc:
                self._store_failed("flush", exc)

    def close(self) -> None:
        """Flush, then refuse new requests (hits included: the memory tier is emptied)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self.flush()
        self.memory.clear()
        if self.store is not None:
            try:
                self.store.close()
            except Exception as exc:
                self._store_failed("close", exc)

    @property
    def closed(self) -> bool:
        return self._closed

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ================================================================== joining a flight
    def _enter(
        self,
        id: RequestId,
        level: CachingLevel,
        title: str | None,
        fut: asyncio.Future[Any] | None,
        thread_waiter: bool,
    ) -> tuple[_Flight | None, bool, Any]:
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
                current = _CURRENT.get()
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
            parent = _CURRENT.get()
            record = TaskRecord(
                new_task_id(),
                id,
                title,
                level,
                self.name,
                None if parent is None else parent.task_id,
            )
            flight = _Flight(id, level, record, parent)
            if fut is not None:
                flight.futures.append(fut)
            self._inflight[key] = flight
            self._by_task[flight.task_id] = flight
        introspector.begin(record)
        return flight, True, MISSING

    def _forget_locked(self, flight: _Flight) -> None:
        """Take ``flight`` out of the in-flight tables: later requests start afresh."""
        if self._inflight.get(flight.key) is flight:
            del self._inflight[flight.key]
        self._by_task.pop(flight.task_id, None)

    def _leave(self, flight: _Flight) -> None:
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

    # ================================================================== sync path
    def _get_slow(
        self,
        id: RequestId,
        level: CachingLevel,
        compute: Callable[[], T],
        title: str | None,
        looked: bool = False,
    ) -> T:
        """``looked``: the store was just read (a miss) by :meth:`_load_direct`."""
        if type(level) is not CachingLevel:
            level = as_level(level)
        for _ in range(_MAX_RETRIES):
            flight, owner, value = self._enter(id, level, title, None, True)
            if flight is None:
                return cast(T, value)
            if owner:
                flight.thread = threading.get_ident()
                try:
                    self._run_sync(flight, compute, looked)
                except BaseException:
                    self._leave(flight)
                    raise
            else:
                event = flight.event
                assert event is not None
                if not flight.done:
                    running = asyncio._get_running_loop()
                    if running is not None and running is flight.loop:
                        self._leave(flight)
                        raise BlockingGetError(
                            f"Engine.get({id.short()}) would block the event loop that runs "
                            f"the computation it waits for; use `await engine.resolve(...)`"
                        )
                try:
                    event.wait()
                except BaseException:
                    self._leave(flight)
                    raise
            if flight.waiters != 1 or flight.pinned or not flight.done:
                self._leave(flight)
            # (Else: the last waiter of a finished flight, which nobody can join any more, and
            # nothing to unpin: leaving would only take the lock to count down to zero.)
            exc = flight.exc
            if exc is None:
                return cast(T, flight.value)
            if isinstance(exc, _Abandoned):
                looked = False
                continue
            raise exc
        raise ComputationCancelledError(
            f"request {id.short()} was abandoned {_MAX_RETRIES} times by its event loop"
        )

    def _run_sync(self, flight: _Flight, compute: Callable[[], Any], looked: bool = False) -> None:
        """``looked``: the store was read (a miss) just before this flight started, so the first
        look is skipped; the look after taking the lease still happens."""
        token = _CURRENT.set(flight)
        try:
            if flight.level is _FULL and self.store is not None:
                if not looked and self._load(flight) is not MISSING:
                    return
                lease = self._lease(flight)
                lease.acquire()
                try:
                    # Look again, whatever the lease said: when it was not ours, its holder has
                    # just stored the value; when it was, another process may have finished
                    # between our first look and taking the lease.
                    if self._load(flight) is not MISSING:
                        return
                    self._compute_sync(flight, compute)
                finally:
                    lease.release()
            else:
                self._compute_sync(flight, compute)
        finally:
            _CURRENT.reset(token)

    def _compute_sync(self, flight: _Flight, compute: Callable[[], Any]) -> None:
        if flight.done:  # cancelled by an operator while waiting for the lease
            return
        self._running(flight)
        start = time.perf_counter()
        try:
            value = compute()
            if _is_awaitable(value):
                value = self._await_in_thread(flight, value)
        except BaseException as exc:
            self._fail(flight, exc)
            if not isinstance(exc, Exception):
                raise
            return
        cost = time.perf_counter() - start
        self._complete(flight, value, _COMPUTED, cost)

    def _await_in_thread(self, flight: _Flight, awaitable: Awaitable[Any]) -> Any:
        if asyncio._get_running_loop() is not None:
            if inspect.iscoroutine(awaitable):
                awaitable.close()
            raise BlockingGetError(
                f"Engine.get({flight.id.short()}): compute returned an awaitable inside a running "
                f"event loop; use `await engine.resolve(...)` for async computations"
            )

        async def run() -> Any:
            return await awaitable

        return asyncio.run(run())

    # ================================================================== async path
    async def _resolve_slow(
        self,
        id: RequestId,
        level: CachingLevel,
        compute: Callable[[], Any],
        title: str | None,
    ) -> Any:
        if type(level) is not CachingLevel:
            level = as_level(level)
        loop = asyncio.get_running_loop()
        # At FULL, when nobody computes this id, read the store without starting a flight.
        looked = level is _FULL and self.store is not None and id.memory_key not in self._inflight
        if looked:
            value = self._load_direct(id, title)
            if value is not MISSING:
                return value
        for _ in range(_MAX_RETRIES):
            fut: asyncio.Future[Any] = loop.create_future()
            flight, owner, value = self._enter(id, level, title, fut, False)
            if flight is None:
                return value
            if owner:
                flight.loop = loop
                if flight.level is _FULL and self.store is not None:
                    # A store hit completes right here; a miss goes on in a task of its own.
                    if looked or self._load(flight) is MISSING:
                        flight.task = loop.create_task(self._run_async(flight, compute))
                else:
                    self._start_inline(flight, compute, loop)
            try:
                value = await fut
            except _Abandoned:
                self._leave(flight)
                looked = False
                continue
            except BaseException:
                self._leave(flight)
                raise
            self._leave(flight)
            return value
        raise ComputationCancelledError(
            f"request {id.short()} was abandoned {_MAX_RETRIES} times by its event loop"
        )

    def _start_inline(
        self, flight: _Flight, compute: Callable[[], Any], loop: asyncio.AbstractEventLoop
    ) -> None:
        """Call ``compute`` right here: a plain value completes the flight at once (a sync
        function cannot be cancelled midway anyway); an awaitable gets a task of its own, so
        that cancelling this caller does not cancel it while others wait."""
        token = _CURRENT.set(flight)
        try:
            self._running(flight)
            start = time.perf_counter()
            try:
                result = compute()
            except BaseException as exc:
                self._fail(flight, exc)
                if not isinstance(exc, Exception):
                    raise
                return
            if _is_awaitable(result):
                # Created while _CURRENT is this flight: the task's context copy inherits it.
                flight.awaitable = result
                flight.task = loop.create_task(self._drive(flight, result, start))
            else:
                self._complete(flight, result, _COMPUTED, time.perf_counter() - start)
        finally:
            _CURRENT.reset(token)

    async def _drive(self, flight: _Flight, awaitable: Awaitable[Any], start: float) -> None:
        try:
            if flight.done:  # cancelled before this task first ran
                if inspect.iscoroutine(awaitable):
                    awaitable.close()
                return
            value = await awaitable
            self._complete(flight, value, _COMPUTED, time.perf_counter() - start)
        except asyncio.CancelledError:
            if not flight.done:
                self._finish(flight, exc=_Abandoned(), outcome=_CANCELLED_OUTCOME)
            raise
        except BaseException as exc:
            self._fail(flight, exc)
            if not isinstance(exc, Exception):
                raise

    async def _run_async(self, flight: _Flight, compute: Callable[[], Any]) -> None:
        if flight.done:
            return
        _CURRENT.set(flight)  # this task runs in a copy of the first caller's context
        lease: _GuardedLease | None = None
        try:
            if flight.level is _FULL and self.store is not None:
                # (The store was tried before this task was created.)
                lease = self._lease(flight)
                await self._acquire_async(lease)
                # Look again whether the lease was ours or not (see _run_sync).
                if self._load(flight) is not MISSING:
                    return
            if flight.done:
                return
            self._running(flight)
            start = time.perf_counter()
            value = compute()
            if _is_awaitable(value):
                value = await value
            self._complete(flight, value, _COMPUTED, time.perf_counter() - start)
        except asyncio.CancelledError:
            if not flight.done:
                # Nobody asked for this (every waiter would have marked the flight done): the
                # loop is shutting down. The waiters start over elsewhere.
                self._finish(flight, exc=_Abandoned(), outcome=_CANCELLED_OUTCOME)
            raise
        except BaseException as exc:
            self._fail(flight, exc)
            if not isinstance(exc, Exception):
                raise
        finally:
            if lease is not None:
                lease.release()

    async def _acquire_async(self, lease: _GuardedLease) -> bool:
        if lease._cm is None:
            return True
        loop = asyncio.get_running_loop()
        fut = loop.run_in_executor(None, lease.acquire)
        try:
            return await asyncio.shield(fut)
        except asyncio.CancelledError:
            # The thread still takes the lease: give it back as soon as it has it.
            fut.add_done_callback(lambda _: lease.release())
            raise

    def _cancel_task(self, flight: _Flight) -> None:
        task, loop = flight.task, flight.loop
        if task is None or loop is None or task.done():
            return
        try:
            if asyncio._get_running_loop() is loop:
                _cancel(task, flight.awaitable)
            else:
                loop.call_soon_threadsafe(_cancel, task, flight.awaitable)
        except RuntimeError:
            pass  # its loop is closed: the task is gone with it

    # ================================================================== finishing a flight
    def _running(self, flight: _Flight) -> None:
        self.introspector.transition(flight.record, _RUNNING)

    def _complete(
        self,
        flight: _Flight,
        value: Any,
        outcome: Outcome,
        cost: float = 0.0,
        size: int | None = None,
    ) -> None:
        if size is None and flight.level:
            try:
                size = self.codec.estimate_size(value)
            except Exception:
                size = 0
        delivered = self._finish(flight, value=value, outcome=outcome, size=size)
        if delivered and outcome is _COMPUTED and flight.level is _FULL:
            self._write(flight, value, cost)

    def _fail(self, flight: _Flight, exc: BaseException) -> None:
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
        flight: _Flight,
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

    def _deliver(self, flight: _Flight, futures: list[asyncio.Future[Any]]) -> None:
        """Settle the waiters' futures: directly on this thread's loop, and with one thread-safe
        call per other loop (however many of its tasks wait)."""
        running = asyncio._get_running_loop()
        elsewhere: dict[asyncio.AbstractEventLoop, list[asyncio.Future[Any]]] = {}
        for fut in futures:
            loop = fut.get_loop()
            if loop is running:
                _settle(fut, flight)
            else:
                elsewhere.setdefault(loop, []).append(fut)
        for loop, futs in elsewhere.items():
            try:
                loop.call_soon_threadsafe(_settle_all, futs, flight)
            except RuntimeError:  # that loop is closed: its waiters are gone
                for _ in futs:
                    self._leave(flight)

    def _record_end(
        self, flight: _Flight, outcome: Outcome, size: int | None, exc: BaseException | None
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

    # ================================================================== the store
    def _lease(self, flight: _Flight) -> _GuardedLease:
        store = self.store
        lease = getattr(store, "lease", None)
        if lease is None:
            return _GuardedLease(self, None)
        try:
            cm = lease(flight.id.disk_key)
        except Exception as exc:
            self._store_failed("lease", exc)
            cm = None
        return _GuardedLease(self, cm)

    def _load(self, flight: _Flight) -> Any:
        """Try the store; on a hit deliver the value (outcome STORE_HIT). MISSING otherwise."""
        store = self.store
        assert store is not None
        key = flight.id.disk_key
        try:
            data = store.get(key)
        except Exception as exc:
            self._store_failed("get", exc)
            return MISSING
        if data is None:
            return MISSING
        self.introspector.transition(flight.record, _LOADING)
        try:
            value, size = self._decoder()(data)
        except Exception as exc:
            self._undecodable(flight.record.title, key, exc)
            return MISSING
        self._complete(flight, value, _STORE_HIT, size=size)
        return value

    def _decoder(self) -> Callable[[Any], tuple[Any, int]]:
        """The codec's ``decode_sized`` (value and memory size in one call), else decode followed
        by the estimate. Looked up again only when :attr:`codec` was replaced."""
        codec = self.codec
        if codec is self._sized_codec:
            return self._decode_sized
        sized = getattr(codec, "decode_sized", None)
        if sized is None:

            def sized(data: Any) -> tuple[Any, int]:
                value = codec.decode(data)
                try:
                    return value, codec.estimate_size(value)
                except Exception:
                    return value, 0

        self._sized_codec = codec
        self._decode_sized = sized
        return sized

    def _undecodable(self, title: str, key: str, exc: Exception) -> None:
        log.warning(
            "reckon: dropping the stored value of %s (%s): it cannot be decoded (%s)",
            title,
            key,
            exc,
        )
        self.introspector.count("store_errors")
        store = self.store
        if store is not None:
            with contextlib.suppress(Exception):
                store.delete(key)

    def _load_direct(self, id: RequestId, title: str | None) -> Any:
        """A FULL request nobody is computing: read the store without a flight (no waiters to
        share with, so none of a flight's bookkeeping). A hit is recorded as a finished store
        load, with the same counters and events as one made by a flight; MISSING on a miss, a
        store failure or an undecodable entry (the caller then computes, after the lease).

        This is the fresh process's hit path, so it is kept flat: the value is sized with its
        decode (the codec's ``decode_sized``: the bytes just read, no walk of the value), put in
        memory under one lock, and recorded with one call."""
        if self._closed:
            raise EngineClosedError(
                f"engine {self.name!r} is closed; create a new Engine to make requests"
            )
        disk_key = id.disk_key
        started = _now()
        try:
            data = self.store.get(disk_key)  # type: ignore[union-attr]  # (callers checked)
        except Exception as exc:
            self._store_failed("get", exc)
            return MISSING
        if data is None:
            return MISSING
        loaded = _now()
        decode = self._decode_sized if self.codec is self._sized_codec else self._decoder()
        try:
            value, size = decode(data)
        except Exception as exc:
            self._undecodable(title if title is not None else id.short(), disk_key, exc)
            return MISSING
        # When a flight filled memory meanwhile (between the caller's look at memory and its
        # look at the flights), everyone gets the one object that flight made.
        key = id.memory_key
        value = self.memory.add(key, value, size)
        if self._closed:  # closed meanwhile: close() empties memory, and so must we
            self.memory.discard(key)
        self._count_request()
        self._count_store_hit()
        introspector = self.introspector
        if introspector._quiet:  # capture on, nobody observing: a tuple, made a record when read
            parent = _CURRENT.get()
            self._log_load(
                (
                    new_task_id(),
                    id,
                    title,
                    self.name,
                    None if parent is None else parent.task_id,
                    started,
                    loaded,
                    _now(),
                    size,
                )
            )
        elif introspector.capture:
            parent = _CURRENT.get()
            self._finished(
                id,
                title,
                _FULL,
                self.name,
                None if parent is None else parent.task_id,
                _DONE,
                {_PENDING: started, _LOADING: loaded, _DONE: _now()},
                _STORE_HIT,
                size,
            )
        return value

    def _write(self, flight: _Flight, value: Any, cost: float) -> None:
        store = self.store
        if store is None:
            return
        codec = self.codec
        # Pieces when the codec can give them (out-of-band buffers, never joined in memory).
        encode_buffers = getattr(codec, "encode_buffers", None)
        data: StoreData
        try:
            if encode_buffers is not None:
                pieces = encode_buffers(value)
                data = pieces[0] if len(pieces) == 1 else pieces
            else:
                data = codec.encode(value)
        except Exception as exc:
            self.introspector.count("encode_errors")
            reason = str(exc) if isinstance(exc, CodecError) else f"{type(exc).__name__}: {exc}"
            warnings.warn(
                f"reckon: the value of request {flight.record.title!r} (type "
                f"{type(value).__module__}.{type(value).__qualname__}) cannot be encoded, so it "
                f"is kept in memory only and not stored: {reason}",
                CodecWarning,
                stacklevel=2,
            )
            return
        try:
            store.put(flight.id.disk_key, data, cost=cost)
        except Exception as exc:
            self._store_failed("put", exc)
        else:
            self.introspector.count("stored")

    def _store_failed(self, operation: str, exc: BaseException) -> None:
        """Count a store failure and log it, at most once per operation every 10 seconds (a
        broken disk must not flood the log at every request)."""
        self.introspector.count("store_errors")
        now = time.monotonic()
        last, suppressed = self._store_log.get(operation, (0.0, 0))
        if now - last < 10.0 and last:
            self._store_log[operation] = (last, suppressed + 1)
            return
        self._store_log[operation] = (now, 0)
        log.warning(
            "reckon: store %s failed (%s: %s); treated as a miss%s",
            operation,
            type(exc).__name__,
            exc,
            f" ({suppressed} more since the last report)" if suppressed else "",
        )


_NEVER_AWAITABLE = frozenset(
    {int, float, str, bytes, bool, tuple, list, dict, set, frozenset, type(None), bytearray}
)


def _is_awaitable(value: object) -> bool:
    t = type(value)
    if t is _CoroutineType:
        return True
    if t in _NEVER_AWAITABLE:
        return False
    return inspect.isawaitable(value)


def _cancel(task: asyncio.Task[None], awaitable: Awaitable[Any] | None) -> None:
    task.cancel()
    if inspect.iscoroutine(awaitable):
        # A task cancelled before its first step never starts its coroutine, so the compute's
        # coroutine it would have awaited must be closed here (else: "never awaited").
        coro = awaitable

        def close(_: object) -> None:
            if inspect.getcoroutinestate(coro) == inspect.CORO_CREATED:
                coro.close()

        task.add_done_callback(close)


def _not_an_id(id: object) -> InvalidRequestIdError:
    return InvalidRequestIdError(
        f"expected a RequestId, got {type(id).__name__} ({id!r:.60}): build one with "
        f"RequestId(*parts)"
    )


def _settle_all(futures: list[asyncio.Future[Any]], flight: _Flight) -> None:
    for fut in futures:
        _settle(fut, flight)


def _settle(fut: asyncio.Future[Any], flight: _Flight) -> None:
    if fut.done():
        return
    if flight.exc is None:
        fut.set_result(flight.value)
    elif isinstance(flight.exc, asyncio.CancelledError):
        fut.cancel()
    else:
        fut.set_exception(flight.exc)
