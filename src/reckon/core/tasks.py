"""Introspection: what is computing, what computed, and how often the caches answered.

Every computation (or store load) leaves a :class:`TaskRecord`; hits only bump counters, so the hit
path stays a dictionary lookup. Records move from the live table to a bounded history when they
finish. Observers either register a listener (called synchronously in the thread where the event
happens; keep it quick) or subscribe (an async iterator delivering events to the subscriber's own
event loop, whichever thread produced them).
"""

from __future__ import annotations

import asyncio
import enum
import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from reckon.core.levels import CachingLevel
from reckon.errors import ConfigurationError

if TYPE_CHECKING:
    from reckon.core.ids import RequestId

__all__ = [
    "Introspector",
    "Outcome",
    "Subscription",
    "TaskEvent",
    "TaskRecord",
    "TaskState",
]

log = logging.getLogger("reckon.core")

# Task ids are unique in the process and increasing, whichever engine or introspector made them.
_next_task_id: Callable[[], int] = itertools.count(1).__next__
new_task_id = _next_task_id  # (the C method itself: the store-hit path calls it)


class TaskState(enum.StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    LOADING = "loading"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


FINISHED_STATES = frozenset({TaskState.DONE, TaskState.FAILED, TaskState.CANCELLED})
_DONE, _FAILED, _CANCELLED = TaskState.DONE, TaskState.FAILED, TaskState.CANCELLED
_PENDING = TaskState.PENDING


class Outcome(enum.StrEnum):
    MEMORY_HIT = "memory_hit"
    STORE_HIT = "store_hit"
    COMPUTED = "computed"
    FAILED = "failed"
    CANCELLED = "cancelled"


class TaskRecord:
    """One computation (or store load). Mutated only by the engine that owns it; observers get
    snapshots (:meth:`snapshot`) in events, so what they hold never changes under them."""

    __slots__ = (
        "_title",
        "engine",
        "error",
        "level",
        "outcome",
        "parent",
        "request_id",
        "size",
        "state",
        "task_id",
        "times",
    )

    def __init__(
        self,
        task_id: int,
        request_id: RequestId,
        title: str | None,
        level: CachingLevel,
        engine: str,
        parent: int | None = None,
    ) -> None:
        self.task_id = task_id
        self.request_id = request_id
        self._title = title
        self.level = level
        self.engine = engine
        self.state = _PENDING
        self.times: dict[TaskState, float] = {_PENDING: time.time()}
        self.outcome: Outcome | None = None
        self.parent = parent
        self.size: int | None = None
        self.error: str | None = None

    @property
    def title(self) -> str:
        """The title given with the request, else a readable form of the id (made on demand:
        most records are never looked at)."""
        title = self._title
        if title is None:
            title = self._title = self.request_id.short()
        return title

    @title.setter
    def title(self, value: str) -> None:
        self._title = value

    def snapshot(self) -> TaskRecord:
        # Spelled out (not a loop over __slots__ with getattr/setattr): observers take one per
        # event, so this runs three times per computation.
        copy = _new_record(TaskRecord)
        copy._title = self._title
        copy.engine = self.engine
        copy.error = self.error
        copy.level = self.level
        copy.outcome = self.outcome
        copy.parent = self.parent
        copy.request_id = self.request_id
        copy.size = self.size
        copy.state = self.state
        copy.task_id = self.task_id
        copy.times = self.times.copy()
        return copy

    @property
    def finished(self) -> bool:
        return self.state in FINISHED_STATES

    @property
    def duration(self) -> float | None:
        """Seconds from creation to the end (or to now while still live)."""
        start = self.times.get(TaskState.PENDING)
        if start is None:
            return None
        end = self.times.get(self.state) if self.finished else time.time()
        return (end or time.time()) - start

    def to_dict(self) -> dict[str, Any]:
        # ``_value_`` (the plain str) rather than ``.value``, a descriptor several times slower:
        # the observe server converts every event it sends.
        outcome = self.outcome
        return {
            "task_id": self.task_id,
            "request_id": self.request_id.disk_key,
            "title": self.title,
            "level": int(self.level),
            "engine": self.engine,
            "state": self.state._value_,
            "times": {state._value_: t for state, t in self.times.items()},
            "outcome": None if outcome is None else outcome._value_,
            "parent": self.parent,
            "size": self.size,
            "error": self.error,
        }

    def __repr__(self) -> str:
        return (
            f"TaskRecord(task_id={self.task_id}, title={self.title!r}, state={self.state.value}, "
            f"outcome={None if self.outcome is None else self.outcome.value}, "
            f"parent={self.parent}, size={self.size})"
        )


_Load = tuple[
    int, "RequestId", "str | None", str, "int | None", float, float, float, "int | None"
]  # fmt: skip
"""A store load made without a flight and without observers, kept as this tuple until the history
is read: (task_id, request_id, title, engine, parent, pending, loading and done times, size). Its
level (FULL), final state (DONE) and outcome (STORE_HIT) go without saying. Building a record, or
even the dict of its times, costs more than the rest of the hit, and in a fresh process every
byte a hit keeps is memory the kernel must first hand over (see Introspector._log_load)."""

_FULL_LEVEL = CachingLevel.FULL
_LOADING = TaskState.LOADING


def _from_load(load: _Load) -> TaskRecord:
    """The TaskRecord of a logged store load, slot by slot (no constructor call)."""
    record: TaskRecord = _new_record(TaskRecord)
    (
        record.task_id,
        record.request_id,
        record._title,
        record.engine,
        record.parent,
        pending,
        loading,
        done,
        record.size,
    ) = load
    record.level = _FULL_LEVEL
    record.state = _DONE
    record.times = {_PENDING: pending, _LOADING: loading, _DONE: done}
    record.outcome = Outcome.STORE_HIT
    record.error = None
    return record


@dataclass(frozen=True)
class TaskEvent:
    seq: int
    record: TaskRecord


_new_record = object.__new__


def _make_event(seq: int, record: TaskRecord) -> TaskEvent:
    """``TaskEvent(seq, record)`` without the frozen dataclass's ``object.__setattr__`` calls
    (the same object: the fields go straight into its ``__dict__``)."""
    event: TaskEvent = _new_record(TaskEvent)
    fields = event.__dict__
    fields["seq"] = seq
    fields["record"] = record
    return event


class _HitCounter:
    """A counter bumped without a lock: ``itertools.count.__next__`` is atomic under the GIL."""

    __slots__ = ("_base", "_count", "bump")

    def __init__(self) -> None:
        self._count = itertools.count()
        # Engines bind this method once, so the counter object is never replaced.
        self.bump: Callable[[], int] = self._count.__next__
        self._base = 0

    def _read(self) -> int:
        # repr is "count(N)": the only public way to read the count without advancing it.
        return int(repr(self._count)[6:-1])

    def reset(self) -> None:
        self._base = self._read()

    @property
    def value(self) -> int:
        return self._read() - self._base


COUNTER_NAMES = (
    "requests",
    "memory_hit",
    "store_hit",
    "computed",
    "failed",
    "cancelled",
    "shared",
    "stored",
    "store_errors",
    "encode_errors",
)


class Introspector:
    """Records of computations, live and recent, plus counters and event delivery."""

    def __init__(self, history: int = 10_000, capture: bool = True) -> None:
        if history < 0:
            raise ConfigurationError(
                f"history must be >= 0 records, got {history} (0 keeps none, capture=False none)"
            )
        self._lock = threading.Lock()
        self._live: dict[int, TaskRecord] = {}
        # Finished records, oldest first; appended to under the lock only. Store loads logged
        # without observers (_log_load) are kept as tuples (_Load) and made TaskRecords when the
        # history is first read (_records_locked).
        self._history: deque[TaskRecord | _Load] = deque(maxlen=history)
        self._compact = 0  # _Load entries moved in since the history was last made whole
        # Logged store loads not yet moved into the history. Appended to without the lock
        # (deque.append is atomic under the GIL; the deque is never replaced) and moved into the
        # history, in order, before anything else is appended to it or it is read
        # (_drain_locked). Bounded like the history: what falls out would fall out of it anyway.
        self._loads: deque[_Load] = deque(maxlen=history)
        # How the engine records a store load made without a flight while _quiet (capture on,
        # nobody observing; else it calls finished()): one C call, no lock, no record built.
        self._log_load: Callable[[_Load], None] = self._loads.append
        # Lock-free counters (itertools.count steps atomically under the GIL).
        self._counters: dict[str, _HitCounter] = {name: _HitCounter() for name in COUNTER_NAMES}
        self.memory_hits = self._counters["memory_hit"]
        self._seq = itertools.count(1).__next__
        self._listeners: list[Callable[[TaskEvent], None]] = []
        self._subscriptions: list[Subscription] = []
        self._capture = bool(capture)
        self._quiet = self._capture  # capture on and nobody observing (see _log_load)

    @property
    def capture(self) -> bool:
        """Whether computations leave records and events (off: counters only)."""
        return self._capture

    @capture.setter
    def capture(self, on: bool) -> None:
        with self._lock:
            self._capture = bool(on)
            self._update_quiet_locked()

    def _update_quiet_locked(self) -> None:
        self._quiet = self._capture and not self._listeners and not self._subscriptions

    # ---------------------------------------------------------------- used by the engine
    def count(self, name: str) -> None:
        self.bumper(name)()

    def bumper(self, name: str) -> Callable[[], int]:
        """The lock-free increment of counter ``name`` (created on first use), for hot paths."""
        counter = self._counters.get(name)
        if counter is None:
            with self._lock:
                counter = self._counters.setdefault(name, _HitCounter())
        return counter.bump

    def begin(self, record: TaskRecord) -> None:
        """Register a new live record (capture on) and announce it."""
        if not self._capture:
            return
        # No lock: one dict store is atomic under the GIL, and readers copy the table in one C
        # call under the lock (only the move from live to history must be seen whole).
        self._live[record.task_id] = record
        self._emit(record)

    def transition(
        self,
        record: TaskRecord,
        state: TaskState,
        *,
        outcome: Outcome | None = None,
        size: int | None = None,
        error: str | None = None,
    ) -> None:
        current = record.state
        if current is _DONE or current is _FAILED or current is _CANCELLED:
            return  # a finished record never changes again
        record.state = state
        record.times[state] = time.time()
        if outcome is not None:
            record.outcome = outcome
        if size is not None:
            record.size = size
        if error is not None:
            record.error = error
        if not self._capture:
            return
        if state is _DONE or state is _FAILED or state is _CANCELLED:
            with self._lock:
                if self._live.pop(record.task_id, None) is None:
                    return  # captured after it began (capture was off then): nothing to finish
                self._drain_locked()
                self._history.append(record)
        elif record.task_id not in self._live:
            return
        self._emit(record)

    def finished(
        self,
        request_id: RequestId,
        title: str | None,
        level: CachingLevel,
        engine: str,
        parent: int | None,
        state: TaskState,
        times: dict[TaskState, float],
        outcome: Outcome,
        size: int | None,
    ) -> None:
        """Record a task that began and finished in one step (a store load made without a
        flight while someone observes; ``times`` holds every state it went through, ``state`` the
        final one): into the history at once, and one event per state, as if it had been
        followed live. (Without observers the engine logs such loads with :attr:`_log_load`.)"""
        if not self._capture:
            return
        record: TaskRecord = _new_record(TaskRecord)
        record.task_id = _next_task_id()
        record.request_id = request_id
        record._title = title
        record.level = level
        record.engine = engine
        record.parent = parent
        record.state = state
        record.times = times
        record.outcome = outcome
        record.size = size
        record.error = None
        with self._lock:
            self._drain_locked()
            self._history.append(record)
        final = record.state
        seen: dict[TaskState, float] = {}
        for state, t in record.times.items():
            seen[state] = t
            snap = record.snapshot()
            snap.state = state
            snap.times = seen.copy()
            if state is not final:
                snap.outcome = snap.size = snap.error = None
            self._emit_snapshot(snap)

    def _drain_locked(self) -> None:
        """Move the logged store loads into the history, oldest first (call with the lock held,
        before appending to the history or reading it, so its order is the order of finishing).
        Pops exactly as many as were there: loads logged meanwhile wait for the next drain."""
        loads = self._loads
        n = len(loads)
        if n:
            append, popleft = self._history.append, loads.popleft
            for _ in range(n):
                append(popleft())
            self._compact += n

    def _emit(self, record: TaskRecord) -> None:
        listeners = self._listeners
        subscriptions = self._subscriptions
        if not listeners and not subscriptions:
            return
        self._emit_snapshot(record.snapshot())

    def _emit_snapshot(self, snapshot: TaskRecord) -> None:
        event = _make_event(self._seq(), snapshot)
        for fn in self._listeners:
            try:
                fn(event)
            except Exception:
                log.exception("reckon: introspection listener %r failed", fn)
        for sub in self._subscriptions:
            sub._push(event)

    # ---------------------------------------------------------------- queries
    def live(self) -> list[TaskRecord]:
        with self._lock:
            return sorted(self._live.values(), key=lambda r: r.task_id)

    def _records_locked(self) -> deque[TaskRecord]:
        """The history with every compact entry made a record (once: the history keeps the
        record, so later reads return the same object). Call with the lock held."""
        self._drain_locked()
        history = self._history
        if self._compact:
            self._compact = 0
            history = self._history = deque(
                (r if type(r) is TaskRecord else _from_load(r) for r in history),  # type: ignore[arg-type]
                maxlen=history.maxlen,
            )
        return history  # type: ignore[return-value]

    def history(self) -> list[TaskRecord]:
        with self._lock:
            return list(self._records_locked())

    def tasks(
        self,
        *,
        state: TaskState | None = None,
        title: str | None = None,
        limit: int | None = None,
    ) -> list[TaskRecord]:
        """Live and finished records, newest first; ``title`` matches a substring."""
        with self._lock:
            records = list(self._live.values()) + list(self._records_locked())
        records.sort(key=lambda r: r.task_id, reverse=True)
        if state is not None:
            wanted = TaskState(state)
            records = [r for r in records if r.state is wanted]
        if title is not None:
            records = [r for r in records if title in r.title]
        if limit is not None:
            records = records[:limit]
        return records

    def task(self, task_id: int) -> TaskRecord | None:
        with self._lock:
            record = self._live.get(task_id)
            if record is not None:
                return record
            for record in self._records_locked():
                if record.task_id == task_id:
                    return record
        return None

    def children(self, task_id: int) -> list[TaskRecord]:
        with self._lock:
            records = list(self._live.values()) + list(self._records_locked())
        return sorted((r for r in records if r.parent == task_id), key=lambda r: r.task_id)

    def counters(self) -> dict[str, int]:
        counts = {name: counter.value for name, counter in list(self._counters.items())}
        counts["requests"] += counts["memory_hit"]  # the hit path counts nothing else
        return counts

    def clear_history(self) -> None:
        with self._lock:
            self._loads.clear()
            self._history.clear()
            self._compact = 0

    def reset_counters(self) -> None:
        with self._lock:
            for counter in self._counters.values():
                counter.reset()

    # ---------------------------------------------------------------- observers
    def subscribe(self, maxsize: int = 10_000) -> Subscription:
        sub = Subscription(self, maxsize)
        with self._lock:
            self._subscriptions = [*self._subscriptions, sub]
            self._update_quiet_locked()
        return sub

    def _unsubscribe(self, sub: Subscription) -> None:
        with self._lock:
            self._subscriptions = [s for s in self._subscriptions if s is not sub]
            self._update_quiet_locked()

    def add_listener(self, fn: Callable[[TaskEvent], None]) -> Callable[[], None]:
        with self._lock:
            self._listeners = [*self._listeners, fn]
            self._update_quiet_locked()

        def remove() -> None:
            with self._lock:
                self._listeners = [f for f in self._listeners if f is not fn]
                self._update_quiet_locked()

        return remove


class Subscription:
    """An async iterator of :class:`TaskEvent`, safe to feed from any thread.

    Events wait in a bounded queue; when it is full new events are dropped and counted in
    :attr:`dropped` (a slow observer never slows the engine). The consumer's event loop is woken
    only when it is actually waiting.
    """

    def __init__(self, introspector: Introspector, maxsize: int = 10_000) -> None:
        if maxsize < 1:
            raise ConfigurationError(f"a subscription needs maxsize >= 1 events, got {maxsize}")
        self._introspector = introspector
        self._maxsize = maxsize
        self._lock = threading.Lock()
        self._queue: deque[TaskEvent] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._closed = False
        self.dropped = 0

    def _push(self, event: TaskEvent) -> None:
        with self._lock:
            if self._closed:
                return
            if len(self._queue) >= self._maxsize:
                self.dropped += 1
                return
            self._queue.append(event)
            waiter, self._waiter = self._waiter, None
        if waiter is not None:
            _wake(waiter)

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> TaskEvent:
        while True:
            with self._lock:
                if self._queue:
                    return self._queue.popleft()
                if self._closed:
                    raise StopAsyncIteration
                waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
                self._waiter = waiter
            await waiter

    def pending(self) -> int:
        """Events queued and not yet consumed."""
        with self._lock:
            return len(self._queue)

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            waiter, self._waiter = self._waiter, None
        self._introspector._unsubscribe(self)
        if waiter is not None:
            _wake(waiter)

    async def __aenter__(self) -> Subscription:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()


def _set_if_pending(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


def _wake(fut: asyncio.Future[None]) -> None:
    loop = fut.get_loop()
    try:
        if asyncio._get_running_loop() is loop:
            _set_if_pending(fut)
        else:
            loop.call_soon_threadsafe(_set_if_pending, fut)
    except RuntimeError:
        pass  # the subscriber's loop is closed: nobody is left to wake
