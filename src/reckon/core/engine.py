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
import os
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, cast, overload

from reckon.core._engine_async import AsyncSide
from reckon.core._flight import (
    CURRENT,
    MAX_RETRIES,
    Abandoned,
    Flight,
    current_task_id,
    is_awaitable,
)
from reckon.core._waiting import rejoin_to_compute, waiting
from reckon.core.codec import Codec, PickleCodec
from reckon.core.ids import RequestId
from reckon.core.levels import CachingLevel, as_level
from reckon.core.memory import MISSING, MemoryTier
from reckon.core.stores.base import Store
from reckon.core.stores.urls import open_store
from reckon.core.tasks import (
    Introspector,
    Outcome,
)
from reckon.errors import (
    BlockingGetError,
    ComputationCancelledError,
    InvalidRequestIdError,
)

__all__ = ["Engine", "current_task_id", "on_engine_created"]

T = TypeVar("T")

_FULL = CachingLevel.FULL
_MEMORY = CachingLevel.MEMORY
# Enum members read from module globals: ``Outcome.COMPUTED`` costs a class attribute lookup
# through the enum metaclass, several times a global's.
_COMPUTED, _CANCELLED_OUTCOME = Outcome.COMPUTED, Outcome.CANCELLED
_NO_STORE = object()  # (no store looked up yet: see StoreSide._early)

log = logging.getLogger("reckon.core")
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


def _run_created_hooks(engine: Engine) -> None:
    """Call every registered hook with ``engine`` (the Engine constructor's last step)."""
    for hook in tuple(_CREATED_HOOKS):
        try:
            hook(engine)
        except Exception:  # a watcher that fails must not take the engine down with it
            log.exception("an on_engine_created hook failed for engine %r", engine.name)


class Engine(AsyncSide):
    """Resolves requests through the memory tier and a store, computing each miss once.

    The asyncio path (:class:`~reckon.core._engine_async.AsyncSide`), the store's
    (:class:`~reckon.core._engine_store.StoreSide`) and the flights' lifecycle
    (:class:`~reckon.core._engine_flights.FlightSide`) are written in modules of their own; the
    public API and the synchronous path are here.
    """

    def __init__(
        self,
        *,
        store: Store | str | os.PathLike[str] | None = None,
        memory_budget: int = 1 << 30,
        codec: Codec | None = None,
        introspector: Introspector | None = None,
        name: str = "default",
    ) -> None:
        self.name = name
        if isinstance(store, str | os.PathLike):
            store = open_store(store)  # a URL or a directory
        self.store: Store | None = store
        self.codec: Codec = codec if codec is not None else PickleCodec()
        self.introspector: Introspector = (
            introspector if introspector is not None else Introspector()
        )
        self.memory = MemoryTier(memory_budget)
        self._lock = threading.Lock()
        self._inflight: dict[int, Flight] = {}
        self._by_task: dict[int, Flight] = {}
        self._closed = False
        self._store_log: dict[str, tuple[float, int]] = {}
        seen = getattr(self.store, "unstored", 0)
        self._unstored_seen = seen if isinstance(seen, int) else 0
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
        self._early_store: Any = _NO_STORE
        self._early()
        _run_created_hooks(self)

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
            self._count_unstored()
        with self._lock:
            inflight = len(self._inflight)
        return {
            "name": self.name,
            "counters": self.introspector.counters(),
            "memory": self.memory.usage(),
            "store": store_usage,
            "inflight": inflight,
        }

    def flush(self) -> list[str]:
        """Wait until every value handed to the store has been written. Returns the keys whose
        writes failed since the last flush (they also count in ``store_errors``)."""
        failed: list[str] = []
        if self.store is not None:
            try:
                failed = list(self.store.flush() or ())
            except Exception as exc:
                self._store_failed("flush", exc)
            self._count_unstored()
        return failed

    def _count_unstored(self) -> None:
        """Writes the store failed in the background count as ``store_errors`` here."""
        unstored = getattr(self.store, "unstored", None)
        if not isinstance(unstored, int):
            return
        with self._lock:
            new = unstored - self._unstored_seen
            if new <= 0:
                return
            self._unstored_seen = unstored
        bump = self.introspector.bumper("store_errors")
        for _ in range(new):
            bump()

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

    # ================================================================== sync path
    def _get_slow(
        self,
        id: RequestId,
        level: CachingLevel,
        compute: Callable[[], T],
        title: str | None,
        looked: bool = False,
    ) -> T:
        """``looked``: :meth:`_load_direct` just made the look before the lease (a miss)."""
        if type(level) is not CachingLevel:
            level = as_level(level)
        for _ in range(MAX_RETRIES):
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
                    if not event.is_set():
                        with waiting():  # gives a Dask worker's slot away meanwhile
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
            if isinstance(exc, Abandoned):
                looked = False
                continue
            raise exc
        raise ComputationCancelledError(
            f"request {id.short()} was abandoned {MAX_RETRIES} times by its event loop"
        )

    def _run_sync(self, flight: Flight, compute: Callable[[], Any], looked: bool = False) -> None:
        """``looked``: the look before the lease (see ``_early``) was made just before this
        flight started, so it is skipped; the look after taking the lease still happens (unless
        the lease made it)."""
        token = CURRENT.set(flight)
        try:
            if flight.level is _FULL and self.store is not None:
                if not looked and self._load(flight, early=True) is not MISSING:
                    return
                lease = self._lease(flight)
                mine = lease.acquire()
                try:
                    # Look again: when the lease was not ours, its holder has just stored the
                    # value; without a lease (or when taking it failed), another process may
                    # have finished since our first look. A lease granted saw the value absent.
                    if not (mine and lease.looked) and self._load(flight) is not MISSING:
                        return
                    self._compute_sync(flight, compute)
                finally:
                    lease.release()
            else:
                self._compute_sync(flight, compute)
        finally:
            CURRENT.reset(token)

    def _compute_sync(self, flight: Flight, compute: Callable[[], Any]) -> None:
        if flight.done:  # cancelled by an operator while waiting for the lease
            return
        rejoin_to_compute()  # a wait for another holder may have taken us out of Dask's pool
        self._running(flight)
        start = time.perf_counter()
        try:
            value = compute()
            if is_awaitable(value):
                value = self._await_in_thread(flight, value)
        except BaseException as exc:
            self._fail(flight, exc)
            if not isinstance(exc, Exception):
                raise
            return
        cost = time.perf_counter() - start
        self._complete(flight, value, _COMPUTED, cost)

    def _await_in_thread(self, flight: Flight, awaitable: Awaitable[Any]) -> Any:
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


def _not_an_id(id: object) -> InvalidRequestIdError:
    return InvalidRequestIdError(
        f"expected a RequestId, got {type(id).__name__} ({id!r:.60}): build one with "
        f"RequestId(*parts)"
    )
