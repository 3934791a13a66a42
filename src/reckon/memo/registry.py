"""Every memoized function alive in this process, and what the process owes them at its ends.

The usage report, ``commit()`` and the exit hook act on all memoized functions at once, and a
forked child must not reuse its parent's locks or its record of what is cached in memory. A weak
set keeps them without keeping them alive: a function defined in a loop or a test goes away as
usual.

This module imports :mod:`reckon.memo.group` (and through it the stores) before it registers
its exit hook, so the hook runs before the stores' own exit flush (``atexit`` runs hooks
last-registered first); it also flushes what it wrote itself: the usage counters, kept in each
group's store.
"""

from __future__ import annotations

import atexit
import os
import sys
import weakref
from typing import TYPE_CHECKING, Any

from reckon.memo import log
from reckon.memo.group import flush_all
from reckon.memo.report import format_report

if TYPE_CHECKING:
    from reckon.memo.memoize import Memoized

__all__ = ["add", "all_memoized", "commit", "usage_report"]

_live: weakref.WeakSet[Memoized[Any, Any]] = weakref.WeakSet()
_logger = log.logger


def add(memoized: Memoized[Any, Any]) -> None:
    """Count a new memoized function in (until it is garbage)."""
    _live.add(memoized)


def all_memoized() -> list[Memoized[Any, Any]]:
    """Every memoized function alive in this process."""
    return list(_live)


def usage_report() -> str:
    """This process's usage report (every memoized function that was called)."""
    return format_report(m._stats() for m in _live if m._stats().calls)


def commit() -> None:
    """Make this process's cache writes durable now: stored values and usage counters.

    Values are written by background threads (a miss never waits for the disk)
    and flushed at exit, also after an uncaught exception. Call ``commit()`` before something
    that may end the process without exiting (a kill, ``os._exit``, a segfaulting extension) or
    before handing work to other processes that should find these results.
    """
    _persist_all()
    flush_all()


def _persist_all() -> None:
    for m in list(_live):
        try:
            m._persist_stats()
        except Exception:
            _logger.debug("could not persist stats of %s", m.name, exc_info=True)


def _at_exit() -> None:
    _persist_all()
    try:
        flush_all()
    except Exception:
        _logger.debug("could not flush the stores at exit", exc_info=True)
    if os.environ.get("RECKON_REPORT", "").strip() not in ("", "0"):
        sys.stderr.write(usage_report())
        sys.stderr.flush()


def _reset_after_fork() -> None:
    for m in list(_live):
        m._after_fork()


atexit.register(_at_exit)
os.register_at_fork(after_in_child=_reset_after_fork)
