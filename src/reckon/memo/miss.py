"""The miss path: running a memoized body so that its result can stand in for later calls.

A hit returns the value and does nothing else, so while the body runs (never on a hit) this
module collects what a hit must repeat (printed text and log records, when asked to replay them),
times the body (its compute time is what each hit saves), and watches for what a hit would not
repeat (side effects, arguments changed in place, globals rebound, random state advanced): one
:class:`~reckon.errors.ImpurityWarning` per function says so. What to store is then built by
:class:`~reckon.memo.memoize.Memoized` (the entry and its index row).

Plain functions of the memoized function: they run once per miss, never on the hot hit path.
"""

from __future__ import annotations

import logging
import os
import time
import warnings
from typing import TYPE_CHECKING, Any

from reckon.core import RequestId
from reckon.errors import ImpurityWarning
from reckon.memo import log, watch, why
from reckon.memo.arguments import PLAIN
from reckon.memo.capture import LogRecords, captured
from reckon.memo.helpers import TTL, FileContents
from reckon.memo.report import human_duration

if TYPE_CHECKING:
    from reckon.memo.memoize import Memoized

__all__ = ["Run", "arun", "run"]

#: What running the body gave: value, seconds it took, text printed and records logged (when
#: captured).
Run = tuple[Any, float, list[str] | None, LogRecords | None]

_DEBUG = logging.DEBUG
_INFO = logging.INFO
_logger = log.logger
_perf = time.perf_counter


def run(
    m: Memoized[Any, Any], args: tuple[Any, ...], kwargs: dict[str, Any], rid: RequestId
) -> Run:
    """Run the body of ``m`` for a miss on ``rid``: counted, logged, captured, timed, watched."""
    reason = _before(m, rid, args, kwargs)
    buf: list[str] | None = None
    logs: LogRecords | None = None
    with _Watching(m) as watching:
        if m._replay or m._replay_logs:
            with captured(m._replay, m._replay_logs) as (buf, logs):
                value, seconds = _run_body(m, args, kwargs)
        else:
            value, seconds = _run_body(m, args, kwargs)
    watching.report(value, rid, args, kwargs)
    _after(m, rid, args, kwargs, seconds, reason)
    return value, seconds, buf, logs


async def arun(
    m: Memoized[Any, Any], args: tuple[Any, ...], kwargs: dict[str, Any], rid: RequestId
) -> Run:
    """:func:`run` for an ``async def`` body (always under :func:`captured`: it is cheap)."""
    reason = _before(m, rid, args, kwargs)
    with _Watching(m) as watching, captured(m._replay, m._replay_logs) as (buf, logs):
        t0 = _perf()
        value = await m.__wrapped__(*args, **kwargs)
        seconds = _perf() - t0
    watching.report(value, rid, args, kwargs)
    _after(m, rid, args, kwargs, seconds, reason)
    return value, seconds, buf, logs


class _Watching:
    """The watch over one run of a body (none for a function declared pure, or one already
    warned about): open for the run and only the run, then asked what it saw. A body that
    raises reports nothing: there is no result for a hit to stand in for."""

    __slots__ = ("m", "random_before", "seen", "token")

    def __init__(self, m: Memoized[Any, Any]) -> None:
        self.m = m
        self.seen: watch.Watch | None = None

    def __enter__(self) -> _Watching:
        m = self.m
        if not m._assume_pure and not m._impure_warned:
            self.seen, self.token = watch.start()
            self.random_before = watch.random_state()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.seen is not None:
            watch.stop(self.token)

    def report(
        self, value: object, rid: RequestId, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> None:
        if self.seen is not None:
            _report_side_effects(self.m, self.seen, self.random_before, value, rid, args, kwargs)


def _run_body(
    m: Memoized[Any, Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[Any, float]:
    t0 = _perf()
    value = m.__wrapped__(*args, **kwargs)
    return value, _perf() - t0


def _before(
    m: Memoized[Any, Any], rid: RequestId, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> str:
    """Count and log the miss (one line, with why when a stored call of the same function says
    so). Returns the why. (A stored value that was lost or damaged is the store's to report: it
    logs what it drops.)"""
    m._misses += 1
    reason = ""
    if m._has_store and (m._verbose or _logger.isEnabledFor(_INFO)):
        try:
            found = why.changes(m, args, kwargs, flush=False)
        except Exception:  # explaining must never break the call
            _logger.debug("could not explain a miss of %s", m.name, exc_info=True)
            found = []
        if found and found[0].kind != "new":
            reason = "; ".join(str(c) for c in found[:3])
            explained = why.Why(m.name, m._call_text(args, kwargs), False, tuple(found))
            log.event("miss", str(explained), _INFO)  # the words of f.explain(...)
    if not reason and _logger.isEnabledFor(_DEBUG):
        log.event("miss", m._call_text(args, kwargs))
    return reason


def _after(
    m: Memoized[Any, Any],
    rid: RequestId,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    seconds: float,
    reason: str,
) -> None:
    """A body that returned: say so when verbose, and leave the note that explains later
    misses."""
    if m._verbose:
        because = f"; {reason}" if reason else ""
        log.say("miss", m._call_text(args, kwargs), f"took {human_duration(seconds)}{because}")
    if m._has_store:
        why.record(m, rid, args, kwargs)


def _declared_paths(args: tuple[Any, ...], kwargs: dict[str, Any], value: object) -> list[str]:
    """Paths of the FileContents a call takes or returns: its declared file I/O."""
    out: list[str] = []
    for item in (*args, *kwargs.values(), value):
        if type(item) is FileContents:
            out.append(os.fspath(item))
        elif type(item) is tuple or type(item) is list:
            out.extend(os.fspath(v) for v in item if type(v) is FileContents)
    return out


def _report_side_effects(
    m: Memoized[Any, Any],
    seen: watch.Watch,
    random_before: tuple[object, ...],
    value: object,
    rid: RequestId,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> None:
    """One ImpurityWarning if the body did something a hit will not do again."""
    found = seen.side_effects(_declared_paths(args, kwargs, value))
    values = (*args, *kwargs.values())
    if (
        m._key is None
        and not PLAIN.issuperset(map(type, values))
        and not any(type(v) is TTL for v in values)  # a TTL's key moves with the clock
    ):
        try:
            again = m._args_digest(args, kwargs)
        except Exception:  # an argument that broke while running: nothing to compare
            again = b""
        if again and again != bytes.fromhex(rid.disk_key)[16:]:
            found.append("changes its arguments in place")
    if m._watching and m._reads.changed():
        moved = m._reads.moved_globals()
        what = f"global(s) {', '.join(moved)}" if moved else "closure variable(s)"
        found.append(f"rebinds the {what} it reads")
    if watch.random_state() != random_before:
        found.append("draws from the global random generator (random or numpy.random)")
    if not found:
        return
    m._impure_warned = True
    text = "; ".join(found[:6]) + ("; ..." if len(found) > 6 else "")
    log.event("impure", f"{m.name} while computing: {text}", logging.INFO)
    warnings.warn(
        f"{m.name} had side effects while computing: it {text}. A hit returns the cached "
        f"result without doing them again. Pass what it reads as arguments (FileContents for "
        f"files), or memoize(assume_pure=True) if the side effects do not matter.",
        ImpurityWarning,
        # 4: the caller of run/arun, Memoized in reckon.memo.memoize (the module warning filters
        # name), rather than this helper module (report, then run/arun, sit between).
        stacklevel=4,
    )
