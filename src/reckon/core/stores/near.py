"""The near tier: a far store (Redis, S3, ...) fronted by a LocalStore on this machine.

A hit in a fresh process should cost what a local hit costs, even when the value was computed on
another machine. So reads go to the near LocalStore first and, on a miss there, to the far store;
a value found far is kept near (read-through). Writes go to both: near at once (through its own
background writer), far through a background writer of this store, so a put costs the caller a
queue append (write-through, far write in the background). ``flush()`` waits for both and reports
what either failed to store.

The far store stays the shared truth: ``keys``, ``usage``, ``evict`` and ``lease`` are its. The
near tier has its own directory and budget (LRU), and drops values only to stay in budget.

A lease's holder is done once its value is in the near tier: leaving the lease waits for the near
write only, so the other processes of this machine (waiting on the machine lease, see ``_machine``)
find the value near at once, and the holder's caller gets its value without waiting for the far
store. The value put inside the lease goes far in the background, and the far lease is released
after it, in the same queue: a process on another machine waits until the value is there, as
before, and fencing stays the far lease's. A far write that fails is logged and counted (the far
store's ``unstored``, which the engine counts as ``store_errors``); ``flush()``, ``close()`` and
the process's normal exit wait for these writes.

Entries deleted far by another machine stay in this machine's near tier until it evicts them (for
memoized values, which keys determine, they are still right); ``delete`` and ``clear`` through
this store remove both.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import weakref
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from reckon.core.stores import metadata as md
from reckon.core.stores import urls
from reckon.core.stores._exit import ExitHook
from reckon.core.stores._writer import CALL, DELETE, PUT, Op, Writer
from reckon.core.stores.base import Store, StoreData, StoreUsage
from reckon.core.stores.local import LocalStore, default_directory

log = logging.getLogger("reckon.core.store")

DEFAULT_NEAR_BUDGET = 2 << 30


def near_directory(far_url: str) -> str:
    """Where the near tier of ``far_url`` lives by default: one directory per far store, under
    the local cache directory."""
    name = hashlib.sha256(far_url.encode("utf-8")).hexdigest()[:16]
    return os.path.join(default_directory(), "near", name)


class NearStore:
    """``far`` behind a LocalStore ``near`` (see the module docstring)."""

    def __init__(
        self,
        far: Store,
        near: LocalStore,
        *,
        options: dict[str, Any] | None = None,
        queue_bytes: int = 256 << 20,
    ) -> None:
        self.far = far
        self.near = near
        self.url: str = getattr(far, "url", repr(far))
        far_options = getattr(far, "options", {})
        self.options: dict[str, Any] = dict(far_options) | dict(options or {})
        self._writer = Writer(self._write_far, max_bytes=queue_bytes)
        # Keys whose far lease this store holds now -> the far write put inside it (or None).
        self._leased: dict[str, Op | None] = {}
        self.closed = False
        urls.remember(self)
        _open_stores.add(self)

    def __repr__(self) -> str:
        return f"NearStore(far={self.far!r}, near={self.near.path!r})"

    def __reduce__(self) -> tuple[object, ...]:
        """Pickles as the far store's URL and options (the near tier is each machine's own)."""
        return (urls.reopen, (self.url, self.options))

    # -- reads ------------------------------------------------------------------------------

    def near_get(self, key: str) -> bytes | memoryview | None:
        """What this machine has of ``key``, asking the far store nothing: the near tier, or a
        far write still queued here. (The engine's look before a lease whose far store looks
        itself: see ``Store``.)"""
        data = self.near.get(key)
        if data is not None:
            return data
        pending = self._writer.pending.get(key)
        if pending is None or pending.kind != PUT or pending.data is None:
            return None
        # On its way far (and too big for the near budget, or not yet there).
        return b"".join(pending.data) if isinstance(pending.data, tuple) else pending.data

    @property
    def lease_looks(self) -> bool:
        """The far store's (its lease is this store's)."""
        return bool(getattr(self.far, "lease_looks", False))

    def get(self, key: str) -> bytes | memoryview | None:
        return self._read(key, self.far.get)

    def early_get(self, key: str) -> bytes | memoryview | None:
        """The engine's look before the lease (see ``Store``): the near tier, then the far
        store as the engine would look there itself (its ``early_get``; none when its lease
        looks; else its ``get``)."""
        far = getattr(self.far, "early_get", None)
        if far is None and self.lease_looks:
            return self.near_get(key)
        return self._read(key, far or self.far.get)

    def _read(
        self, key: str, far: Callable[[str], bytes | memoryview | None]
    ) -> bytes | memoryview | None:
        data = self.near_get(key)
        if data is not None or key in self._writer.pending:  # (a delete on its way: a miss)
            return data
        data = far(key)
        if data is not None:
            self.near.put(key, data)  # read-through: the next process here hits near
        return data

    def contains(self, key: str) -> bool:
        return self.near.contains(key) or self.far.contains(key)

    def keys(self) -> Iterator[str]:
        return self.far.keys()

    def usage(self) -> StoreUsage:
        return self.far.usage()

    # -- metadata: the far store's (the shared truth) ---------------------------------------

    keeps_metadata = True

    def metadata(self, key: str) -> dict[str, Any] | None:
        self._writer.flush()
        return md.metadata_of(self.far, key)

    def entries(self, prefix: str = "") -> Iterator[md.EntryInfo]:
        self._writer.flush()
        return md.entries_of(self.far, prefix)

    @property
    def unstored(self) -> int:
        far = getattr(self.far, "unstored", 0)
        return self.near.unstored + (far if isinstance(far, int) else 0)

    @property
    def reachable(self) -> bool:
        return bool(getattr(self.far, "reachable", True))

    # -- writes -----------------------------------------------------------------------------

    def put(
        self,
        key: str,
        data: StoreData,
        *,
        cost: float = 0.0,
        meta: Mapping[str, Any] | None = None,
    ) -> None:
        self.near.put(key, data, cost=cost, meta=meta)
        value: bytes | memoryview | tuple[bytes | memoryview, ...]
        if isinstance(data, list | tuple):
            value = tuple(memoryview(p).cast("B") if not isinstance(p, bytes) else p for p in data)
            size = sum(map(len, value))
        else:
            value = data if isinstance(data, bytes) else memoryview(data).cast("B")  # type: ignore[arg-type]
            size = len(value)
        op = Op(PUT, key, value, cost, 0.0, size, meta)
        if key in self._leased:  # leaving the lease sends it, before the far lease's release
            self._leased[key] = op
        else:
            self._far_later(op)

    def delete(self, key: str) -> bool:
        near = self.near.delete(key)
        self._writer.flush()
        return self.far.delete(key) or near

    def evict(self, target_bytes: int | None = None) -> int:
        self._writer.flush()
        return self.far.evict(target_bytes)

    def _write_far(self, ops: list[Op]) -> None:
        for op in ops:
            try:
                if op.kind == PUT:
                    data = op.data
                    assert data is not None
                    value = list(data) if isinstance(data, tuple) else data
                    md.put_meta(self.far, op.key, value, op.cost, op.meta)
                elif op.kind == DELETE:
                    self.far.delete(op.key)
                elif op.kind == CALL:
                    op.meta()
            except Exception as exc:  # a far store says what it did not store; never raise here
                log.warning("store %s: far write of %s failed: %s", self, op.key, exc)

    def flush(self) -> list[str]:
        """Wait for the near and far writes; the keys either failed to store since the last
        flush."""
        self._writer.flush()
        failed = list(self.near.flush())
        failed.extend(self.far.flush() or ())
        return failed

    def lease(
        self, key: str, timeout: float | None = None
    ) -> contextlib.AbstractContextManager[bool]:
        """The far store's lease (the shared one); leaving it waits for the far write.

        Copies on one machine agree among themselves first, on the far store's machine leases
        (see ``_machine``): a copy that waited for another one here looks in the near tier, where
        the holder left the value, and asks the far store nothing when it is there."""
        far = self.far
        machine = getattr(far, "machine_leases", None)
        lives = getattr(far, "lease_lives", None)
        if machine is None or lives is None or getattr(far, "shared_lease", None) is None:
            return self._far_lease(key, timeout)
        patience = float(getattr(far, "lease_ttl", 4.0)) / 2
        found: contextlib.AbstractContextManager[bool] = machine.lease(
            key, timeout, self._far_lease, self.near.contains, lives, patience
        )
        return found

    @contextlib.contextmanager
    def _far_lease(self, key: str, timeout: float | None) -> Iterator[bool]:
        lease = getattr(self.far, "shared_lease", None) or getattr(self.far, "lease", None)
        if lease is None:
            yield not self.contains(key)
            return
        far = lease(key, timeout)
        if not far.__enter__():
            try:
                yield False
            finally:
                far.__exit__(None, None, None)
            return
        self._leased[key] = None
        try:
            yield True
        finally:
            op = self._leased.pop(key, None)
            # This machine's other processes see the value when the lease ends, in the near
            # tier; other machines when the far lease ends, after the far write (see the module
            # docstring): both go to the background queue, in that order.
            self.near.settle(key)
            self._far_later(op, Op(CALL, key, meta=lambda: far.__exit__(None, None, None)))

    def _far_later(self, *ops: Op | None) -> None:
        """Queue ``ops`` for the far store, in order (done here and now once closed)."""
        _at_exit.arm()
        for op in ops:
            if op is not None and not self._writer.submit(op):
                self._write_far([op])

    def close(self) -> None:
        if self.closed:
            return
        self._writer.close()
        self.closed = True
        urls.forget(self)
        _open_stores.discard(self)
        self.near.close()
        self.far.close()


_open_stores: weakref.WeakSet[NearStore] = weakref.WeakSet()


def _flush_at_exit() -> None:
    """Far writes still queued (values computed just before the exit, whose holders went on
    without waiting for them) reach the far store before the process ends. Registered after
    the LocalStore's exit flush (this module imports it), so it runs first, near tiers open."""
    for store in list(_open_stores):
        try:
            store._writer.flush()
            store.far.flush()  # (what the far store itself queued: an object store's releases)
        except Exception:
            log.exception("store %s: far writes at exit failed", store)


# before the LocalStore's and the object store's (a higher priority runs first)
_at_exit = ExitHook(_flush_at_exit, priority=101)
