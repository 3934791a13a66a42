"""A flight: one computation in progress and everyone waiting for it.

The engine keeps one :class:`Flight` per key being computed. Waiters join it: threads blocked in
``Engine.get`` (woken by its event) and asyncio tasks awaiting ``Engine.resolve`` on any event
loop (their futures, settled here, on their own loops). :data:`CURRENT` names the flight whose
computation runs in this context, so a request made from inside it records it as its parent (and
a request for its own id is caught as a cycle).
"""

from __future__ import annotations

import asyncio
import inspect
import threading
from collections.abc import Awaitable
from contextvars import ContextVar
from types import CoroutineType as _CoroutineType
from typing import Any

from reckon.core.ids import RequestId
from reckon.core.levels import CachingLevel
from reckon.core.tasks import TaskRecord

__all__ = [
    "CURRENT",
    "MAX_RETRIES",
    "Abandoned",
    "Flight",
    "cancel_task",
    "current_task_id",
    "is_awaitable",
    "settle",
    "settle_all",
]

MAX_RETRIES = 8  # restarts of a flight whose event loop went away under it


class Abandoned(Exception):
    """Delivered to waiters when the loop running their computation stopped under it (not a
    cancellation anyone asked for): they start the request again."""


class Flight:
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
        self, id: RequestId, level: CachingLevel, record: TaskRecord, parent: Flight | None
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
CURRENT: ContextVar[Flight | None] = ContextVar("reckon_current_flight", default=None)


def current_task_id() -> int | None:
    """The task id of the computation running in this context (None outside computations)."""
    flight = CURRENT.get()
    return None if flight is None else flight.task_id


_NEVER_AWAITABLE = frozenset(
    {int, float, str, bytes, bool, tuple, list, dict, set, frozenset, type(None), bytearray}
)


def is_awaitable(value: object) -> bool:
    t = type(value)
    if t is _CoroutineType:
        return True
    if t in _NEVER_AWAITABLE:
        return False
    return inspect.isawaitable(value)


def cancel_task(task: asyncio.Task[None], awaitable: Awaitable[Any] | None) -> None:
    task.cancel()
    if inspect.iscoroutine(awaitable):
        # A task cancelled before its first step never starts its coroutine, so the compute's
        # coroutine it would have awaited must be closed here (else: "never awaited").
        coro = awaitable

        def close(_: object) -> None:
            if inspect.getcoroutinestate(coro) == inspect.CORO_CREATED:
                coro.close()

        task.add_done_callback(close)


def settle_all(futures: list[asyncio.Future[Any]], flight: Flight) -> None:
    for fut in futures:
        settle(fut, flight)


def settle(fut: asyncio.Future[Any], flight: Flight) -> None:
    if fut.done():
        return
    if flight.exc is None:
        fut.set_result(flight.value)
    elif isinstance(flight.exc, asyncio.CancelledError):
        fut.cancel()
    else:
        fut.set_exception(flight.exc)
