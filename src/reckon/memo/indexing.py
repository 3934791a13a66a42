"""A memoized function's side of the store's metadata: what its entries say they are, and
clearing them by function.

The store keeps a small JSON object with each value (:mod:`reckon.memo.entries`): which function,
arguments and code version. It is written with the value, in the same put, so the two never
disagree and no second index has to be kept true to the store; every machine sharing the store
reads the same metadata.

Plain functions of the memoized function, called only when its group has a store.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from reckon.core import RequestId
from reckon.memo import log
from reckon.memo.entries import entry_meta, read_rows, stale_rows
from reckon.memo.entry import Entry
from reckon.memo.report import human_bytes, human_duration

if TYPE_CHECKING:
    from reckon.memo.memoize import Memoized

__all__ = ["clear_all", "clear_stale", "record"]

_DEBUG = logging.DEBUG
_logger = log.logger
_from_digest = RequestId.from_digest


def record(
    m: Memoized[Any, Any],
    entry: Entry,
    rid: RequestId,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> None:
    """Give an entry just computed the metadata it is stored with."""
    text = _args_text(args, kwargs)
    entry.meta = entry_meta(m.name, text, m._fphex, entry.created, entry.compute_seconds)
    m._group.backend.named(rid.disk_key, f"{m.name}({text})")
    if _logger.isEnabledFor(_DEBUG):
        log.event(
            "store",
            f"{m._call_text(args, kwargs)} (computed in {human_duration(entry.compute_seconds)}, "
            f"~{human_bytes(_size_of(m, entry))})",
        )


def clear_stale(m: Memoized[Any, Any]) -> int:
    """Remove the entries of ``m``'s earlier code versions (memory, store), one ``evict`` log
    line each; returns how many."""
    store = m._engine.store
    if store is None:
        return 0
    m._engine.flush()
    rows, _unknown = read_rows(store, m.name)
    stale = stale_rows(rows, {m.name: m._fphex})
    for row in stale:
        m._engine.evict(_from_digest(row.key))
        log.event(
            "evict",
            f"{m.name}({row.args}) (stale: code version {row.fingerprint[:12]}, now "
            f"{m._fphex[:12]})",
            logging.INFO,
        )
    return len(stale)


def clear_all(m: Memoized[Any, Any]) -> int:
    """Remove from the store every entry of ``m``, of every code version, whichever machine
    wrote it. Returns how many.

    The entries of the current code version are found by key (a memo key is the code version's
    16-byte digest followed by the arguments': the store's keys name them, metadata or not); the
    others by the function named in their metadata.
    """
    store = m._engine.store
    if store is None:
        return 0
    m._engine.flush()
    prefix = m._fphex
    try:
        listed = store.keys()  # (a Store, not a mapping: it cannot be iterated itself)
        found = {k for k in listed if k.startswith(prefix)}
        rows, _unknown = read_rows(store, m.name)
    except Exception as exc:
        _logger.warning("%s.clear(): could not list the store's entries (%s)", m.name, exc)
        return 0
    found.update(row.key for row in rows)
    for key in found:
        m._engine.evict(_from_digest(key))
    return len(found)


def _size_of(m: Memoized[Any, Any], entry: Entry) -> int:
    # An estimate for the logs: a value the codec cannot size counts as 0.
    try:
        return int(m._engine.codec.estimate_size(entry.value))
    except Exception:
        return 0


def _args_text(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    call = log.format_call("", args, kwargs)
    return call[1:-1]
