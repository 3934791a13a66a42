"""One background thread for memo's own small writes (the notes that explain later misses), so a
miss never waits for them. ``flush()`` waits; a forked child starts with an empty queue."""

from __future__ import annotations

import atexit
import collections
import os
import threading
from collections.abc import Callable
from typing import Any

from reckon.memo.log import logger

__all__ = ["call_soon", "flush"]

_ops: collections.deque[Callable[[], Any]] = collections.deque()
_wake = threading.Condition()
_thread: list[threading.Thread] = []
_submitted = [0]
_done = [0]


def call_soon(fn: Callable[[], Any]) -> None:
    """Run ``fn()`` on the background thread, after what was queued before it."""
    with _wake:
        _ops.append(fn)
        _submitted[0] += 1
        if not _thread or not _thread[0].is_alive():
            thread = threading.Thread(target=_run, name="reckon-memo-notes", daemon=True)
            _thread[:] = [thread]
            thread.start()
        _wake.notify_all()


def flush(timeout: float = 60.0) -> None:
    """Wait until everything queued so far has run."""
    with _wake:
        if _thread and _thread[0] is threading.current_thread():
            return
        target = _submitted[0]
        _wake.wait_for(lambda: _done[0] >= target or not _thread, timeout)


def _run() -> None:
    while True:
        with _wake:
            if not _wake.wait_for(lambda: bool(_ops), 10.0):
                if _thread and _thread[0] is threading.current_thread():
                    _thread.clear()  # idle: end; the next call_soon starts another
                _wake.notify_all()
                return
            fn = _ops.popleft()
        try:
            fn()
        except Exception:
            logger.warning("memo background task failed", exc_info=True)
        with _wake:
            _done[0] += 1
            _wake.notify_all()


def _after_fork_in_child() -> None:
    global _wake
    _wake = threading.Condition()
    _ops.clear()
    _thread.clear()
    _submitted[0] = _done[0] = 0


os.register_at_fork(after_in_child=_after_fork_in_child)
atexit.register(flush, 10.0)
