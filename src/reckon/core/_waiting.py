"""How a caller waits for another holder (a store's lease, or another thread's computation of
the same key): how often it looks, and what it gives up.

Two rules, shared by every store's lease and the engine's flights:

* **Look often at first, then less.** The pause before the next look grows with the time already
  waited (a tenth of it), between ``first`` and ``most``: a waiter learns of a value that took
  0.1 s within about 10 ms, and one waiting for an hour-long computation asks a few times a
  minute, not thousands of times.
* **Do not hold a worker slot hostage.** Inside a Dask task, a waiter leaves the worker's thread
  pool (``distributed.secede``) while it waits, so the worker runs other tasks meanwhile. Copies
  of one computation that run at once on many workers then cost one body, not a worker each for
  as long as the body takes. It rejoins the pool (``distributed.rejoin``) only if it goes on to
  compute (:func:`rejoin_to_compute`): a waiter that got the value finishes its task outside
  the pool, at once, instead of waiting for a free slot to read and return it. (Detected
  without importing Dask: only when ``distributed`` is loaded and this thread runs a task.)
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import sys
import threading
import time
from collections.abc import Callable, Iterator

log = logging.getLogger("reckon.core")


class Pause:
    """The pauses of one wait (see the module docstring)."""

    __slots__ = ("_first", "_most", "_start")

    def __init__(self, first: float, most: float) -> None:
        self._first = first
        self._most = most
        self._start = time.monotonic()

    def next(self) -> float:
        """Seconds to sleep before the next look."""
        return min(self._most, max(self._first, (time.monotonic() - self._start) / 10))


_out = threading.local()  # .rejoin: how this thread gets back into the pool it left


@contextlib.contextmanager
def waiting() -> Iterator[None]:
    """Around a wait for another holder: leave the Dask worker's thread pool (for the rest of
    the task, unless it computes: see :func:`rejoin_to_compute`).

    Every wait of a task's thread for another thread or process goes through here, the
    engine's flights included: a waiter that stayed in the pool could hold the only slot that a
    waiter who left needs to rejoin and finish."""
    rejoin = _secede()
    if rejoin is not None:
        _out.rejoin = rejoin
    yield


def rejoin_to_compute() -> None:
    """Before this thread computes: back into the Dask worker's pool if a wait took it out
    (waiting for a free slot, as a task would), so a worker never runs more computations at
    once than it has threads."""
    rejoin = getattr(_out, "rejoin", None)
    if rejoin is None:
        return
    _out.rejoin = None
    try:
        from distributed.threadpoolexecutor import thread_state as pool_thread

        if getattr(pool_thread, "proceed", True):
            return  # back in the pool already (the task rejoined on its own)
    except Exception:
        return
    rejoin()


def _secede() -> Callable[[], None] | None:
    distributed = sys.modules.get("distributed")
    if distributed is None:
        return None
    try:
        from distributed.threadpoolexecutor import thread_state as pool_thread
        from distributed.worker import thread_state as task_thread

        if getattr(task_thread, "key", None) is None or not getattr(pool_thread, "proceed", False):
            return None  # not a task's thread, or one that left the pool already
        # Dask starts the next task from a callback made here, in a copy of this context: it must
        # not inherit this call's reckon state (the flight it computes, output captures).
        context = contextvars.copy_context()
        context.run(_outside_reckon, distributed.secede)
    except Exception:  # another Dask: wait in the slot, as without this
        log.debug("could not leave the Dask worker's thread pool while waiting", exc_info=True)
        return None
    rejoin: Callable[[], None] = distributed.rejoin
    return rejoin


def _outside_reckon(call: Callable[[], object]) -> None:
    """Call ``call`` with every reckon context variable (all named ``reckon_*``, default None)
    set to None: run it in a copy of the caller's context."""
    for var in list(contextvars.copy_context()):
        if var.name.startswith("reckon_"):
            var.set(None)
    call()
