"""The engine's asyncio side: :meth:`Engine.resolve` past the memory tier.

The first caller of a key starts the flight on its own loop. A plain value from ``compute``
completes the flight at once; an awaitable (or, at FULL, the store lease and the computation)
runs in a task of its own, so cancelling one caller does not cancel a computation others wait
for; when the last waiter is cancelled, the task is. A waiter whose loop stopped under the flight
(:class:`~reckon.core._flight.Abandoned`) starts over.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any

from reckon.core._engine_store import GuardedLease, StoreSide
from reckon.core._flight import (
    CURRENT,
    MAX_RETRIES,
    Abandoned,
    Flight,
    is_awaitable,
)
from reckon.core.ids import RequestId
from reckon.core.levels import CachingLevel, as_level
from reckon.core.memory import MISSING
from reckon.core.tasks import Outcome
from reckon.errors import ComputationCancelledError

__all__ = ["AsyncSide"]

_FULL = CachingLevel.FULL
_COMPUTED = Outcome.COMPUTED
_CANCELLED_OUTCOME = Outcome.CANCELLED


class AsyncSide(StoreSide):
    """The asyncio half of :class:`~reckon.core.engine.Engine` (its base class; the store
    half, :class:`StoreSide`, and the flight table's, ``FlightSide``, are this one's bases)."""

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
        for _ in range(MAX_RETRIES):
            fut: asyncio.Future[Any] = loop.create_future()
            flight, owner, value = self._enter(id, level, title, fut, False)
            if flight is None:
                return value
            if owner:
                flight.loop = loop
                if flight.level is _FULL and self.store is not None:
                    # A store hit completes right here; a miss goes on in a task of its own.
                    if looked or self._load(flight, early=True) is MISSING:
                        flight.task = loop.create_task(self._run_async(flight, compute))
                else:
                    self._start_inline(flight, compute, loop)
            try:
                value = await fut
            except Abandoned:
                self._leave(flight)
                looked = False
                continue
            except BaseException:
                self._leave(flight)
                raise
            self._leave(flight)
            return value
        raise ComputationCancelledError(
            f"request {id.short()} was abandoned {MAX_RETRIES} times by its event loop"
        )

    def _start_inline(
        self, flight: Flight, compute: Callable[[], Any], loop: asyncio.AbstractEventLoop
    ) -> None:
        """Call ``compute`` right here: a plain value completes the flight at once (a sync
        function cannot be cancelled midway anyway); an awaitable gets a task of its own, so
        that cancelling this caller does not cancel it while others wait."""
        token = CURRENT.set(flight)
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
            if is_awaitable(result):
                # Created while CURRENT is this flight: the task's context copy inherits it.
                flight.awaitable = result
                flight.task = loop.create_task(self._drive(flight, result, start))
            else:
                self._complete(flight, result, _COMPUTED, time.perf_counter() - start)
        finally:
            CURRENT.reset(token)

    async def _drive(self, flight: Flight, awaitable: Awaitable[Any], start: float) -> None:
        try:
            if flight.done:  # cancelled before this task first ran
                if inspect.iscoroutine(awaitable):
                    awaitable.close()
                return
            value = await awaitable
            self._complete(flight, value, _COMPUTED, time.perf_counter() - start)
        except BaseException as exc:
            self._ended_by(flight, exc)
            if not isinstance(exc, Exception):
                raise  # cancellation, KeyboardInterrupt, SystemExit: the task ends with them

    def _ended_by(self, flight: Flight, exc: BaseException) -> None:
        """A computation's task raised ``exc``. A cancellation nobody asked for (every waiter
        that cancels marks the flight done first) means the loop is shutting down: the flight
        is abandoned and its waiters start over elsewhere. Anything else fails the flight."""
        if isinstance(exc, asyncio.CancelledError):
            if not flight.done:
                self._finish(flight, exc=Abandoned(), outcome=_CANCELLED_OUTCOME)
        else:
            self._fail(flight, exc)

    async def _run_async(self, flight: Flight, compute: Callable[[], Any]) -> None:
        if flight.done:
            return
        CURRENT.set(flight)  # this task runs in a copy of the first caller's context
        lease: GuardedLease | None = None
        try:
            if flight.level is _FULL and self.store is not None:
                # (The store was tried before this task was created.)
                lease = self._lease(flight)
                mine, data = await self._acquire_async(lease, flight.id.disk_key)
                # Look again unless a lease granted saw the value absent (see _run_sync).
                if not (mine and lease.looked) and self._decode_hit(flight, data) is not MISSING:
                    return
            if flight.done:
                return
            self._running(flight)
            start = time.perf_counter()
            value = compute()
            if is_awaitable(value):
                value = await value
            self._complete(flight, value, _COMPUTED, time.perf_counter() - start)
        except BaseException as exc:
            self._ended_by(flight, exc)
            if not isinstance(exc, Exception):
                raise
        finally:
            if lease is not None:
                lease.release()

    async def _acquire_async(self, lease: GuardedLease, key: str) -> tuple[bool, Any]:
        """Take ``lease`` on a thread of the loop's executor (it may wait), and there too, unless
        a lease granted saw the value absent, read the store: the read that follows a lease's
        "present" takes what the lease's look read, and it was read in that thread. (Whether to
        compute, the stored bytes or None.)"""
        store = self.store
        assert store is not None
        if lease._cm is None:
            return True, self._read_store(key, store.get)

        def take() -> tuple[bool, Any]:
            mine = lease.acquire()
            return mine, None if mine and lease.looked else self._read_store(key, store.get)

        loop = asyncio.get_running_loop()
        fut = loop.run_in_executor(None, take)
        try:
            return await asyncio.shield(fut)
        except asyncio.CancelledError:
            # The thread still takes the lease: give it back as soon as it has it.
            fut.add_done_callback(lambda _: lease.release())
            raise
