"""The process-wide engine, for code that does not manage engines of its own.

It is created on first use, with the store ``$RECKON_STORE`` names (a URL, see
:func:`~reckon.core.stores.open_store`), else a :class:`~reckon.core.stores.LocalStore` at
``$RECKON_CACHE_DIR`` (else the per-user cache directory), and re-created in a forked child: a
child must not share the parent's locks, threads or in-flight table.
"""

from __future__ import annotations

import os
import threading

from reckon.core.engine import Engine

__all__ = ["default_engine", "set_default_engine"]

_lock = threading.Lock()
_engine: Engine | None = None
_pid = os.getpid()


def default_engine() -> Engine:
    """The engine shared by everything in this process that was not given one."""
    global _engine, _pid
    engine = _engine
    if engine is not None and _pid == os.getpid() and not engine.closed:
        return engine
    with _lock:
        if _engine is None or _pid != os.getpid() or _engine.closed:
            from reckon.core.stores import open_store

            _engine = Engine(store=open_store(), name="default")
            _pid = os.getpid()
        return _engine


def set_default_engine(engine: Engine | None) -> Engine | None:
    """Replace the process-wide engine (None: make a fresh one on next use); returns the old one."""
    global _engine, _pid
    with _lock:
        old, _engine, _pid = _engine, engine, os.getpid()
    return old


def _after_fork_in_child() -> None:
    global _engine, _lock
    _engine = None
    _lock = threading.Lock()


os.register_at_fork(after_in_child=_after_fork_in_child)
