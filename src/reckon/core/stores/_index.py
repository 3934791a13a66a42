"""The SQLite index of a LocalStore: one row per key, reference-counted object files, usage.

SQLite does the hard parts: WAL mode lets readers run while one writer commits, transactions keep
the row of a key, the reference count of its object file and the usage totals consistent through a
crash (triggers maintain the counts, so no code path can forget one), and ``busy_timeout`` queues
writers from many processes.

Deleting an entry never unlinks a file inside the same transaction. When the last reference to a
file goes, its row moves to ``garbage``; after that transaction commits, :meth:`Index.collect`
unlinks the file while holding the write lock, so a writer putting the same content again (which
also places its file under the write lock) cannot lose its file to the collector.

A database that is not one (garbage bytes) or has another schema version is moved aside and
rebuilt from the headers of the object files, so entries survive the loss of their index.
"""

from __future__ import annotations

import collections
import contextlib
import fcntl
import logging
import os
import sqlite3
import threading
import time
import weakref
from collections.abc import Iterator

from reckon.core.stores import _objects

log = logging.getLogger("reckon.core.store")

SCHEMA_VERSION = 4
INDEX_NAME = "index.sqlite3"
_CORRUPT_CODES = frozenset({11, 26})  # SQLITE_CORRUPT, SQLITE_NOTADB

_SCHEMA = """
CREATE TABLE stats (
    id INTEGER PRIMARY KEY CHECK (id = 0),
    entries INTEGER NOT NULL,
    bytes INTEGER NOT NULL,
    clock REAL NOT NULL
);
INSERT INTO stats VALUES (0, 0, 0, 0.0);
CREATE TABLE entries (
    key TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    tag BLOB,
    digest TEXT,
    value BLOB,
    access REAL NOT NULL,
    priority REAL NOT NULL,
    cost REAL NOT NULL,
    meta BLOB
);
CREATE INDEX entries_access ON entries (access);
CREATE INDEX entries_priority ON entries (priority, access);
CREATE INDEX entries_digest ON entries (digest) WHERE digest IS NOT NULL;
CREATE TABLE objects (
    digest TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    refs INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE garbage (digest TEXT PRIMARY KEY) WITHOUT ROWID;
CREATE TABLE hits (key TEXT NOT NULL, t REAL NOT NULL);

CREATE TRIGGER entries_insert AFTER INSERT ON entries BEGIN
    UPDATE stats SET entries = entries + 1,
        bytes = bytes + (CASE WHEN NEW.digest IS NULL THEN NEW.size ELSE 0 END);
    INSERT INTO objects (digest, size, refs) SELECT NEW.digest, NEW.size, 1
        WHERE NEW.digest IS NOT NULL
        ON CONFLICT (digest) DO UPDATE SET refs = refs + 1;
    DELETE FROM garbage WHERE NEW.digest IS NOT NULL AND digest = NEW.digest;
END;
CREATE TRIGGER entries_delete AFTER DELETE ON entries BEGIN
    UPDATE stats SET entries = entries - 1,
        bytes = bytes - (CASE WHEN OLD.digest IS NULL THEN OLD.size ELSE 0 END);
    UPDATE objects SET refs = refs - 1 WHERE OLD.digest IS NOT NULL AND digest = OLD.digest;
END;
CREATE TRIGGER objects_insert AFTER INSERT ON objects BEGIN
    UPDATE stats SET bytes = bytes + NEW.size;
END;
CREATE TRIGGER objects_unreferenced AFTER UPDATE OF refs ON objects WHEN NEW.refs <= 0 BEGIN
    DELETE FROM objects WHERE digest = NEW.digest;
    INSERT OR IGNORE INTO garbage (digest) VALUES (NEW.digest);
END;
CREATE TRIGGER objects_delete AFTER DELETE ON objects BEGIN
    UPDATE stats SET bytes = bytes - OLD.size;
END;
"""


_SEALS = """
CREATE TABLE IF NOT EXISTS seals (key TEXT PRIMARY KEY, seal BLOB NOT NULL) WITHOUT ROWID;
CREATE TRIGGER IF NOT EXISTS seals_gone AFTER DELETE ON entries BEGIN
    DELETE FROM seals WHERE key = OLD.key;
END;
"""


def _add_seals(conn: sqlite3.Connection) -> None:
    """The table of seals (see ``_seals``), added to indexes made before it (the schema version
    stays: a reckon that does not know seals ignores them). A seal goes with its entry."""
    if conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'seals_gone'").fetchone() is None:
        with contextlib.suppress(sqlite3.OperationalError):  # another process added it first
            conn.executescript(_SEALS)


def _add_meta_column(conn: sqlite3.Connection) -> None:
    """Indexes made before entries had metadata gain its column (NULL: no metadata). The schema
    version stays: readers and writers that predate the column keep working beside it."""
    columns = {row[1] for row in conn.execute("PRAGMA table_info(entries)")}
    if "meta" not in columns:
        with contextlib.suppress(sqlite3.OperationalError):  # another process added it first
            conn.execute("ALTER TABLE entries ADD COLUMN meta BLOB")


class _Conn(sqlite3.Connection):
    """A connection that can be weakly referenced (the base type cannot): a thread's connection
    is closed when the thread ends, instead of leaking with its file descriptors."""


_generation = [0]
_indexes: weakref.WeakSet[Index] = weakref.WeakSet()
# Connections inherited through fork must never be used or closed by the child (closing one could
# touch the parent's locks and WAL, and the child frees the other threads' locals): they are held
# across the fork and parked in ``_abandoned`` for the life of the child.
_fork_guard: list[sqlite3.Connection] = []
_abandoned: list[sqlite3.Connection] = []


def _before_fork() -> None:
    _fork_guard[:] = [conn for index in list(_indexes) for conn in index.connections()]


def _after_fork_in_parent() -> None:
    _fork_guard.clear()


def _after_fork_in_child() -> None:
    _generation[0] += 1
    _abandoned.extend(_fork_guard)
    _fork_guard.clear()
    for index in list(_indexes):
        index._lock = threading.Lock()  # another thread may have held it at the fork
        index._token = object()
        index._idle = collections.deque()  # the parent's idle connections are in _abandoned


os.register_at_fork(
    before=_before_fork, after_in_parent=_after_fork_in_parent, after_in_child=_after_fork_in_child
)


def is_corruption(exc: BaseException) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    return isinstance(exc, sqlite3.DatabaseError) and (
        code in _CORRUPT_CODES or (code is None and "malformed" in str(exc))
    )


_CHECK_EVERY = 256  # uses of a thread's connection between looks at the clock
IDLE_MAX = 4  # connections of ended threads kept per index for the next new thread


class _Idle:
    """A connection whose thread ended, kept for the next new thread of this process, with what
    decides whether it may still be used (the same rules as a live thread's connection)."""

    __slots__ = ("conn", "cursor", "gen", "ino", "pid", "token")

    def __init__(
        self, conn: sqlite3.Connection, cursor: sqlite3.Cursor, token: object, gen: int, ino: int
    ) -> None:
        self.conn = conn
        self.cursor = cursor
        self.token = token
        self.gen = gen
        self.ino = ino
        self.pid = os.getpid()


def _park(index_ref: weakref.ref[Index], idle: _Idle) -> None:
    """Called when a thread's state is freed (its thread ended, or the state was replaced): keep
    its connection for the next new thread if the index still owns it, it is this process's and
    the index's current one, no transaction is open on it, and the idle pool has room. Otherwise
    it is left to be freed, which closes it (or, if inherited through fork, to ``_abandoned``).

    Runs wherever the state happens to be freed, possibly inside the garbage collector of a
    thread that holds the index's lock: it never waits for the lock (if busy, the connection is
    not kept). Taking one from the pool needs no lock: a deque's pop is atomic."""
    index = index_ref()
    if index is None or idle.pid != os.getpid() or idle.gen != _generation[0]:
        return
    lock = index._lock
    if not lock.acquire(blocking=False):
        return
    try:
        if not index._owns(idle) or len(index._idle) >= IDLE_MAX:
            return
        with contextlib.suppress(sqlite3.Error):  # a closed connection is not worth keeping
            idle.cursor.close()  # here, by the thread that used it: a half-read SELECT lets go
            if not idle.conn.in_transaction:
                index._idle.append(idle)
    finally:
        lock.release()


class _ThreadConn:
    """One thread's connection, its reusable cursor, and what tells when to replace them. When
    the state is freed with its thread, ``_park`` offers the connection to the idle pool."""

    __slots__ = ("__weakref__", "conn", "countdown", "cursor", "gen", "ino", "next_check", "token")

    def __init__(self, index: Index, conn: sqlite3.Connection, ino: int) -> None:
        self.conn = conn
        self.cursor = conn.cursor()
        self.token = index._token
        self.gen = _generation[0]
        self.ino = ino
        self.countdown = _CHECK_EVERY
        self.next_check = time.monotonic() + 1.0
        parker = weakref.finalize(
            self, _park, weakref.ref(index), _Idle(conn, self.cursor, self.token, self.gen, ino)
        )
        parker.atexit = False


class Index:
    """Per-thread connections to one index file, reopened after fork or after a rebuild.

    A thread's connection outlives its thread in a small idle pool (``IDLE_MAX``): thread pools
    that replace their threads (Dask's, when a task secedes to wait) would otherwise pay for a
    new connection per thread (~0.3-3 ms: connect, PRAGMAs, statements prepared again)."""

    def __init__(self, root: str, objects_dir: str, *, fsync: bool) -> None:
        self.root = root
        self.path = os.path.join(root, INDEX_NAME)
        self.objects_dir = objects_dir
        self._synchronous = "FULL" if fsync else "NORMAL"
        self._local = threading.local()
        self._lock = threading.Lock()
        self._conns: weakref.WeakKeyDictionary[_Conn, int] = weakref.WeakKeyDictionary()
        self._idle: collections.deque[_Idle] = collections.deque()
        self.opened = 0  # connections opened so far (those reused from ended threads not counted)
        self._token = object()  # replaced by a rebuild or a fork: every thread reconnects
        self.open()
        _indexes.add(self)
        # The opening thread's connection now, not on its first read: a store is mostly used by
        # the thread that opened it, and that first read is usually a request someone waits for
        # (a fresh process's first hit would otherwise pay for connecting, ~0.3-3 ms).
        self._thread_state()

    # -- connections ---------------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self.path,
            timeout=60.0,
            isolation_level=None,
            check_same_thread=False,
            cached_statements=64,
            factory=_Conn,
        )
        conn.execute(f"PRAGMA synchronous={self._synchronous}")
        conn.execute("PRAGMA temp_store=MEMORY")
        conn.execute("PRAGMA mmap_size=67108864")  # reads of hot pages skip a syscall each
        with self._lock:
            self._conns[conn] = _generation[0]
            self.opened += 1
        return conn

    def _owns(self, idle: _Idle) -> bool:
        """Whether ``idle``'s connection is still one of this index's current ones (not from
        before a rebuild or a fork, not dropped or closed since)."""
        return idle.token is self._token and self._conns.get(idle.conn) == idle.gen  # type: ignore[call-overload]

    def _reuse(self, ino: int) -> sqlite3.Connection | None:
        """An idle connection of an ended thread, if one is still valid for the file at ``ino``
        (a popped connection belongs to this thread alone: no other thread can pop it too)."""
        while True:
            try:
                idle = self._idle.pop()
            except IndexError:
                return None
            if idle.pid != os.getpid() or idle.gen != _generation[0]:
                _abandoned.append(idle.conn)  # inherited through fork: never touch it
            elif idle.ino != ino or not self._owns(idle):
                self._drop(idle.conn)  # the index was rebuilt, replaced or closed since
            else:
                return idle.conn

    def connections(self) -> list[sqlite3.Connection]:
        with self._lock:
            return list(self._conns.keys())

    def conn(self) -> sqlite3.Connection:
        """This thread's connection; a new one after fork, or when the index file was replaced."""
        return self._thread_state().conn

    def cursor(self) -> sqlite3.Cursor:
        """This thread's reusable cursor (for the hot read path: no cursor made per call)."""
        return self._thread_state().cursor

    def _thread_state(self) -> _ThreadConn:
        state: _ThreadConn | None = getattr(self._local, "state", None)
        if state is not None and state.token is self._token:
            state.countdown -= 1
            if state.countdown > 0:
                return state
        return self._refresh(state)

    def _refresh(self, state: _ThreadConn | None) -> _ThreadConn:
        if state is not None:
            if state.gen != _generation[0]:
                _abandoned.append(state.conn)  # inherited through fork: never touch it
            elif state.token is not self._token:
                self._drop(state.conn)  # the index was rebuilt under this thread's feet
            else:  # every _CHECK_EVERY uses, and at most once a second: was the file replaced?
                state.countdown = _CHECK_EVERY
                now = time.monotonic()
                if now < state.next_check:
                    return state
                state.next_check = now + 1.0
                if self._current_ino() == state.ino:
                    return state
                self._drop(state.conn)
        ino = self._current_ino()
        conn = self._reuse(ino)
        if conn is None:
            conn = self._connect()
            ino = self._current_ino()
        state = _ThreadConn(self, conn, ino)
        self._local.state = state
        return state

    def _current_ino(self) -> int:
        try:
            return os.stat(self.path).st_ino
        except OSError:
            return -1

    def _drop(self, conn: sqlite3.Connection) -> None:
        with self._lock:
            self._conns.pop(conn, None)  # type: ignore[call-overload]
        with contextlib.suppress(sqlite3.Error):
            conn.close()

    def reset_thread(self) -> None:
        """Forget this thread's connection (after an error that may have left it unusable)."""
        state: _ThreadConn | None = getattr(self._local, "state", None)
        if state is not None:
            self._local.state = None
            if state.gen == _generation[0]:
                self._drop(state.conn)

    def close(self) -> None:
        with self._lock:
            conns = list(self._conns.items())
            self._conns = weakref.WeakKeyDictionary()
            self._idle.clear()
        for conn, gen in conns:
            if gen == _generation[0]:
                with contextlib.suppress(sqlite3.Error):
                    conn.close()
            else:
                _abandoned.append(conn)
        self._local = threading.local()

    @contextlib.contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """A write transaction (BEGIN IMMEDIATE: takes the write lock up front, waiting if busy)."""
        conn = self.conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    # -- opening, validating, rebuilding ---------------------------------------------------------

    @contextlib.contextmanager
    def _open_lock(self) -> Iterator[None]:
        fd = os.open(os.path.join(self.root, "index.lock"), os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def open(self) -> None:
        """Validate (creating when new) the index; move a bad one aside and rebuild it."""
        with self._open_lock():
            problem = self._check()
            if problem is not None:
                self._rebuild(problem)

    def recover(self, exc: BaseException) -> None:
        """Called when a statement reported corruption: rebuild unless someone already did."""
        self.reset_thread()
        with self._open_lock():
            problem = self._check(thorough=True)
            if problem is not None:
                self._rebuild(f"{problem} (after: {exc})")

    def _check(self, thorough: bool = False) -> str | None:
        try:
            conn = sqlite3.connect(self.path, timeout=60.0, isolation_level=None)
        except sqlite3.Error as exc:
            return f"cannot open: {exc}"
        try:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version == 0:
                tables = conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
                if tables:
                    return "unknown tables and no schema version"
                recovered = self._create(conn, recover=_objects.any_objects(self.objects_dir))
                _add_seals(conn)
                if recovered:
                    log.warning(
                        "store index %s was missing: %d entries recovered from object files",
                        self.path,
                        recovered,
                    )
                return None
            if version != SCHEMA_VERSION:
                return f"schema version {version}, this reckon reads {SCHEMA_VERSION}"
            if conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                conn.execute("PRAGMA journal_mode=WAL")
            _add_seals(conn)
            _add_meta_column(conn)
            conn.execute("SELECT entries, bytes, clock FROM stats WHERE id = 0").fetchone()
            conn.execute("SELECT key, size, tag, digest, access FROM entries LIMIT 1")
            conn.execute("SELECT key, t FROM hits LIMIT 1")
            if thorough:
                result = conn.execute("PRAGMA quick_check").fetchone()[0]
                if result != "ok":
                    return f"integrity check failed: {result}"
            return None
        except sqlite3.DatabaseError as exc:
            return f"unreadable: {exc}"
        finally:
            conn.close()

    def _rebuild(self, problem: str) -> None:
        stamp = f"{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}"
        aside = f"{self.path}.bad-{stamp}"
        log.warning(
            "store index %s is unusable (%s): moved to %s and rebuilt from object files",
            self.path,
            problem,
            aside,
        )
        for suffix in ("", "-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                os.replace(self.path + suffix, aside + suffix)
        self.reset_thread()
        self._token = object()
        while self._idle:  # connections of ended threads, to the file just moved aside
            with contextlib.suppress(IndexError):
                self._drop(self._idle.pop().conn)
        conn = sqlite3.connect(self.path, timeout=60.0, isolation_level=None)
        try:
            recovered = self._create(conn, recover=True)
        finally:
            conn.close()
        log.warning(
            "store index %s rebuilt: %d entries recovered from object files", self.path, recovered
        )

    def _create(self, conn: sqlite3.Connection, *, recover: bool) -> int:
        """Create the schema, recovering entries from object files, stamping the version: all in
        one transaction, so a crash in the middle leaves nothing half made."""
        latest: dict[str, tuple[float, _objects.Header]] = {}
        if recover:
            for _path, header, mtime in _objects.iter_objects(self.objects_dir):
                seen = latest.get(header.key)
                if seen is None or mtime > seen[0]:
                    latest[header.key] = (mtime, header)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.executescript(f"BEGIN IMMEDIATE;\n{_SCHEMA}")  # the transaction stays open
        try:
            for key, (mtime, header) in latest.items():
                conn.execute(
                    "INSERT INTO entries (key, size, tag, digest, value, access, priority,"
                    " cost) VALUES (?, ?, ?, ?, NULL, ?, 0.0, 0.0)",
                    (key, header.size, header.tag or None, header.digest.hex(), mtime),
                )
            conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            conn.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            raise
        return len(latest)

    # -- garbage -------------------------------------------------------------------------------

    def collect(self) -> int:
        """Unlink object files no entry references any more (their rows are in ``garbage``)."""
        conn = self.conn()
        if conn.execute("SELECT 1 FROM garbage LIMIT 1").fetchone() is None:
            return 0
        removed = 0
        with self.write() as wconn:
            rows = wconn.execute("SELECT digest FROM garbage").fetchall()
            for (digest,) in rows:
                if wconn.execute("SELECT 1 FROM objects WHERE digest = ?", (digest,)).fetchone():
                    continue
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(_objects.object_path(self.objects_dir, digest))
                    removed += 1
            wconn.execute("DELETE FROM garbage")
        return removed

    def sweep_orphans(self, min_age: float) -> int:
        """Unlink object files no row knows, older than ``min_age`` seconds: left by a writer
        killed after placing a file and before committing its row. Unknown names are left alone."""
        now = time.time()
        conn = self.conn()
        known = "SELECT 1 FROM objects WHERE digest = ?"
        candidates = [
            (path, digest)
            for path, digest, mtime in _objects.iter_object_names(self.objects_dir)
            if now - mtime >= min_age and conn.execute(known, (digest,)).fetchone() is None
        ]
        removed = 0
        if candidates:
            with self.write() as wconn:  # re-checked under the lock a put places files under
                for path, digest in candidates:
                    if wconn.execute(known, (digest,)).fetchone() is None:
                        with contextlib.suppress(FileNotFoundError):
                            os.unlink(path)
                            removed += 1
        if removed:
            log.info("store %s: removed %d orphaned object files", self.root, removed)
        return removed
