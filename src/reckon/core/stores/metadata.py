"""Per-entry metadata: a small JSON object a store keeps beside a value, signed like the value.

The layers above a store want to know what an entry *is* (memo: which function, which arguments,
which code version, how long it took) on every machine that shares the store, not only on the one
that wrote it. So ``put(key, data, meta={...})`` stores a JSON-able mapping with the value, and
``metadata(key)`` and ``entries(prefix)`` read it back, from any process.

Metadata is read from a store, so it is trusted no more than a value: it is signed under the
deployment's key on its own (so a listing never has to read values) and checked before it is
decoded, and it is decoded as JSON, never unpickled. Metadata that fails is ignored (the entry
lists without it). The tag binds the metadata to its entry's key under a domain of its own, so
neither a value nor another entry's metadata can be replayed as this entry's metadata.

Stored form (the same in every store): the 33-byte signature, then compact UTF-8 JSON.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final

from reckon.core.stores.signing import TAG_SIZE, Signer
from reckon.errors import StoreError

__all__ = ["MAX_META", "EntryInfo", "decode", "encode", "entries_of", "metadata_of", "put_meta"]

MAX_META: Final = 64 << 10
"""Bytes of encoded metadata a store keeps per entry (it is read by listings, so keep it small)."""

_DOMAIN = "\0reckon-meta\0"


def _signed_name(key: str) -> str:
    return _DOMAIN + key


@dataclass(frozen=True, slots=True)
class EntryInfo:
    """One entry of a listing: its key, the size of its value in bytes (None when the store
    cannot say without reading it) and its authenticated metadata (None when it has none)."""

    key: str
    size: int | None
    meta: dict[str, Any] | None


def encode(signer: Signer, key: str, meta: Mapping[str, Any]) -> bytes:
    """The stored form of ``meta`` for ``key``: signature, then compact JSON.

    Raises StoreError when ``meta`` is not a JSON object of plain values or is too large."""
    if not isinstance(meta, Mapping):
        raise StoreError(f"store metadata is a mapping (a JSON object), got {type(meta).__name__}")
    try:
        text = json.dumps(dict(meta), separators=(",", ":"), sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise StoreError(
            f"store metadata must be JSON (str, int, float, bool, None, lists, dicts): {exc}"
        ) from None
    body = text.encode("utf-8")
    if len(body) > MAX_META:
        raise StoreError(
            f"store metadata of {len(body)} bytes for {key[:64]} is too large (at most "
            f"{MAX_META}): keep it to a few short fields"
        )
    return signer.sign(_signed_name(key), body) + body


def decode(signer: Signer, key: str, raw: bytes | memoryview | None) -> dict[str, Any] | None:
    """The metadata ``raw`` holds for ``key``, or None when it is absent, unsigned, forged or
    not a JSON object. Nothing is decoded before the signature is checked."""
    if raw is None or len(raw) <= TAG_SIZE or len(raw) > TAG_SIZE + MAX_META:
        return None
    tag = bytes(raw[:TAG_SIZE])
    body = bytes(raw[TAG_SIZE:])
    if not signer.verify(_signed_name(key), body, tag):
        return None
    try:
        value = json.loads(body.decode("utf-8"), parse_constant=_no_constants)
    except (UnicodeDecodeError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def _no_constants(name: str) -> float:
    raise ValueError(f"{name} is not JSON")


# -- stores that keep no metadata ---------------------------------------------------------------
#
# The Store protocol's metadata methods are optional (a store written before them, or one that
# cannot keep metadata, still works): these helpers are how the layers above call them.


def put_meta(store: Any, key: str, data: Any, cost: float, meta: Mapping[str, Any] | None) -> None:
    """``store.put`` with ``meta`` when the store keeps metadata, else without it."""
    if meta is not None and getattr(store, "keeps_metadata", False):
        store.put(key, data, cost=cost, meta=meta)
    else:
        store.put(key, data, cost=cost)


def metadata_of(store: Any, key: str) -> dict[str, Any] | None:
    """``store.metadata(key)``, or None for a store that keeps no metadata."""
    reader = getattr(store, "metadata", None)
    return reader(key) if reader is not None else None


def entries_of(store: Any, prefix: str = "") -> Iterator[EntryInfo]:
    """``store.entries(prefix)``; for a store without metadata, its keys with nothing known."""
    lister = getattr(store, "entries", None)
    if lister is not None:
        found: Iterator[EntryInfo] = lister(prefix)
        return found
    keys = store.keys()  # (a Store, not a mapping: it cannot be iterated itself)
    return (EntryInfo(k, None, None) for k in keys if k.startswith(prefix))


def finite(value: float) -> float:
    """``value``, or 0.0 when it is not finite (JSON has no inf or nan)."""
    return value if math.isfinite(value) else 0.0
