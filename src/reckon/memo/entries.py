"""What each stored memo entry is: its metadata, kept in the store beside the value.

A store holds values under opaque keys. To clear one function's entries, list the cache by
function, say which entries an earlier code version left, or report usage summed over every
process, memo writes a small JSON object with each value (the store's per-entry metadata, signed
and checked like the value): which function, its arguments as text, its code version, when and
how long it was computed. Every machine that shares the store sees the same metadata, so
``f.clear()`` and ``reckon cache`` work the same on a directory, Redis or S3.

The usage counters (hits, misses, time computing, time saved) live in the store too: each
process writes one small entry per function at exit, under a key of its own (no two processes
ever update one entry), and the report sums them; ``reckon cache prune`` folds them into one.

A cache directory written by an older reckon kept this in a file of its own beside the store
(``memo-index.sqlite``): :func:`import_old_index` carries its descriptions into the store once,
then renames the file. Entries that have no metadata anyway still hit, and are listed as of an
unknown function until they are recomputed or cleared.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import socket
import sqlite3
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from reckon.core.stores.metadata import EntryInfo, entries_of, finite
from reckon.memo.report import FunctionStats

__all__ = [
    "EntryRow",
    "current_versions",
    "entry_meta",
    "fold_stats",
    "read_rows",
    "read_stats",
    "stale_rows",
    "stats_entries",
    "write_stats",
]

KIND: Final = "memo"
STATS_KIND: Final = "memo-stats"
_SCHEMA: Final = 1
OLD_INDEX: Final = "memo-index.sqlite"
"""The file memo kept its metadata in before it moved into the store (read once, to import)."""
IMPORTED_SUFFIX: Final = ".imported"


@dataclass(frozen=True)
class EntryRow:
    """One stored memo entry, as its metadata describes it."""

    key: str
    function: str
    args: str
    created: float
    compute_seconds: float
    size: int
    fingerprint: str


def entry_meta(
    function: str, args: str, fingerprint: str, created: float, compute_seconds: float
) -> dict[str, Any]:
    """The metadata stored with a computed entry."""
    return {
        "kind": KIND,
        "v": _SCHEMA,
        "function": function,
        "args": args if len(args) <= 2000 else args[:1997] + "...",
        "fp": fingerprint,
        "created": finite(created),
        "compute_s": finite(compute_seconds),
    }


def row_of(info: EntryInfo) -> EntryRow | None:
    """The memo entry ``info`` describes, or None (no metadata, or not a memo entry)."""
    meta = info.meta
    if meta is None or meta.get("kind") != KIND:
        return None
    try:
        return EntryRow(
            info.key,
            str(meta["function"]),
            str(meta.get("args", "")),
            float(meta.get("created", 0.0)),
            float(meta.get("compute_s", 0.0)),
            int(info.size or 0),
            str(meta.get("fp", "")),
        )
    except (KeyError, TypeError, ValueError):
        return None


def read_rows(store: Any, function: str | None = None) -> tuple[list[EntryRow], list[EntryInfo]]:
    """(memo entries, ordered by function and time; entries that carry no memo metadata)."""
    rows: list[EntryRow] = []
    unknown: list[EntryInfo] = []
    for info in entries_of(store):
        row = row_of(info)
        if row is not None:
            if function is None or row.function == function:
                rows.append(row)
        elif info.meta is None or info.meta.get("kind") != STATS_KIND:
            unknown.append(info)
    rows.sort(key=lambda r: (r.function, r.created))
    return rows, unknown


def current_versions(rows: Iterable[EntryRow]) -> dict[str, str]:
    """Per function, the code version of its newest entry (what a reader without the code
    takes as current)."""
    newest: dict[str, tuple[float, str]] = {}
    for row in rows:
        seen = newest.get(row.function)
        if seen is None or row.created > seen[0]:
            newest[row.function] = (row.created, row.fingerprint)
    return {name: fp for name, (_t, fp) in newest.items()}


def stale_rows(rows: list[EntryRow], current: dict[str, str] | None = None) -> list[EntryRow]:
    """Entries made by another code version than their function's current one."""
    versions = current_versions(rows) if current is None else current
    return [r for r in rows if r.fingerprint and r.fingerprint != versions.get(r.function, "")]


# -- usage counters -----------------------------------------------------------------------------

_PROCESS = f"{socket.gethostname()}-{os.getpid()}-{os.urandom(4).hex()}"


def _stats_key(function: str, writer: str) -> str:
    return hashlib.sha256(f"reckon.memo.stats\0{function}\0{writer}".encode()).hexdigest()


def write_stats(store: Any, total: FunctionStats) -> None:
    """Record this process's counters of one function (its running total: written again under
    the same key as it grows). A store that keeps no metadata keeps no counters."""
    if not getattr(store, "keeps_metadata", False):
        return
    meta = {**_meta_of_total(total), "updated": time.time()}
    store.put(_stats_key(total.name, _PROCESS), b"", meta=meta)


def _stats_of(info: EntryInfo) -> FunctionStats | None:
    meta = info.meta
    if meta is None or meta.get("kind") != STATS_KIND:
        return None
    try:
        return FunctionStats(
            str(meta["function"]),
            int(meta.get("hits", 0)),
            int(meta.get("misses", 0)),
            float(meta.get("compute_s", 0.0)),
            float(meta.get("saved_s", 0.0)),
        )
    except (KeyError, TypeError, ValueError):
        return None


def stats_entries(store: Any) -> list[tuple[str, FunctionStats]]:
    """(key, counters) of every process's counters entry."""
    found: list[tuple[str, FunctionStats]] = []
    for info in entries_of(store):
        stats = _stats_of(info)
        if stats is not None:
            found.append((info.key, stats))
    return found


def read_stats(store: Any) -> dict[str, FunctionStats]:
    """Every process's counters, summed per function."""
    totals: dict[str, FunctionStats] = {}
    for _key, found in stats_entries(store):
        totals.setdefault(found.name, FunctionStats(found.name)).add(found)
    return totals


def fold_stats(store: Any) -> int:
    """Replace the counters of many processes by one entry per function (the sums). Counters
    written meanwhile are left alone; returns how many entries were folded away."""
    per: dict[str, list[tuple[str, FunctionStats]]] = {}
    for key, found in stats_entries(store):
        per.setdefault(found.name, []).append((key, found))
    folded = 0
    for name, items in per.items():
        if len(items) < 2:
            continue
        total = FunctionStats(name)
        for _key, s in items:
            total.add(s)
        key = _stats_key(name, f"folded-{os.urandom(8).hex()}")
        store.put(key, b"", meta={**_meta_of_total(total), "updated": time.time()})
        for old, _s in items:
            store.delete(old)
            folded += 1
    return folded


def _meta_of_total(total: FunctionStats) -> dict[str, Any]:
    return {
        "kind": STATS_KIND,
        "v": _SCHEMA,
        "function": total.name,
        "hits": total.hits,
        "misses": total.misses,
        "compute_s": finite(total.compute_seconds),
        "saved_s": finite(total.saved_seconds),
    }


def import_old_index(store: Any, directory: Path) -> int | None:
    """Carry the descriptions of an older reckon's ``memo-index.sqlite`` in ``directory`` into
    ``store`` (a LocalStore on that directory), then rename the file (``.imported``). Returns how
    many entries took a description, None when there was nothing to import (or it failed: the
    file is then left for the next try)."""
    old = directory / OLD_INDEX
    setter = getattr(store, "set_metadata", None)
    if setter is None or not old.exists():
        return None
    try:
        conn = sqlite3.connect(f"file:{old}?mode=ro", uri=True, timeout=30.0)
        try:
            rows = conn.execute(
                "SELECT key, function, args, created, compute_s, fingerprint FROM entries"
            ).fetchall()
        finally:
            conn.close()
    except sqlite3.Error:
        return None
    items = [
        (str(key), entry_meta(str(fn), str(args), str(fp), float(created), float(seconds)))
        for key, fn, args, created, seconds, fp in rows
    ]
    imported = int(setter(items))
    with contextlib.suppress(OSError):  # another process may have renamed it first
        os.replace(old, old.with_name(OLD_INDEX + IMPORTED_SUFFIX))
        for suffix in ("-wal", "-shm"):
            with contextlib.suppress(OSError):
                os.unlink(str(old) + suffix)
    return imported
