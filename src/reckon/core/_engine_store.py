"""The engine's dealings with its store: reads (with or without a flight), leases, writes.

Store failures never fail a request: they are logged (at most once per operation every 10
seconds) and counted, and become misses; an entry that cannot be decoded is dropped. The
fresh process's hit path, :meth:`StoreSide._load_direct`, lives here too.
"""

from __future__ import annotations

import contextlib
import logging
import time
import warnings
from collections.abc import Callable
from typing import Any

from reckon.core._engine_flights import FlightSide
from reckon.core._flight import CURRENT, Flight
from reckon.core.codec import Codec
from reckon.core.ids import RequestId
from reckon.core.levels import CachingLevel
from reckon.core.memory import MISSING
from reckon.core.stores.base import Store, StoreData
from reckon.core.stores.metadata import put_meta
from reckon.core.tasks import Outcome, TaskState, new_task_id
from reckon.errors import CodecError, CodecWarning, EngineClosedError

__all__ = ["GuardedLease", "StoreSide"]

log = logging.getLogger("reckon.core")

_FULL = CachingLevel.FULL
_STORE_HIT, _COMPUTED = Outcome.STORE_HIT, Outcome.COMPUTED
_PENDING, _LOADING, _DONE = TaskState.PENDING, TaskState.LOADING, TaskState.DONE
_now = time.time


class GuardedLease:
    """A store lease whose failures degrade to "compute anyway" instead of failing the request."""

    __slots__ = ("_cm", "_engine", "_entered")

    def __init__(self, engine: StoreSide, cm: Any) -> None:
        self._engine = engine
        self._cm = cm
        self._entered = False

    def acquire(self) -> bool:
        """True: compute (the store's lease said so, or there is no working lease); False:
        another holder stored the value."""
        if self._cm is None:
            return True
        try:
            mine = bool(self._cm.__enter__())
        except Exception as exc:
            self._engine._store_failed("lease", exc)
            return True
        self._entered = True
        return mine

    @property
    def looked(self) -> bool:
        """Whether the store looked for the value when it took the lease: a store's lease
        yields True only when the value was absent then (every shipped store checks, in the same
        step as taking it where it can), so a look of our own would only repeat it."""
        return self._entered

    def release(self) -> None:
        if not self._entered:
            return
        self._entered = False
        try:
            self._cm.__exit__(None, None, None)
        except Exception as exc:
            self._engine._store_failed("lease release", exc)


class StoreSide(FlightSide):
    """The store half of :class:`~reckon.core.engine.Engine` (a base class of it: the methods
    below run on the engine itself, so the hit path pays no extra hop)."""

    # Set by Engine.__init__ (declared here for the type checker; the flight table's are
    # FlightSide's).
    store: Store | None
    codec: Codec
    _store_log: dict[str, tuple[float, int]]
    _count_store_hit: Callable[[], int]
    _finished: Callable[..., None]
    _log_load: Callable[[Any], None]
    _sized_codec: Codec | None
    _decode_sized: Callable[[Any], tuple[Any, int]]
    _early_store: Any
    _early_get: Callable[[str], Any] | None

    def _complete(
        self,
        flight: Flight,
        value: Any,
        outcome: Outcome,
        cost: float = 0.0,
        size: int | None = None,
    ) -> None:
        """Finish ``flight`` with ``value`` for its waiters, then (a value computed at FULL)
        write it to the store: the waiters never wait for the write."""
        if size is None and flight.level:
            try:
                size = self.codec.estimate_size(value)
            except Exception:
                size = 0
        delivered = self._finish(flight, value=value, outcome=outcome, size=size)
        if delivered and outcome is _COMPUTED and flight.level is _FULL:
            self._write(flight, value, cost)

    def _lease(self, flight: Flight) -> GuardedLease:
        store = self.store
        lease = getattr(store, "lease", None)
        if lease is None:
            return GuardedLease(self, None)
        try:
            cm = lease(flight.id.disk_key)
        except Exception as exc:
            self._store_failed("lease", exc)
            cm = None
        return GuardedLease(self, cm)

    def _early(self) -> Callable[[str], Any] | None:
        """The read of the look before the lease (None: no look): the store's ``early_get``
        when it has one (it chooses how to look: see ``Store``); else its ``get``; or, when
        the store's lease looks for the value itself in the same step as taking it
        (``lease_looks``), only its ``near_get`` (what this machine has), when it has one. Far
        misses before the lease would only repeat the lease's own look, once per copy of a key
        that many processes want at once, where only the one that takes the lease needs it.
        Looked up again only when :attr:`store` was replaced."""
        store = self.store
        if store is self._early_store:
            return self._early_get
        get: Callable[[str], Any] | None = None
        if store is not None and getattr(store, "lease", None) is not None:
            get = getattr(store, "early_get", None)
        if store is not None and get is None:
            looks = getattr(store, "lease", None) is not None and getattr(
                store, "lease_looks", False
            )
            get = getattr(store, "near_get", None) if looks else store.get
        self._early_store = store
        self._early_get = get
        return get

    def _load(self, flight: Flight, early: bool = False) -> Any:
        """Try the store (``early``: the look before the lease, see :meth:`_early`); on a hit
        deliver the value (outcome STORE_HIT). MISSING otherwise."""
        store = self.store
        assert store is not None
        get: Callable[[str], Any] = store.get
        if early:
            first = self._early_get if store is self._early_store else self._early()
            if first is None:
                return MISSING
            get = first
        return self._decode_hit(flight, self._read_store(flight.id.disk_key, get))

    def _read_store(self, key: str, get: Callable[[str], Any]) -> Any:
        """``get(key)``: the stored bytes, or None (a miss, or a failure, counted and logged)."""
        try:
            return get(key)
        except Exception as exc:
            self._store_failed("get", exc)
            return None

    def _decode_hit(self, flight: Flight, data: Any) -> Any:
        """Decode what the store returned for ``flight`` and finish it (outcome STORE_HIT);
        MISSING when there was nothing, or nothing decodable."""
        if data is None:
            return MISSING
        key = flight.id.disk_key
        self.introspector.transition(flight.record, _LOADING)
        try:
            value, size = self._decoder()(data)
        except Exception as exc:
            self._undecodable(flight.record.title, key, exc)
            return MISSING
        self._complete(flight, value, _STORE_HIT, size=size)
        return value

    def _decoder(self) -> Callable[[Any], tuple[Any, int]]:
        """The codec's ``decode_sized`` (value and memory size in one call), else decode followed
        by the estimate. Looked up again only when :attr:`codec` was replaced."""
        codec = self.codec
        if codec is self._sized_codec:
            return self._decode_sized
        sized = getattr(codec, "decode_sized", None)
        if sized is None:

            def sized(data: Any) -> tuple[Any, int]:
                value = codec.decode(data)
                try:
                    return value, codec.estimate_size(value)
                except Exception:
                    return value, 0

        self._sized_codec = codec
        self._decode_sized = sized
        return sized

    def _undecodable(self, title: str, key: str, exc: Exception) -> None:
        log.warning(
            "reckon: dropping the stored value of %s (%s): it cannot be decoded (%s)",
            title,
            key,
            exc,
        )
        self.introspector.count("store_errors")
        store = self.store
        if store is not None:
            with contextlib.suppress(Exception):
                store.delete(key)

    def _load_direct(self, id: RequestId, title: str | None) -> Any:
        """A FULL request nobody is computing: read the store without a flight (no waiters to
        share with, so none of a flight's bookkeeping), with the look before the lease (see
        :meth:`_early`: no far read where the store's lease makes it). A hit is recorded as a
        finished store load, with the same counters and events as one made by a flight; MISSING
        on a miss, a store failure or an undecodable entry (the caller then computes, after the
        lease).

        This is the fresh process's hit path, so it is kept flat: the value is sized with its
        decode (the codec's ``decode_sized``: the bytes just read, no walk of the value), put in
        memory under one lock, and recorded with one call."""
        if self._closed:
            raise EngineClosedError(
                f"engine {self.name!r} is closed; create a new Engine to make requests"
            )
        get = self._early_get if self.store is self._early_store else self._early()
        if get is None:  # the store's lease looks: so does the request, through it
            return MISSING
        disk_key = id.disk_key
        started = _now()
        try:
            data = get(disk_key)
        except Exception as exc:
            self._store_failed("get", exc)
            return MISSING
        if data is None:
            return MISSING
        loaded = _now()
        decode = self._decode_sized if self.codec is self._sized_codec else self._decoder()
        try:
            value, size = decode(data)
        except Exception as exc:
            self._undecodable(title if title is not None else id.short(), disk_key, exc)
            return MISSING
        # When a flight filled memory meanwhile (between the caller's look at memory and its
        # look at the flights), everyone gets the one object that flight made.
        key = id.memory_key
        value = self.memory.add(key, value, size)
        if self._closed:  # closed meanwhile: close() empties memory, and so must we
            self.memory.discard(key)
        self._count_request()
        self._count_store_hit()
        introspector = self.introspector
        if introspector._quiet:  # capture on, nobody observing: a tuple, made a record when read
            parent = CURRENT.get()
            self._log_load(
                (
                    new_task_id(),
                    id,
                    title,
                    self.name,
                    None if parent is None else parent.task_id,
                    started,
                    loaded,
                    _now(),
                    size,
                )
            )
        elif introspector.capture:
            parent = CURRENT.get()
            self._finished(
                id,
                title,
                _FULL,
                self.name,
                None if parent is None else parent.task_id,
                _DONE,
                {_PENDING: started, _LOADING: loaded, _DONE: _now()},
                _STORE_HIT,
                size,
            )
        return value

    def _write(self, flight: Flight, value: Any, cost: float) -> None:
        store = self.store
        if store is None:
            return
        codec = self.codec
        # Pieces when the codec can give them (out-of-band buffers, never joined in memory).
        encode_buffers = getattr(codec, "encode_buffers", None)
        data: StoreData
        try:
            if encode_buffers is not None:
                pieces = encode_buffers(value)
                data = pieces[0] if len(pieces) == 1 else pieces
            else:
                data = codec.encode(value)
        except Exception as exc:
            self.introspector.count("encode_errors")
            reason = str(exc) if isinstance(exc, CodecError) else f"{type(exc).__name__}: {exc}"
            warnings.warn(
                f"reckon: the value of request {flight.record.title!r} (type "
                f"{type(value).__module__}.{type(value).__qualname__}) cannot be encoded, so it "
                f"is kept in memory only and not stored: {reason}",
                CodecWarning,
                stacklevel=2,
            )
            return
        try:
            meta = _metadata_of(value)
            if meta is None:
                store.put(flight.id.disk_key, data, cost=cost)
            else:
                put_meta(store, flight.id.disk_key, data, cost, meta)
        except Exception as exc:
            self._store_failed("put", exc)
        else:
            self.introspector.count("stored")

    def _store_failed(self, operation: str, exc: BaseException) -> None:
        """Count a store failure and log it, at most once per operation every 10 seconds (a
        broken disk must not flood the log at every request)."""
        self.introspector.count("store_errors")
        now = time.monotonic()
        last, suppressed = self._store_log.get(operation, (0.0, 0))
        if now - last < 10.0 and last:
            self._store_log[operation] = (last, suppressed + 1)
            return
        self._store_log[operation] = (now, 0)
        log.warning(
            "reckon: store %s failed (%s: %s); treated as a miss%s",
            operation,
            type(exc).__name__,
            exc,
            f" ({suppressed} more since the last report)" if suppressed else "",
        )


def _metadata_of(value: Any) -> Any:
    """The metadata a computed value asks to be stored with (its type's ``__reckon_meta__``,
    a JSON-able mapping, e.g. memo's entries: which function and arguments), else None."""
    hook = getattr(type(value), "__reckon_meta__", None)
    return None if hook is None else hook(value)
