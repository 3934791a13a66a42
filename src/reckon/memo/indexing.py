"""The memo index's side of a memoized function: its rows, and keeping them true to the store.

The store holds values under opaque keys; the index (:mod:`reckon.memo.index`) says which
function, arguments and code version each key belongs to, for ``clear()``, the CLI and eviction
logs. The two are written separately (in the background, by several processes), so they can
disagree, and each disagreement is handled where it shows: a value in the store that the index
lost is re-indexed on its first hit (not recomputed); a key the index lists whose value was lost
is reported when the call misses. No call ever waits for these checks.

Plain functions of the memoized function, called only when its group has a store.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from reckon.core import RequestId
from reckon.memo import log
from reckon.memo.entry import Entry
from reckon.memo.index import EntryRow
from reckon.memo.report import human_bytes, human_duration

if TYPE_CHECKING:
    from reckon.memo.memoize import Memoized

__all__ = ["clear_shared", "clear_stale", "record", "recover_if_missing", "report_if_indexed"]

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
    """Index an entry just computed (in the background)."""
    size = _size_of(m, entry)
    seconds = entry.compute_seconds
    m._index.record_entry(
        EntryRow(
            rid.disk_key,
            m.name,
            _args_text(args, kwargs),
            entry.created,
            seconds,
            size,
            m._fphex,
        )
    )
    if _logger.isEnabledFor(_DEBUG):
        log.event(
            "store",
            f"{m._call_text(args, kwargs)} (computed in {human_duration(seconds)}, "
            f"~{human_bytes(size)})",
        )


def recover_if_missing(
    m: Memoized[Any, Any],
    entry: Entry,
    rid: RequestId,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> None:
    """Look the key of an entry loaded from the store up in the index in the background;
    re-index it if it is missing."""
    index = m._index
    key = rid.disk_key

    def recover() -> None:
        row = EntryRow(
            key,
            m.name,
            _args_text(args, kwargs),
            entry.created,
            entry.compute_seconds,
            _size_of(m, entry),
            m._fphex,
        )
        log.event(
            "orphan",
            f"{m.name}({row.args}) was in the store but not in the index; recovered "
            f"(not recomputed)",
            logging.INFO,
        )
        index.record_entry_now(row)

    index.check_soon(key, if_missing=recover)


def report_if_indexed(
    m: Memoized[Any, Any], rid: RequestId, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    """On a miss: if the index lists this key, its stored value was lost or unreadable. Say so.

    Asked at once, not in the background: the miss runs under the store's lease right after the
    store said the value is absent, and only the index as it is now says whether the key was
    listed then. A check made later would also see rows that other processes wrote meanwhile
    for a value they have just stored (or read back), and call a sound value corrupt. A row
    found is confirmed against the store, which a writer without the lease may have filled
    since the look.
    """
    key = rid.disk_key
    if not m._index.indexed(key):
        return
    store = m._engine.store
    try:
        if store is not None and store.contains(key):
            return
    except Exception:  # a store that cannot say: the row stands
        pass
    log.event(
        "corrupt",
        f"{m._call_text(args, kwargs)} was indexed but its stored value was "
        f"missing or unreadable; recomputing",
        logging.WARNING,
    )


def clear_stale(m: Memoized[Any, Any]) -> int:
    """Remove the entries of ``m``'s earlier code versions (memory, store, index), one ``evict``
    log line each; returns how many."""
    rows = m._index.stale_entries(m.name)
    for row in rows:
        m._engine.evict(_from_digest(row.key))
        log.event(
            "evict",
            f"{m.name}({row.args}) (stale: code version {row.fingerprint[:12]}, now "
            f"{m._fphex[:12]})",
            logging.INFO,
        )
    m._index.delete_entries_now([row.key for row in rows])
    return len(rows)


def clear_shared(m: Memoized[Any, Any], done: set[str]) -> int:
    """Remove from the store every entry of ``m``'s current code version that ``done`` does not
    hold: those other machines wrote into a shared store, which this machine's index never saw.
    Returns how many.

    A memo key is the code version's 16-byte digest followed by the arguments', so the store's
    own key list names them: no index is needed to find them.
    """
    store = m._engine.store
    if store is None:
        return 0
    prefix = m._fphex
    try:
        listed = store.keys()  # (a Store, not a mapping: it cannot be iterated itself)
        found = [k for k in listed if k.startswith(prefix) and k not in done]
    except Exception as exc:
        _logger.warning("%s.clear(): could not list the store's keys (%s)", m.name, exc)
        return 0
    for key in found:
        m._engine.evict(_from_digest(key))
    return len(found)


def _size_of(m: Memoized[Any, Any], entry: Entry) -> int:
    # An estimate for the index and the logs: a value the codec cannot size counts as 0.
    try:
        return int(m._engine.codec.estimate_size(entry.value))
    except Exception:
        return 0


def _args_text(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    call = log.format_call("", args, kwargs)
    return call[1:-1]
