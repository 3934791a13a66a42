"""Copies of one key on one machine agree among themselves first: only one talks to the far store.

Every far store's lease (Redis, object stores, with or without the near tier) is this one
composition: a *machine lease*, an OS file lock of ``_lease`` in a directory of that far store's
own under the local cache directory (on Linux a lock on one byte per key of one file, which costs
a few system calls and no file made and removed per lease; elsewhere a lock file per key), then
the far store's *shared* lease. When
several processes of one machine (a Dask worker each) want the same key at once, one of them
takes the far lease and computes; the others wait on the file lock, in the kernel, without a
request to the far store, and wake the moment the holder ends (its value stored, its far lease
released). A waiter then *looks* once (in the near tier, or with one read of the far store,
which hands what it read to the get that follows) and only when the value is not there (its
holder failed, or was killed) goes on to the far lease, as the first copy did.

What the far lease guarantees stays its own: the file lock dies with its holder (even by
``kill -9``), so a local waiter goes on to the far lease at once, which its dead holder's expiry
frees within ``lease_ttl``; fencing is the far lease's; a look reads through the store's own
``get``, so a value found is authenticated before anything uses it. A holder that lives but
stopped working (frozen by SIGSTOP, say) keeps its file lock, so a local waiter also asks the far
store, every half ``lease_ttl``, whether the holder's far lease still lives (``alive``): when it
lapsed, the waiter stops waiting here and goes on to the far lease, which it then takes over as a
waiter on another machine would (and fencing keeps the frozen holder from overwriting it).

A look hands what it read over in the waiter's thread (:meth:`MachineLeases.hand`): the store's
``get`` of that key in that thread, inside the lease, takes it (:meth:`MachineLeases.handed`)
instead of reading again. Leaving the lease drops what was not taken.

Within one process, the engine shares a computation among threads itself; a second lease on a
key this process already holds here (another thread, or a nested lease with a timeout) goes
straight to the far lease, as without machine leases, instead of waiting for itself.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from reckon.core.stores import _lease

__all__ = ["MachineLeases", "SharedLease", "machine_directory"]

log = logging.getLogger("reckon.core.store")

SharedLease = Callable[[str, float | None], contextlib.AbstractContextManager[bool]]
"""A far store's own lease: ``(key, timeout)`` to a context manager yielding "compute"."""


def machine_directory(cache_dir: str, scope: str) -> str:
    """Where the machine leases of the far store ``scope`` (its URL, and whatever else tells its
    keys apart, e.g. a Redis prefix) live: one directory per far store under the local cache
    directory ``cache_dir``, beside the near tiers."""
    name = hashlib.sha256(scope.encode("utf-8")).hexdigest()[:16]
    return os.path.join(cache_dir, "far-leases", name)


class MachineLeases:
    """The machine leases of one far store (see the module docstring)."""

    def __init__(self, cache_dir: str, scope: str) -> None:
        self.directory = machine_directory(cache_dir, scope)
        self._hands = threading.local()  # .item: (key, data) a look read in this thread
        self._warned = False
        self._mine: dict[str, int] = {}  # key -> machine leases this process holds on it
        self._pid = os.getpid()
        self._guard = threading.Lock()

    def hand(self, key: str, data: Any) -> None:
        """Keep ``data``, just read for ``key``, for this thread's next get of ``key`` inside the
        lease. What ``data`` is (raw or verified) is the store's business: only it reads it."""
        self._hands.item = (key, data)

    def handed(self, key: str) -> Any:
        """What a look in this thread read for ``key`` (taken: a second call gives None)."""
        item = getattr(self._hands, "item", None)
        if item is None or item[0] != key:
            return None
        self._hands.item = None
        return item[1]

    def lease(
        self,
        key: str,
        timeout: float | None,
        shared: SharedLease,
        look: Callable[[str], bool] | None,
        alive: Callable[[str], Callable[[], bool]],
        patience: float,
    ) -> contextlib.AbstractContextManager[bool]:
        """The machine lease on ``key``, then ``shared(key, timeout left)``; yields True when the
        caller should compute. ``look(key)``: whether the value is there now, asked once after
        waiting for another holder on this machine (None: the shared lease looks, in the same
        request that takes it). ``alive(key)``: a check, asked every ``patience`` seconds while
        waiting here, whether the far lease of the holder waited for still lives."""
        return self._lease(key, timeout, shared, look, (patience, alive))

    @contextlib.contextmanager
    def _lease(
        self,
        key: str,
        timeout: float | None,
        shared: SharedLease,
        look: Callable[[str], bool] | None,
        alive: tuple[float, Callable[[str], Callable[[], bool]]],
    ) -> Iterator[bool]:
        deadline = None if timeout is None else time.monotonic() + timeout
        byte = _lease.BYTE_LOCKS
        if byte:  # one file, a byte per key (no file made and removed per lease)
            path = os.path.join(self.directory, "keys.lock")
            locker = _lease.byte_locker(int(hashlib.sha256(key.encode()).hexdigest()[:15], 16))
        else:  # a file per key
            path = _lease.lock_path(self.directory, key)
        fd: int | None = None
        waited = False
        try:
            if not self._held_here(key):
                still = (alive[0], alive[1](key))
                if byte:
                    fd, waited = _lease.acquire_byte(path, locker, timeout, still)
                else:
                    fd, waited = _lease.acquire(path, timeout, still)
        except OSError as exc:  # no local directory to lock in: the far lease alone
            if not self._warned:
                self._warned = True
                log.warning(
                    "machine leases in %s unavailable (%s): copies on this machine coordinate "
                    "through the far store only",
                    self.directory,
                    exc,
                )
        else:
            if fd is None and waited:
                if deadline is not None and time.monotonic() >= deadline:
                    log.info("machine lease %s not granted within %.3gs: computing", path, timeout)
                    yield True
                    return
                log.info("machine lease %s: its holder's far lease lapsed; going on to it", path)
        if fd is not None:
            self._count(key, 1)
        try:
            if waited and look is not None and look(key):
                yield False
                return
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            with shared(key, left) as mine:
                yield mine
        finally:
            self._hands.item = None
            if fd is not None:
                self._count(key, -1)
                if byte:
                    os.close(fd)  # (the byte's lock goes with the open file)
                else:
                    _lease.release(path, fd)

    def _held_here(self, key: str) -> bool:
        with self._guard:
            if self._pid != os.getpid():  # a forked child holds none of its parent's
                self._pid = os.getpid()
                self._mine.clear()
            return key in self._mine

    def _count(self, key: str, step: int) -> None:
        with self._guard:
            n = self._mine.get(key, 0) + step
            if n > 0:
                self._mine[key] = n
            else:
                self._mine.pop(key, None)
