"""The memory tier: values kept as the objects they are, least recently used evicted first.

The hit path (:meth:`MemoryTier.lookup` and the engine's inlined copy of it) takes no lock: an
``OrderedDict`` lookup and ``move_to_end`` are single C calls, atomic under the GIL for int keys.
Everything that changes sizes (put, evict, discard, clear, pin) holds the tier's lock.

Entries that a finished computation is still handing to its waiters are *pinned*: they live in a
separate table the evictor never looks at, and join the LRU order when the last waiter has taken
its value. So a value is never evicted between being computed and being delivered, however small
the budget.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import Any, Final

from reckon.errors import ConfigurationError

__all__ = ["MISSING", "MemoryTier"]


class _Missing:
    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Final[Any] = _Missing()
"""Returned by lookups that find nothing (``None`` is a valid cached value)."""


class MemoryTier:
    """An LRU of Python objects under a byte budget, keyed by ``RequestId.memory_key``."""

    def __init__(self, budget: int = 1 << 30) -> None:
        if budget < 0:
            raise ConfigurationError(
                f"memory budget must be >= 0 bytes, got {budget}: pass a byte count such as 1 << 30"
            )
        self._budget = budget
        self._lock = threading.Lock()
        # Unpinned entries in LRU order (least recent first). Never replaced, only mutated, so
        # bound methods taken from it stay valid.
        self._data: OrderedDict[int, Any] = OrderedDict()
        self._sizes: dict[int, int] = {}
        # Pinned entries: key -> [value, pin count].
        self._pinned: dict[int, list[Any]] = {}
        self._bytes = 0
        self.evicted = 0
        self.on_evict: Callable[[int], None] | None = None

    # ------------------------------------------------------------------ hit path (lock-free)
    def lookup(self, key: int) -> Any:
        """The value for ``key`` (bumped to most recent), or :data:`MISSING`."""
        value = self._data.get(key, MISSING)
        if value is not MISSING:
            try:  # noqa: SIM105 (the hit path: suppress() is slower)
                self._data.move_to_end(key)
            except KeyError:
                pass  # evicted by another thread meanwhile; the value we hold is still good
            return value
        pinned = self._pinned.get(key)
        return MISSING if pinned is None else pinned[0]

    def __contains__(self, key: int) -> bool:
        return key in self._data or key in self._pinned

    # ------------------------------------------------------------------ changes (locked)
    def put(self, key: int, value: Any, size: int, *, pin: bool = False) -> None:
        """Insert or replace ``key``; ``pin`` keeps it out of eviction until :meth:`unpin`."""
        size = max(int(size), 0)
        with self._lock:
            self._remove_locked(key)
            self._sizes[key] = size
            self._bytes += size
            if pin:
                self._pinned[key] = [value, 1]
            else:
                self._data[key] = value
            self._evict_locked(self._budget)

    def add(self, key: int, value: Any, size: int) -> Any:
        """Insert ``key`` unless it is present; returns the value now held (the one already
        there wins, so everyone shares the first object). One lock for the store-hit path."""
        if size < 0:
            size = 0
        lock = self._lock
        lock.acquire()  # (not ``with``: its enter/exit calls cost twice the lock itself)
        try:
            sizes = self._sizes
            if key in sizes:  # present, pinned or not: share the object held
                current = self._data.get(key, MISSING)
                return current if current is not MISSING else self._pinned[key][0]
            sizes[key] = size
            self._data[key] = value
            held = self._bytes = self._bytes + size
            if held > self._budget:
                self._evict_locked(self._budget)
            return value
        finally:
            lock.release()

    def pin(self, key: int) -> bool:
        """Keep ``key`` from eviction until a matching :meth:`unpin`; False when absent."""
        with self._lock:
            entry = self._pinned.get(key)
            if entry is not None:
                entry[1] += 1
                return True
            value = self._data.pop(key, MISSING)
            if value is MISSING:
                return False
            self._pinned[key] = [value, 1]
            return True

    def unpin(self, key: int) -> None:
        with self._lock:
            entry = self._pinned.get(key)
            if entry is None:
                return
            entry[1] -= 1
            if entry[1] > 0:
                return
            del self._pinned[key]
            self._data[key] = entry[0]
            self._evict_locked(self._budget)

    def discard(self, key: int) -> bool:
        with self._lock:
            return self._remove_locked(key)

    def clear(self) -> None:
        """Drop every unpinned entry (pinned ones are still being delivered)."""
        with self._lock:
            self._data.clear()
            for key in list(self._sizes):
                if key not in self._pinned:
                    self._bytes -= self._sizes.pop(key)

    def evict(self, target_bytes: int | None = None) -> int:
        """Evict least recently used entries until at most ``target_bytes`` (default: the
        budget) are held; returns how many were evicted."""
        with self._lock:
            return self._evict_locked(self._budget if target_bytes is None else target_bytes)

    def _remove_locked(self, key: int) -> bool:
        size = self._sizes.pop(key, None)
        if size is None:
            return False
        self._bytes -= size
        if self._data.pop(key, MISSING) is MISSING:
            self._pinned.pop(key, None)
        return True

    def _evict_locked(self, target: int) -> int:
        n = 0
        data = self._data
        while self._bytes > target and data:
            key, _ = data.popitem(last=False)
            self._bytes -= self._sizes.pop(key, 0)
            n += 1
            if self.on_evict is not None:
                self.on_evict(key)
        self.evicted += n
        return n

    # ------------------------------------------------------------------ sizes
    @property
    def budget(self) -> int:
        return self._budget

    @budget.setter
    def budget(self, value: int) -> None:
        if value < 0:
            raise ConfigurationError(f"memory budget must be >= 0 bytes, got {value}")
        with self._lock:
            self._budget = value
            self._evict_locked(value)

    @property
    def bytes(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._sizes)

    def keys(self) -> Iterator[int]:
        """Keys from least to most recently used, pinned ones last (a snapshot)."""
        with self._lock:
            return iter([*self._data, *self._pinned])

    def size_of(self, key: int) -> int | None:
        return self._sizes.get(key)

    def is_pinned(self, key: int) -> bool:
        return key in self._pinned

    def usage(self) -> dict[str, int]:
        return {
            "entries": len(self._sizes),
            "bytes": self._bytes,
            "budget": self._budget,
            "pinned": len(self._pinned),
            "evicted": self.evicted,
        }
