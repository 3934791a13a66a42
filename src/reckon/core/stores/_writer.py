"""The background writer: puts and deletes leave the caller's path and are committed in batches.

A bounded queue (by bytes and by count) gives back-pressure: a caller that outruns the disk waits
instead of growing memory without limit. Ops for one key keep their order. ``pending`` maps each
key with a queued op to its newest op, so reads see queued writes (read-your-writes) before they
reach disk. One thread per store, started on first use, restarted lazily in a forked child.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from typing import Any, Final

log = logging.getLogger("reckon.core.store")

PUT: Final = 1
DELETE: Final = 2
TOUCH: Final = 3  # no payload: wakes the writer to persist batched access times
CALL: Final = 4  # no payload: ``meta`` is a function the store's apply calls in its turn


class Op:
    __slots__ = ("cost", "data", "key", "kind", "meta", "size", "stamp")

    def __init__(
        self,
        kind: int,
        key: str,
        data: bytes | memoryview | tuple[bytes | memoryview, ...] | None = None,
        cost: float = 0.0,
        stamp: float = 0.0,
        size: int | None = None,
        meta: Any = None,
    ) -> None:
        self.kind = kind
        self.key = key
        self.data = data  # one buffer, or a tuple of pieces (``size`` is then their total)
        self.cost = cost
        self.stamp = stamp
        self.size = size if size is not None else 0 if data is None else len(data)
        self.meta = meta  # a put's metadata (the store's form of it), or None


class Writer:
    """Applies queued ops with ``apply(batch)`` on its own thread; ``flush()`` waits for them."""

    def __init__(
        self,
        apply: Callable[[list[Op]], None],
        *,
        max_bytes: int,
        max_items: int = 10_000,
        batch_items: int = 1_000,
        batch_bytes: int = 32 << 20,
        idle_timeout: float = 10.0,
    ) -> None:
        self._apply = apply
        self._max_bytes = max_bytes
        self._max_items = max_items
        self._batch_items = batch_items
        self._batch_bytes = batch_bytes
        self._idle_timeout = idle_timeout
        self._reset()

    def _reset(self) -> None:
        lock = threading.Lock()
        self._cond = threading.Condition(lock)  # producers and flushers wait on it
        self._work = threading.Condition(lock)  # the writer waits on it
        self._idle = False
        self._queue: deque[Op] = deque()
        self.pending: dict[str, Op] = {}
        self._queued_bytes = 0
        self._submitted = 0
        self._done = 0
        self._thread: threading.Thread | None = None
        self._closing = False

    def after_fork_in_child(self) -> None:
        """The parent's queue belongs to the parent (it writes it); the child starts empty."""
        self._reset()

    def submit(self, op: Op, *, wait: bool = True) -> bool:
        """Queue ``op``; block while the queue is full unless ``wait`` is False (then drop it)."""
        with self._cond:
            if self._closing:
                return False
            if self._thread is None:
                self._start()
            on_writer = threading.current_thread() is self._thread
            while (
                self._queue
                and not on_writer
                and (
                    self._queued_bytes + op.size > self._max_bytes
                    or len(self._queue) >= self._max_items
                )
            ):
                if not wait:
                    return False
                self._cond.wait()
            self._queue.append(op)
            self._queued_bytes += op.size
            self._submitted += 1
            if op.kind == PUT or op.kind == DELETE:  # (what reads of the key must see)
                self.pending[op.key] = op
            if self._idle:  # wake the writer only when it sleeps: no handoff per put
                self._work.notify()
            return True

    def _start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="reckon-store-writer", daemon=True)
        self._thread.start()

    def flush(self) -> None:
        with self._cond:
            if threading.current_thread() is self._thread:
                return
            target = self._submitted
            while self._done < target and self._thread is not None and self._thread.is_alive():
                self._cond.wait()

    def close(self) -> None:
        self.flush()
        with self._cond:
            self._closing = True
            thread = self._thread
            self._work.notify()
        if thread is not None and thread is not threading.current_thread():
            thread.join()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closing:
                    self._idle = True
                    woken = self._work.wait(self._idle_timeout)
                    self._idle = False
                    if not woken and not self._queue:
                        # Idle: end the thread (the next submit starts another), so an unused
                        # store holds no thread or connection and can be garbage collected.
                        self._thread = None
                        return
                if not self._queue:
                    return
                batch: list[Op] = []
                nbytes = 0
                while (
                    self._queue
                    and len(batch) < self._batch_items
                    and (not batch or nbytes + self._queue[0].size <= self._batch_bytes)
                ):
                    op = self._queue.popleft()
                    batch.append(op)
                    nbytes += op.size
            try:
                self._apply(batch)
            except BaseException:  # the writer must outlive any failure; the ops become misses
                log.exception("store writer failed to apply %d queued operations", len(batch))
            with self._cond:
                for op in batch:
                    if self.pending.get(op.key) is op:
                        del self.pending[op.key]
                self._queued_bytes -= nbytes
                self._done += len(batch)
                self._cond.notify_all()
