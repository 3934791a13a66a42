"""The memo index: what each stored entry is (which function, which arguments), per store dir.

A store only knows opaque keys and bytes. To clear one function's entries, list the cache by
function, report usage across processes, or say *which* call was evicted, memo keeps a small
SQLite file next to the store's data (``memo-index.sqlite``). It is metadata only: losing it
loses no cached value (an entry found in the store but not here is recovered and re-indexed, and
an index row whose entry vanished from the store is an orphan that ``prune`` drops).

Writes made on the hot path (a miss records its entry) go through a background thread so a miss
costs no SQLite transaction; ``flush()`` waits for them. Many processes share one file (WAL).
"""

from __future__ import annotations

import atexit
import collections
import contextlib
import os
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reckon.memo.log import logger
from reckon.memo.report import FunctionStats

INDEX_FILENAME = "memo-index.sqlite"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    key TEXT PRIMARY KEY,
    function TEXT NOT NULL,
    args TEXT NOT NULL,
    created REAL NOT NULL,
    compute_s REAL NOT NULL,
    size INTEGER NOT NULL,
    fingerprint TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS entries_function ON entries(function);
CREATE TABLE IF NOT EXISTS functions (
    name TEXT PRIMARY KEY,
    fingerprint TEXT NOT NULL,
    seen REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS stats (
    name TEXT PRIMARY KEY,
    hits INTEGER NOT NULL,
    misses INTEGER NOT NULL,
    compute_s REAL NOT NULL,
    saved_s REAL NOT NULL,
    updated REAL NOT NULL
);
"""


@dataclass(frozen=True)
class EntryRow:
    """One indexed entry."""

    key: str
    function: str
    args: str
    created: float
    compute_seconds: float
    size: int
    fingerprint: str


_DELETE = "DELETE FROM entries WHERE key = ?"

#: How long the writer lets operations pile up before doing them in bulk.
COALESCE_SECONDS = 0.02
#: Most keys of one function version loaded up front to spare its hits the orphan check.
KNOWN_KEYS_LIMIT = 20_000
_live: weakref.WeakSet[MemoIndex] = weakref.WeakSet()


class MemoIndex:
    """SQLite metadata beside a store; ``path=None`` keeps it in memory for this process."""

    def __init__(self, path: str | os.PathLike[str] | None) -> None:
        self.path = Path(path) if path is not None else None
        self._lock = threading.RLock()
        self._conn: sqlite3.Connection | None = None
        self._ops: collections.deque[tuple[Any, ...]] = collections.deque()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        #: A second connection for :meth:`indexed`, so a miss never waits behind the writer.
        self._reader: sqlite3.Connection | None = None
        self._read_lock = threading.Lock()
        #: Keys whose queued deletes are not committed yet (key -> how many; under _read_lock).
        self._deleting: dict[str, int] = {}
        _live.add(self)

    # -- connection -------------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        conn = self._conn
        if conn is None:
            conn = self._conn = self._open()
        return conn

    def _open(self) -> sqlite3.Connection:
        if self.path is None:
            target = ":memory:"
        else:
            self.path.mkdir(parents=True, exist_ok=True)
            target = str(self.path / INDEX_FILENAME)
        conn = sqlite3.connect(target, timeout=30.0, isolation_level=None, check_same_thread=False)
        if self.path is not None:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
        conn.executescript(_SCHEMA)
        return conn

    def _execute(self, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        with self._lock:
            try:
                return self._connect().execute(sql, params).fetchall()
            except sqlite3.Error as exc:
                logger.warning("memo index %s: %s failed: %s", self.path, sql.split()[0], exc)
                return []

    def _after_fork(self) -> None:
        # The parent's connection and writer thread do not exist in a forked child.
        self._lock = threading.RLock()
        self._conn = None
        self._ops = collections.deque()
        self._wake = threading.Event()
        self._thread = None
        self._reader = None
        self._read_lock = threading.Lock()
        self._deleting = {}

    # -- background work --------------------------------------------------------------------
    #
    # Operations go into a deque (an append is all the caller pays); the writer thread wakes on
    # the first one, lets more accumulate for a moment, then does them in bulk: one SELECT for
    # every pending check, one transaction for every pending write. This keeps the callers'
    # hot path free of locks, SQLite and thread switches.

    def _push(self, op: tuple[Any, ...]) -> None:
        self._ops.append(op)
        if self._thread is None:
            self._start_writer()
        if not self._wake.is_set():
            self._wake.set()

    def _start_writer(self) -> None:
        with self._lock:
            if self._thread is None:
                thread = threading.Thread(
                    target=self._writer, name="reckon-memo-index", daemon=True
                )
                thread.start()
                self._thread = thread

    def _submit(self, sql: str, params: tuple[Any, ...]) -> None:
        self._push(("sql", sql, params))

    def call_soon(self, fn: Any) -> None:
        """Run ``fn()`` on the writer thread, after the writes queued before it."""
        self._push(("call", fn))

    def check_soon(
        self,
        key: str,
        if_missing: Callable[[], None] | None = None,
        if_present: Callable[[], None] | None = None,
    ) -> None:
        """Look ``key`` up in the background (before writes queued with it) and call back."""
        self._push(("check", key, if_missing, if_present))

    def _writer(self) -> None:
        ops = self._ops
        wake = self._wake
        while True:
            wake.wait()
            time.sleep(COALESCE_SECONDS)
            wake.clear()
            batch: list[tuple[Any, ...]] = []
            while ops:
                batch.append(ops.popleft())
            if batch and not self._run_batch(batch):
                return

    def _run_batch(self, batch: list[tuple[Any, ...]]) -> bool:
        checks = [op for op in batch if op[0] == "check"]
        if checks:
            self._run_checks(checks)
        writes = [(op[1], op[2]) for op in batch if op[0] == "sql"]
        if writes:
            self._write_batch(writes)
            if self._deleting:
                self._deleted(batch)
        keep_running = True
        for op in batch:
            kind = op[0]
            if kind == "call":
                self._run_callable(op[1])
            elif kind == "mark":
                op[1].set()
            elif kind == "stop":
                keep_running = False
        return keep_running

    def _run_checks(self, checks: list[tuple[Any, ...]]) -> None:
        keys = list({op[1] for op in checks})
        present: set[str] = set()
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            marks = ",".join("?" * len(chunk))
            rows = self._execute(f"SELECT key FROM entries WHERE key IN ({marks})", tuple(chunk))
            present.update(r[0] for r in rows)
        for _kind, key, if_missing, if_present in checks:
            callback = if_present if key in present else if_missing
            if callback is not None:
                self._run_callable(callback)

    def _run_callable(self, fn: Any) -> None:
        try:
            fn()
        except Exception:
            logger.warning("memo index %s: background task failed", self.path, exc_info=True)

    def _write_batch(self, batch: list[tuple[str, tuple[Any, ...]]]) -> None:
        with self._lock:
            try:
                conn = self._connect()
                conn.execute("BEGIN IMMEDIATE")
                try:
                    for sql, params in batch:
                        conn.execute(sql, params)
                    conn.execute("COMMIT")
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
            except sqlite3.Error as exc:
                logger.warning(
                    "memo index %s: write of %d rows failed: %s", self.path, len(batch), exc
                )

    def flush(self) -> None:
        """Wait until every queued operation is done."""
        thread = self._thread
        if thread is None or not thread.is_alive() or thread is threading.current_thread():
            return
        done = threading.Event()
        self._push(("mark", done))
        done.wait(timeout=60)

    def close(self) -> None:
        with self._lock:
            thread = self._thread
        if thread is not None and thread.is_alive():
            self._push(("stop",))
            thread.join(timeout=10)
        with self._lock:
            self._thread = None
            if self._conn is not None:
                self._conn.close()
                self._conn = None
        with self._read_lock:
            if self._reader is not None:
                self._reader.close()
                self._reader = None

    # -- entries ----------------------------------------------------------------------------

    _INSERT = "INSERT OR REPLACE INTO entries VALUES (?, ?, ?, ?, ?, ?, ?)"

    @staticmethod
    def _row_params(row: EntryRow) -> tuple[Any, ...]:
        return (
            row.key,
            row.function,
            row.args,
            row.created,
            row.compute_seconds,
            row.size,
            row.fingerprint,
        )

    def record_entry(self, row: EntryRow) -> None:
        """Index an entry (in the background)."""
        self._submit(self._INSERT, self._row_params(row))

    def record_entry_now(self, row: EntryRow) -> None:
        """Index an entry before returning (for callbacks already on the writer thread)."""
        self._write_batch([(self._INSERT, self._row_params(row))])

    def delete_entry(self, key: str) -> None:
        """Drop the row of ``key`` (in the background; :meth:`indexed` says False at once)."""
        with self._read_lock:
            deleting = self._deleting
            deleting[key] = deleting.get(key, 0) + 1
        self._submit(_DELETE, (key,))

    def _deleted(self, batch: list[tuple[Any, ...]]) -> None:
        """The queued deletes of ``batch`` are committed (or failed): forget them."""
        with self._read_lock:
            deleting = self._deleting
            for op in batch:
                if op[0] == "sql" and op[1] is _DELETE:
                    key = op[2][0]
                    left = deleting.get(key, 1) - 1
                    if left > 0:
                        deleting[key] = left
                    else:
                        deleting.pop(key, None)

    def indexed(self, key: str) -> bool:
        """Whether the index lists ``key`` now, read at once (not queued behind the writer).

        The miss path asks this while it holds the store's lease, right after the store said the
        value is absent, so "indexed" means the index listed the key when its value was missing,
        not later, when another process may have stored and indexed it meanwhile. The read uses
        a connection of its own: in WAL mode it never waits for another process's write.
        """
        if key in self._deleting:
            return False
        if self.path is None:  # in memory: one database, reached through the one connection
            return bool(self._execute("SELECT 1 FROM entries WHERE key = ?", (key,)))
        with self._read_lock:
            try:
                conn = self._reader
                if conn is None:
                    conn = self._reader = self._open()
                row = conn.execute("SELECT 1 FROM entries WHERE key = ?", (key,)).fetchone()
            except sqlite3.Error as exc:
                logger.warning("memo index %s: lookup failed: %s", self.path, exc)
                return False
        return row is not None

    def delete_entries_now(self, keys: list[str]) -> None:
        """Drop index rows before returning (after the writes queued before)."""
        self.flush()
        if keys:
            self._write_batch([("DELETE FROM entries WHERE key = ?", (k,)) for k in keys])

    def entry(self, key: str) -> EntryRow | None:
        rows = self._execute("SELECT * FROM entries WHERE key = ?", (key,))
        return EntryRow(*rows[0]) if rows else None

    def entries(self, function: str | None = None) -> list[EntryRow]:
        self.flush()
        if function is None:
            rows = self._execute("SELECT * FROM entries ORDER BY function, created")
        else:
            rows = self._execute(
                "SELECT * FROM entries WHERE function = ? ORDER BY created", (function,)
            )
        return [EntryRow(*r) for r in rows]

    def stale_entries(self, function: str | None = None) -> list[EntryRow]:
        """Entries made by another code version than their function's latest (by fingerprint)."""
        self.flush()
        sql = (
            "SELECT e.* FROM entries e JOIN functions f ON e.function = f.name "
            "WHERE e.fingerprint != f.fingerprint"
        )
        if function is None:
            rows = self._execute(sql + " ORDER BY e.function, e.created")
        else:
            rows = self._execute(sql + " AND e.function = ? ORDER BY e.created", (function,))
        return [EntryRow(*r) for r in rows]

    def keys_of(self, function: str) -> list[str]:
        self.flush()
        return [
            r[0] for r in self._execute("SELECT key FROM entries WHERE function = ?", (function,))
        ]

    def functions(self) -> list[str]:
        self.flush()
        rows = self._execute(
            "SELECT name FROM functions UNION SELECT function FROM entries "
            "UNION SELECT name FROM stats ORDER BY 1"
        )
        return [r[0] for r in rows]

    # -- fingerprints -----------------------------------------------------------------------

    def swap_fingerprint(
        self, function: str, fingerprint: str, keys: set[str] | None = None
    ) -> str | None:
        """Record ``fingerprint`` as the function's latest; return the previous one, if any.

        With ``keys``, also add to it the indexed keys of this function and fingerprint (the only
        entries a call can hit), when there are at most :data:`KNOWN_KEYS_LIMIT` of them: a hit
        on one of those needs no orphan check. The keys are read before the write transaction,
        so other processes' writers never wait for that read.
        """
        with self._lock:
            try:
                conn = self._connect()
                if keys is not None:
                    found = conn.execute(
                        "SELECT key FROM entries WHERE function = ? AND fingerprint = ? LIMIT ?",
                        (function, fingerprint, KNOWN_KEYS_LIMIT + 1),
                    ).fetchall()
                    if len(found) <= KNOWN_KEYS_LIMIT:
                        keys.update(r[0] for r in found)
                conn.execute("BEGIN IMMEDIATE")
                try:
                    row = conn.execute(
                        "SELECT fingerprint FROM functions WHERE name = ?", (function,)
                    ).fetchone()
                    conn.execute(
                        "INSERT OR REPLACE INTO functions VALUES (?, ?, ?)",
                        (function, fingerprint, time.time()),
                    )
                    conn.execute("COMMIT")
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
            except sqlite3.Error as exc:
                logger.warning("memo index %s: fingerprint record failed: %s", self.path, exc)
                return None
        return None if row is None else str(row[0])

    # -- stats ------------------------------------------------------------------------------

    def add_stats(self, delta: FunctionStats) -> None:
        """Add one process's counters to the persistent totals (synchronously: used at exit)."""
        with self._lock:
            try:
                conn = self._connect()
                conn.execute("BEGIN IMMEDIATE")
                try:
                    conn.execute(
                        "INSERT INTO stats VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(name) DO UPDATE "
                        "SET hits = hits + excluded.hits, misses = misses + excluded.misses, "
                        "compute_s = compute_s + excluded.compute_s, "
                        "saved_s = saved_s + excluded.saved_s, updated = excluded.updated",
                        (
                            delta.name,
                            delta.hits,
                            delta.misses,
                            delta.compute_seconds,
                            delta.saved_seconds,
                            time.time(),
                        ),
                    )
                    conn.execute("COMMIT")
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
            except sqlite3.Error as exc:
                logger.warning("memo index %s: stats update failed: %s", self.path, exc)

    def stats(self) -> list[FunctionStats]:
        rows = self._execute("SELECT name, hits, misses, compute_s, saved_s FROM stats ORDER BY 1")
        return [FunctionStats(*r) for r in rows]

    def forget_function(self, function: str) -> None:
        """Drop a function's fingerprint record and totals (its entries go through delete)."""
        self._execute("DELETE FROM functions WHERE name = ?", (function,))
        self._execute("DELETE FROM stats WHERE name = ?", (function,))


def iter_live() -> Iterator[MemoIndex]:
    return iter(list(_live))


def _reset_after_fork() -> None:
    for index in list(_live):
        index._after_fork()


def _flush_all() -> None:
    for index in list(_live):
        with contextlib.suppress(Exception):
            index.flush()


os.register_at_fork(after_in_child=_reset_after_fork)
atexit.register(_flush_all)
