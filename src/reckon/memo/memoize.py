"""``@memoize``: a function call becomes ``Engine.get(RequestId(code, arguments))``.

The request id is two 16-byte digests side by side: the function's fingerprint (its code, the
code it calls, the globals it reads; salted with its cache name) and the hash of its bound
arguments. Both are computed with care once and then reused: the fingerprint once per function
(re-checked only when a global or closure value it reads is rebound), the argument binding by a
precomputed table in the common positional case, and the id by concatenation, so a warm hit is a
few dictionary lookups.

What is stored is an :class:`~reckon.memo.entry.Entry`: the value plus what a hit needs to act like
the call (captured stdout, files to put back) and to account for itself (compute time = time a
hit saves). It is stored with metadata saying which function, arguments and code version it
belongs to (for ``clear()``, the CLI and eviction logs, on every machine that shares the store).

This module keeps what every call goes through (the id, the engine lookup, the hit, the entry a
miss stores) and the decorator. The rest sits beside it: :mod:`~reckon.memo.arguments` (arguments
to digest), :mod:`~reckon.memo.reads` (the globals and closure values whose rebinding means new
code), :mod:`~reckon.memo.miss` (running the body on a miss), :mod:`~reckon.memo.capture`
(stdout and logs kept for replay), :mod:`~reckon.memo.indexing` (what a stored
entry says it is, and clearing by function), :mod:`~reckon.memo.pickling` (sending a memoized
function to another process) and
:mod:`~reckon.memo.registry` (every memoized function of the process: report, ``commit()``,
exit and fork).
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import os
import sys
import threading
import time
import types
import warnings
from collections.abc import Callable, Iterable
from typing import Any, Generic, ParamSpec, TypeVar, overload

import xxhash

from reckon.core import CachingLevel, RequestId, Store
from reckon.core.levels import as_level
from reckon.errors import (
    ConfigurationError,
    ImpurityWarning,
    NotMemoizableError,
)
from reckon.memo import indexing, log, miss, pickling, registry, watch, why
from reckon.memo.arguments import PLAIN, Arguments
from reckon.memo.entries import write_stats
from reckon.memo.entry import Entry
from reckon.memo.fingerprint import fingerprint
from reckon.memo.group import (
    MemoizedGroup,
    Policy,
    get_group,
    group_for_store,
    store_path,
)
from reckon.memo.helpers import FileContents, restore_files, snapshot_files, to_seconds
from reckon.memo.impurity import find_impurities
from reckon.memo.reads import Reads, copy_function
from reckon.memo.registry import all_memoized as all_memoized
from reckon.memo.registry import commit as commit
from reckon.memo.registry import usage_report as usage_report
from reckon.memo.report import FunctionStats, human_duration

__all__ = ["BoundMemoized", "Memoized", "commit", "memoize"]

P = ParamSpec("P")
R = TypeVar("R")

_DEBUG = logging.DEBUG
_logger = log.logger
_NONE = CachingLevel.NONE
_MEMORY = CachingLevel.MEMORY
_FULL = CachingLevel.FULL
_KEY_SALT = b"reckon.memo.v1\x00"
_from_digest = RequestId.from_digest
_watched = watch.current.get
_unwatch = watch.current.set
_rewatch = watch.current.reset

#: Ids remembered per function before the memo of ids starts over.
_ID_CACHE = 4096


# ------------------------------------------------------------------------------------------
# helpers
# ------------------------------------------------------------------------------------------


def _has_files(value: object) -> bool:
    """Whether a result is or holds FileContents: its files are snapshotted with it, so a hit
    can write them back."""
    t = type(value)
    if t is FileContents:
        return True
    if t is tuple or t is list:
        return any(type(v) is FileContents for v in value)  # type: ignore[attr-defined]
    return False


# ------------------------------------------------------------------------------------------
# Memoized
# ------------------------------------------------------------------------------------------


class Memoized(Generic[P, R]):
    """A memoized function: call it like the function; a repeated call is answered from the cache.

    Also: ``would_hit(*a, **k)``, ``evict(*a, **k)``, ``clear()``, ``stats()``, ``group``.
    Build it with :func:`memoize`.
    """

    __wrapped__: Callable[..., Any]

    def __init__(
        self,
        func: Callable[P, R],
        *,
        group: MemoizedGroup,
        level: CachingLevel | None = None,
        name: str | None = None,
        ttl: float | None = None,
        version: str | int | None = None,
        ignore: Iterable[str] = (),
        key: Callable[..., Any] | None = None,
        replay_stdout: bool = False,
        assume_pure: bool = False,
        replay_logs: bool = False,
        verbose: bool | None = None,
    ) -> None:
        kind = "function"
        raw: Any = func
        if isinstance(raw, classmethod):
            kind, raw = "classmethod", raw.__func__
        elif isinstance(raw, staticmethod):
            kind, raw = "staticmethod", raw.__func__
        _check_memoizable(raw)
        fn: types.FunctionType = raw
        if version is not None:
            fn.__reckon_version__ = str(version)  # type: ignore[attr-defined]
        functools.update_wrapper(self, fn)
        self.__wrapped__ = fn
        self._kind = kind
        self._is_async = inspect.iscoroutinefunction(fn)
        if self._is_async:
            self._is_coroutine = asyncio.coroutines._is_coroutine  # type: ignore[attr-defined]
        self.name = name or f"{fn.__module__}.{fn.__qualname__}"
        self._level_override = level
        self._group = group
        self._ttl = ttl
        self._version = version
        self._key = key
        self._replay = replay_stdout
        self._replay_logs = replay_logs
        self._assume_pure = assume_pure
        self._lock = threading.RLock()
        self._arguments = Arguments(fn, ignore, key, kind == "classmethod", self.__qualname__)
        self._ready = False
        self._warned = False
        #: An ImpurityWarning was issued (static or run-time): the run-time watch stops.
        self._impure_warned = False
        self._fp: bytes = b""
        self._fpkey: bytes = b""
        self._fphex = ""
        self._reads = Reads()
        self._watching = False
        self._known: set[RequestId] = set()
        self._hits = 0
        self._misses = 0
        self._compute_s = 0.0
        self._saved_s = 0.0
        self._persisted = FunctionStats(self.name)
        #: Counters zeroed by reset_stats, still part of this process's total in the store.
        self._carried = FunctionStats(self.name)
        self._seed_fp: bytes | None = None
        #: Code versions (and argument classes) whose manifest this process wrote.
        self._why_saved: set[str] = set()
        self._verbose_option = verbose
        self._verbose = False
        self._ids: dict[bytes, RequestId] = {}
        self._ids_by_args: dict[tuple[Any, ...], RequestId] = {}
        self._plain_ok = self._key is None and not self._arguments.ignore and kind != "classmethod"
        registry.add(self)

    # -- configuration ----------------------------------------------------------------------

    @property
    def group(self) -> MemoizedGroup:
        """The group whose store and budget this function uses (assignable)."""
        return self._group

    @group.setter
    def group(self, group: MemoizedGroup | str) -> None:
        self._group = get_group(group) if isinstance(group, str) else group
        self._ready = False

    @property
    def level(self) -> CachingLevel:
        return self._level_override if self._level_override is not None else self._group.level

    @property
    def fingerprint(self) -> bytes:
        """The 16-byte key part naming this function's code (computed on first use)."""
        if not self._ready or self._reads.changed():
            self._prepare()
        return self._fpkey

    def _prepare(self) -> None:
        """Fingerprint the code, bind to the group's engine; again when a watched value moved."""
        with self._lock:
            fn: Any = self.__wrapped__
            first = not self._fp
            if first and self._seed_fp:
                fp = self._seed_fp
            else:
                fp = fingerprint(fn if first else copy_function(fn))
            if not first and fp == self._fp and self._ready:
                self._reads.snapshot()
                return
            self._reads = Reads(fn, owner=self)
            self._watching = bool(self._reads)
            self._fp = fp
            self._fpkey = xxhash.xxh3_128_digest(_KEY_SALT + self.name.encode() + b"\x00" + fp)
            self._fphex = self._fpkey.hex()
            self._ids = {}
            self._ids_by_args = {}
            backend = self._group.backend
            self._engine = backend.engine
            if self._engine.store is not None:
                watch.add_quiet_root(store_path(self._engine.store))
            watch.add_quiet_root(backend.local_dir)
            self._level = self.level
            self._verbose = _verbose(self._verbose_option, self._group)
            self._has_store = self._level is _FULL and self._engine.store is not None
            if self._has_store:
                notes = why.notes_dir(backend.local_dir)
                previous = why.swap_version(notes, self.name, self._fphex)
                if previous is not None and previous != self._fphex:
                    log.event(
                        "invalidate",
                        f"{self.name}: its code or a value it reads changed since last seen "
                        f"(fingerprint {previous[:12]} -> {self._fphex[:12]}); earlier entries "
                        f"no longer match",
                        logging.INFO,
                    )
            elif not first:
                log.event("invalidate", f"{self.name}: a value it reads was rebound", logging.INFO)
            if not self._warned and not self._assume_pure:
                self._warned = True
                impurities = find_impurities(fn)
                if impurities:
                    self._impure_warned = True
                    warnings.warn(
                        f"{self.name} may be impure: it {'; '.join(impurities)}. A cached "
                        f"result may not be what a new call would return. Pass the varying "
                        f"input as an argument (FileContents, TTL), or memoize(assume_pure=True) "
                        f"to silence this.",
                        ImpurityWarning,
                        stacklevel=4,
                    )
            self._ready = True

    # -- request ids ------------------------------------------------------------------------

    def _args_digest(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> bytes:
        return self._arguments.digest(args, kwargs, self.name, self.__qualname__)

    def _request_id(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> RequestId:
        """The id of a call: digests of code and arguments side by side.

        Ids are reused: per argument digest, and, for calls made of plain immutable scalars
        (int, str, bytes, bool, None: equal values of these types always hash equal), per
        argument tuple, which skips hashing altogether on a warm hit.
        """
        if not kwargs and self._plain_ok:
            types_ = tuple(map(type, args))
            if PLAIN.issuperset(types_):
                fast_key = (types_, args)
                rid = self._ids_by_args.get(fast_key)
                return rid if rid is not None else self._plain_id(fast_key, args)
        return self._id_for_digest(self._args_digest(args, kwargs))

    def _plain_id(self, fast_key: tuple[Any, ...], args: tuple[Any, ...]) -> RequestId:
        """The id of a call of plain scalars seen for the first time (remembered by value)."""
        rid = _from_digest(self._fpkey + self._args_digest(args, {}))
        ids = self._ids_by_args
        if len(ids) >= _ID_CACHE:
            ids.clear()
        ids[fast_key] = rid
        return rid

    def _id_for_digest(self, digest: bytes) -> RequestId:
        rid = self._ids.get(digest)
        if rid is None:
            rid = _from_digest(self._fpkey + digest)
            if len(self._ids) >= _ID_CACHE:
                self._ids.clear()
            self._ids[digest] = rid
        return rid

    # -- calls ------------------------------------------------------------------------------

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        if self._is_async:
            return self._acall_clean(args, kwargs)  # type: ignore[return-value]
        try:
            return self._call(args, kwargs)  # type: ignore[no-any-return,unused-ignore]
        except BaseException as exc:
            _from_user(exc, self.__wrapped__.__code__)
            raise

    async def _acall_clean(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        try:
            return await self._acall(args, kwargs)
        except BaseException as exc:
            _from_user(exc, self.__wrapped__.__code__)
            raise

    def _call(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        # The hot path: everything below is attribute reads, two dict lookups and Engine.get.
        if not self._ready or (self._watching and self._reads.changed()):
            self._prepare()
        # (Arguments.digest is called directly, not through _args_digest: one call less on every
        # hit whose arguments are hashed.)
        if not kwargs and self._plain_ok:
            types_ = tuple(map(type, args))
            if PLAIN.issuperset(types_):
                fast_key = (types_, args)
                rid = self._ids_by_args.get(fast_key)
                if rid is None:
                    rid = self._plain_id(fast_key, args)
            else:
                digest = self._arguments.digest(args, kwargs, self.name, self.__qualname__)
                rid = self._id_for_digest(digest)
        else:
            digest = self._arguments.digest(args, kwargs, self.name, self.__qualname__)
            rid = self._id_for_digest(digest)
        ran: list[int] = []

        def compute() -> Entry:
            ran.append(1)
            return self._compute(args, kwargs, rid)

        if _watched() is None:
            entry = self._engine.get(
                rid, self._level, compute, title=log.task_title(self.name, args, kwargs)
            )
        else:  # called from a watched body: the cache's own I/O is not that body's side effect
            wtoken = _unwatch(None)
            try:
                entry = self._engine.get(
                    rid, self._level, compute, title=log.task_title(self.name, args, kwargs)
                )
            finally:
                _rewatch(wtoken)
        if ran:
            return entry.value
        if (
            type(entry) is Entry
            and self._ttl is None
            and not entry.stdout
            and not entry.files
            and entry.logs is None
        ):
            self._hits += 1
            self._saved_s += entry.compute_seconds
            if self._verbose:
                log.say(
                    "hit ",
                    self._call_text(args, kwargs),
                    f"saved {human_duration(entry.compute_seconds)}",
                )
            if _logger.isEnabledFor(_DEBUG):
                saved = human_duration(entry.compute_seconds)
                log.event("hit", f"{self._call_text(args, kwargs)} (saved {saved})")
            return entry.value
        return self._hit(entry, rid, args, kwargs)

    async def _acall(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if not self._ready or self._reads.changed():
            self._prepare()
        rid = self._request_id(args, kwargs)
        ran: list[int] = []

        async def compute() -> Entry:
            ran.append(1)
            return await self._acompute(args, kwargs, rid)

        wtoken = _unwatch(None) if _watched() is not None else None
        try:
            entry: Any = await self._engine.resolve(
                rid, self._level, compute, title=log.task_title(self.name, args, kwargs)
            )
        finally:
            if wtoken is not None:
                _rewatch(wtoken)
        if ran:
            return entry.value
        if type(entry) is Entry and self._expired(entry):
            self._expire(rid, args, kwargs)
            return await self._acall(args, kwargs)
        return self._hit(entry, rid, args, kwargs)

    def _hit(
        self, entry: Any, rid: RequestId, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        if type(entry) is not Entry:
            log.event(
                "corrupt",
                f"{self._call_text(args, kwargs)}: the cache held a {type(entry).__name__}, "
                f"not a memo entry; recomputing",
                logging.WARNING,
            )
            self._engine.evict(rid)
            return self._call(args, kwargs)
        if self._ttl is not None and self._expired(entry):
            self._expire(rid, args, kwargs)
            return self._call(args, kwargs)
        self._hits += 1
        self._saved_s += entry.compute_seconds
        if entry.stdout:
            sys.stdout.write(entry.stdout)
        if entry.logs:
            for name, levelno, message in entry.logs:
                logging.getLogger(name).log(levelno, "%s", message)
        if entry.files:
            restore_files(entry.value)
        if self._verbose:
            log.say(
                "hit ",
                self._call_text(args, kwargs),
                f"saved {human_duration(entry.compute_seconds)}",
            )
        if _logger.isEnabledFor(_DEBUG):
            log.event(
                "hit",
                f"{self._call_text(args, kwargs)} (saved {human_duration(entry.compute_seconds)})",
            )
        return entry.value

    def _expired(self, entry: Entry) -> bool:
        return self._ttl is not None and time.time() - entry.created > self._ttl

    def _expire(self, rid: RequestId, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        log.event("expire", f"{self._call_text(args, kwargs)} is older than ttl={self._ttl:g} s")
        self._engine.evict(rid)

    def _after_compute(
        self,
        value: Any,
        seconds: float,
        stdout: list[str] | None,
        rid: RequestId,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        logs: list[tuple[str, int, str]] | None = None,
    ) -> Entry:
        files = _has_files(value)
        if files:
            snapshot_files(value)
        entry = Entry(
            value,
            "".join(stdout) if stdout else None,
            time.time(),
            seconds,
            files,
            tuple(logs) if logs else None,
        )
        entry.seen = True
        self._compute_s += seconds
        self._known.add(rid)
        if self._has_store:
            indexing.record(self, entry, rid, args, kwargs)
        return entry

    def _compute(self, args: tuple[Any, ...], kwargs: dict[str, Any], rid: RequestId) -> Entry:
        value, seconds, stdout, logs = miss.run(self, args, kwargs, rid)
        return self._after_compute(value, seconds, stdout, rid, args, kwargs, logs)

    async def _acompute(
        self, args: tuple[Any, ...], kwargs: dict[str, Any], rid: RequestId
    ) -> Entry:
        value, seconds, stdout, logs = await miss.arun(self, args, kwargs, rid)
        return self._after_compute(value, seconds, stdout, rid, args, kwargs, logs)

    def _say_hit(self, entry: Entry, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        saved = human_duration(entry.compute_seconds)
        log.say("hit ", self._call_text(args, kwargs), f"saved {saved}")

    def _call_text(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
        return log.format_call(self.name, args, kwargs)

    # -- management -------------------------------------------------------------------------

    def _ensure(self) -> None:
        if not self._ready or self._reads.changed():
            self._prepare()

    def explain(self, *args: Any, **kwargs: Any) -> why.Why:
        """Why ``f(*args, **kwargs)`` would recompute now: the code, value or argument that
        changed since the nearest stored call of this function (or that it would hit).

        ``str()`` of the answer is the line logged for such a miss; ``.changes`` the data.
        """
        return why.explain(self, args, kwargs)

    def would_hit(self, *args: Any, **kwargs: Any) -> bool:
        """Whether ``f(*args, **kwargs)`` would be answered from the cache now."""
        self._ensure()
        if self._level is _NONE:
            return False
        rid = self._request_id(args, kwargs)
        if not self._engine.contains(rid, self._level):
            return False
        if self._ttl is not None:
            # An expired entry still in memory would be recomputed: not a hit. (One only in the
            # store is judged when loaded.)
            entry = self._engine.memory.lookup(rid.memory_key)
            if type(entry) is Entry and self._expired(entry):
                return False
        return True

    def evict(self, *args: Any, **kwargs: Any) -> None:
        """Forget the cached result of ``f(*args, **kwargs)`` (memory and store)."""
        self._ensure()
        rid = self._request_id(args, kwargs)
        self._engine.evict(rid)
        self._known.discard(rid)

    def clear(self, *, stale: bool = False) -> int:
        """Forget every cached result of this function (every code version); returns how many
        stored entries were removed.

        That is every entry of this function in the store, whichever machine wrote it (a shared
        store such as Redis or S3): the store's metadata says which function each entry is of.

        ``stale=True`` removes only the entries of earlier code versions (they hit again only if
        the code is changed back), one ``evict`` log line each.
        """
        self._ensure()
        if stale:
            return indexing.clear_stale(self) if self._has_store else 0
        removed = indexing.clear_all(self) if self._has_store else 0  # before: it counts them
        for rid in list(self._known):
            self._engine.evict(rid)
        self._known.clear()
        log.event("evict", f"{self.name}: cleared {removed} stored entries", logging.INFO)
        return removed

    def stats(self) -> dict[str, Any]:
        """This process's counters: hits, misses, calls, hit_ratio, compute_seconds (time spent
        computing) and saved_seconds (compute time of the entries hits returned)."""
        return self._stats().as_dict()

    def _stats(self) -> FunctionStats:
        return FunctionStats(self.name, self._hits, self._misses, self._compute_s, self._saved_s)

    def reset_stats(self) -> None:
        """Zero this process's counters (persisted totals are kept)."""
        self._persist_stats()
        self._carried.add(self._stats())
        self._hits = self._misses = 0
        self._compute_s = self._saved_s = 0.0
        self._persisted = FunctionStats(self.name)

    def _persist_stats(self) -> None:
        now = self._stats()
        delta = FunctionStats(
            self.name,
            now.hits - self._persisted.hits,
            now.misses - self._persisted.misses,
            now.compute_seconds - self._persisted.compute_seconds,
            now.saved_seconds - self._persisted.saved_seconds,
        )
        if delta.calls == 0 or not self._ready or not self._has_store:
            return
        store = self._engine.store
        if store is None:
            return
        total = FunctionStats(self.name)
        total.add(self._carried)
        total.add(now)
        write_stats(store, total)  # this process's running total, under its own key
        self._persisted = now

    def _after_fork(self) -> None:
        self._lock = threading.RLock()
        self._ready = False
        self._known = set()

    def __reckon_hash__(self) -> object:
        return ("reckon.Memoized", self.name, self.fingerprint)

    def __repr__(self) -> str:
        return f"<memoized {self.name} level={self.level.name} group={self._group.name!r}>"

    # -- descriptor protocol: methods -------------------------------------------------------

    def __get__(self, instance: object, owner: type | None = None) -> Any:
        if self._kind == "staticmethod":
            return self
        if self._kind == "classmethod":
            return BoundMemoized(self, owner if owner is not None else type(instance))
        if instance is None:
            return self
        if isinstance(instance, type) and self._kind == "function":
            # ``@classmethod`` applied over ``@memoize``: classmethod binds through us with the
            # class as the instance. Key the class by its data, as for memoize(classmethod).
            self._kind = "classmethod"
            self._arguments.classmethod = True
            self._plain_ok = False
        return BoundMemoized(self, instance)

    def __set_name__(self, owner: type, name: str) -> None:
        self.__qualname__ = f"{owner.__qualname__}.{name}"

    # -- pickling: by reference where possible, configuration only ----------------------------

    def __reduce__(self) -> tuple[Any, ...]:
        if pickling.by_reference(self):
            return (_load_memoized, (self.__module__, self.__qualname__, pickling.config_of(self)))
        return (_rebuild_memoized, pickling.by_value(self))


class BoundMemoized:
    """A memoized method bound to its instance (or class): calls and management include it."""

    __slots__ = ("__func__", "__self__")

    def __init__(self, memoized: Memoized[Any, Any], obj: object) -> None:
        self.__func__ = memoized
        self.__self__ = obj

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        m = self.__func__
        if m._is_async:
            return m._acall_clean((self.__self__, *args), kwargs)
        try:
            return m._call((self.__self__, *args), kwargs)
        except BaseException as exc:
            _from_user(exc, m.__wrapped__.__code__)
            raise

    def would_hit(self, *args: Any, **kwargs: Any) -> bool:
        return self.__func__.would_hit(self.__self__, *args, **kwargs)

    def explain(self, *args: Any, **kwargs: Any) -> why.Why:
        return self.__func__.explain(self.__self__, *args, **kwargs)

    def evict(self, *args: Any, **kwargs: Any) -> None:
        self.__func__.evict(self.__self__, *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.__func__, name)

    def __repr__(self) -> str:
        return f"<bound {self.__func__!r} of {log.short_repr(self.__self__)}>"


def _verbose(option: bool | None, group: MemoizedGroup) -> bool:
    """``verbose=`` of the function, else of its group, else ``$RECKON_VERBOSE``."""
    if option is not None:
        return option
    if getattr(group, "verbose", None) is not None:
        return bool(group.verbose)
    return os.environ.get("RECKON_VERBOSE", "").strip().lower() in ("1", "true", "yes", "on")


def _from_user(exc: BaseException, code: types.CodeType) -> None:
    """Start the traceback of ``exc`` at the user's function, if the function raised it.

    Between the caller and the function sit the decorator, the engine and the miss path; none of
    them is where the error is, so the traceback drops them, and the bare ``raise`` that follows
    adds no frame of its own: the caller sees its own line, then the user's function on down.
    An exception raised by reckon itself (an argument that cannot be hashed) keeps its whole
    traceback.
    """
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code is code:
            exc.__traceback__ = tb
            return
        tb = tb.tb_next


def _check_memoizable(func: object) -> None:
    if isinstance(func, Memoized | BoundMemoized):
        raise NotMemoizableError(f"{func!r} is already memoized; decorate the function once")
    if inspect.isgeneratorfunction(func) or inspect.isasyncgenfunction(func):
        what = "an async generator" if inspect.isasyncgenfunction(func) else "a generator"
        raise NotMemoizableError(
            f"{getattr(func, '__qualname__', func)!r} is {what} function: its results are "
            f"produced lazily and can only be consumed once, so they cannot be cached. Memoize a "
            f"function that returns a list (e.g. `return list(gen(...))`) instead."
        )
    if not isinstance(func, types.FunctionType):
        raise NotMemoizableError(
            f"memoize needs a Python function (def or async def), got {type(func).__name__} "
            f"{func!r:.60}; wrap it: `@memoize\\ndef f(...): return obj(...)`"
        )
    if func.__name__ == "<lambda>":
        raise NotMemoizableError(
            f"cannot memoize a lambda (defined in {func.__code__.co_filename}:"
            f"{func.__code__.co_firstlineno}): it has no name to keep its cache under across "
            f"runs. Define it with `def name(...):` and decorate that."
        )


def _load_memoized(module: str, qualname: str, config: dict[str, Any]) -> Any:
    """Unpickle a memoized function sent by reference: the receiver's own object, configured like
    the sender's. (Pickles name this function here: it must stay in this module.)"""
    obj = pickling.lookup(module, qualname)
    if isinstance(obj, Memoized):
        pickling.apply_config(obj, config)
    return obj


#: Memoized functions rebuilt from a copy sent by value, by their configuration and fingerprint:
#: a Dask worker that gets the same function with each of 400 tasks builds (and prepares) it once.
_REBUILT: dict[tuple[Any, ...], Memoized[Any, Any]] = {}
_REBUILT_MOST = 256
_rebuilt_lock = threading.Lock()


def _rebuild_memoized(func: Any, state: dict[str, Any]) -> Memoized[Any, Any]:
    """Unpickle a memoized function sent by value: this process's copy of it when it has one (the
    same code, as its fingerprint says, and the same configuration), else a new one. (Pickles
    name this function here: it must stay in this module.)"""
    fp: bytes = state.get("fp", b"")
    same: tuple[Any, ...] | None = None
    if fp and state["key"] is None:  # a key function arrives as a new object each time
        same = (fp, *(state.get(k) for k in sorted(state) if k != "fp"))
        try:
            with _rebuilt_lock:
                known = _REBUILT.get(same)
        except TypeError:  # a setting that cannot be a key: rebuild, as before
            same = known = None
        if known is not None:
            return known
    level = state["level"]
    m: Memoized[Any, Any] = Memoized(
        func,
        group=state["group"],
        level=None if level is None else CachingLevel(level),
        name=state["name"],
        ttl=state["ttl"],
        ignore=state["ignore"],
        key=state["key"],
        replay_stdout=state["replay_stdout"],
        replay_logs=state.get("replay_logs", False),
        assume_pure=state["assume_pure"],
        verbose=state.get("verbose"),
    )
    if fp:
        # The sender fingerprinted the original; the function rebuilt by value keys the same.
        m._seed_fp = fp
    if same is not None:
        with _rebuilt_lock:
            if len(_REBUILT) >= _REBUILT_MOST:
                _REBUILT.clear()
            m = _REBUILT.setdefault(same, m)
    return m


# ------------------------------------------------------------------------------------------
# the decorator
# ------------------------------------------------------------------------------------------


@overload
def memoize(func: Callable[P, R], /) -> Memoized[P, R]: ...


@overload
def memoize(
    func: None = None,
    /,
    *,
    level: CachingLevel | None = ...,
    group: MemoizedGroup | str | None = ...,
    name: str | None = ...,
    store: str | os.PathLike[str] | Store | None = ...,
    size: int | str | None = ...,
    policy: Policy | None = ...,
    ttl: float | Any | None = ...,
    version: str | int | None = ...,
    ignore: Iterable[str] = ...,
    key: Callable[..., Any] | None = ...,
    replay_stdout: bool = ...,
    assume_pure: bool = ...,
    replay_logs: bool = ...,
    verbose: bool | None = ...,
) -> Callable[[Callable[P, R]], Memoized[P, R]]: ...


def memoize(
    func: Callable[..., Any] | None = None,
    /,
    *,
    level: CachingLevel | None = None,
    group: MemoizedGroup | str | None = None,
    name: str | None = None,
    store: str | os.PathLike[str] | Store | None = None,
    size: int | str | None = None,
    policy: Policy | None = None,
    ttl: float | Any | None = None,
    version: str | int | None = None,
    ignore: Iterable[str] = (),
    key: Callable[..., Any] | None = None,
    replay_stdout: bool = False,
    assume_pure: bool = False,
    replay_logs: bool = False,
    verbose: bool | None = None,
) -> Any:
    """Cache a function's results by its code and arguments, in memory and on disk.

    ``@memoize`` or ``@memoize(...)``. Options: ``level`` (CachingLevel: NONE, MEMORY, FULL),
    ``group`` (a MemoizedGroup or a group name) or ``store`` (a directory or a Store) with
    ``size`` (byte budget, ``"10 GiB"``) and ``policy`` (``"gds"``: evict what was cheapest to
    compute per byte; ``"lru"``), ``name`` (the cache name; default module.qualname), ``ttl``
    (seconds or timedelta after which an entry is recomputed), ``version`` (an explicit code
    version: the fingerprint stops there), ``ignore`` (parameter names left out of the key),
    ``key`` (a function of the arguments whose result is hashed instead), ``replay_stdout``
    (print on a hit what the computing call printed), ``replay_logs`` (log again on a hit
    the records the computing call logged), ``assume_pure`` (no impurity warning), ``verbose``
    (one line on stderr per call: hit or miss, the call, time saved or taken, why it
    recomputed; default: the group's ``verbose``, else ``$RECKON_VERBOSE``).
    """
    if level is not None:
        level = as_level(level)  # the core's check: InvalidCachingLevelError naming the value
    if group is not None and (store is not None or size is not None or policy is not None):
        raise ConfigurationError(
            "pass either group= or store=/size=/policy= (the group carries its own store)"
        )
    if isinstance(group, str):
        grp = get_group(group)
    elif group is not None:
        if not isinstance(group, MemoizedGroup):
            raise ConfigurationError(f"group must be a MemoizedGroup or a name, got {group!r}")
        grp = group
    elif store is not None or size is not None or policy is not None:
        grp = group_for_store(store, size, policy)
    else:
        grp = get_group("default")
    ttl_s = None if ttl is None else to_seconds(ttl, "ttl")
    if key is not None and not callable(key):
        raise ConfigurationError(f"key must be a function of the arguments, got {key!r}")

    def decorate(f: Callable[..., Any]) -> Memoized[Any, Any]:
        return Memoized(
            f,
            group=grp,
            level=level,
            name=name,
            ttl=ttl_s,
            version=version,
            ignore=ignore,
            key=key,
            replay_stdout=replay_stdout,
            assume_pure=assume_pure,
            replay_logs=replay_logs,
            verbose=verbose,
        )

    if func is not None:
        return decorate(func)
    return decorate
