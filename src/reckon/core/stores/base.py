"""The protocol every store implements, and the usage figures stores report.

The engine speaks to stores only through :class:`Store`, so a store can live on local disk, in
Redis or in an object store without the engine noticing. Stores hold bytes: encoding values is the
codec's business.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeAlias, runtime_checkable

StoreData: TypeAlias = "bytes | memoryview | Sequence[bytes | memoryview]"
"""What ``Store.put`` takes: one buffer, or consecutive pieces of one value (list or tuple)."""


def joined(data: StoreData) -> bytes | memoryview:
    """``data`` as one buffer (pieces are concatenated: one copy)."""
    if isinstance(data, list | tuple):
        return data[0] if len(data) == 1 else b"".join(data)
    return data  # type: ignore[return-value]


@dataclass(frozen=True, slots=True)
class StoreUsage:
    """How full a store is: ``bytes`` is what the entries occupy, ``budget`` the limit (or None)."""

    entries: int
    bytes: int
    budget: int | None

    def to_dict(self) -> dict[str, int | None]:
        """Plain types, for ``Engine.stats()`` and the wire."""
        return {"entries": self.entries, "bytes": self.bytes, "budget": self.budget}


@runtime_checkable
class Store(Protocol):
    """Bytes in, bytes out, keyed by ``RequestId.disk_key`` strings.

    A store never returns a partial or corrupt value: a bad entry is dropped and reported as a
    miss (``None``). Failures while reading or writing degrade to misses; they never fail the
    request that asked.

    reckon's stores also keep per-entry metadata (``keeps_metadata = True``): ``put`` takes
    ``meta=`` (a small JSON object, signed like the value), and ``metadata(key)`` and
    ``entries(prefix)`` read it back. Those are optional for other stores: the layers above
    call them through ``reckon.core.stores.metadata``, which falls back to ``keys()``.

    Leases are optional too. A store shared by processes offers ``lease(key)``: a context
    manager yielding True when the caller should compute (and put) the value, False when the
    value is present; the engine then reads it with ``get``. A store whose lease *looks* for the
    value in the same step as taking it (``lease_looks = True``: every shared store of reckon's)
    saves the engine its own look before the lease: the engine then looks first only where it
    costs nothing beyond this machine, with the store's ``near_get(key)`` when it has one (a
    near tier), and else goes straight to the lease. Such a store's ``get`` right after its
    lease said "present" reads no more than it must (what the lease's look read is handed to
    it).

    A store with a lease may also choose the engine's look before it: ``early_get(key)``, used
    instead of the above, returns the value or None, and None may mean "not looked" (the lease
    then looks: RedisStore reads first, the cheaper way to find a value that is there, unless
    its recent looks all missed).
    """

    def get(self, key: str) -> bytes | memoryview | None: ...

    def put(self, key: str, data: StoreData, *, cost: float = 0.0) -> None:
        """Store ``data``: one bytes-like buffer, or a list/tuple of them whose concatenation is
        the value (a codec's out-of-band buffers, written without being joined first)."""
        ...

    def delete(self, key: str) -> bool: ...

    def contains(self, key: str) -> bool: ...

    def keys(self) -> Iterator[str]: ...

    def usage(self) -> StoreUsage: ...

    def evict(self, target_bytes: int | None = None) -> int: ...

    def flush(self) -> list[str] | None:
        """Wait for queued writes; the keys whose writes failed since the last flush (reckon's
        stores; None from stores that do not say)."""
        ...

    def close(self) -> None: ...
