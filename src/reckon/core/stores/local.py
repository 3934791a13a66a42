"""LocalStore: a store in a local directory, shared safely by many threads and processes.

Layout of the directory::

    index.sqlite3     the SQLite index (WAL): one row per key; small values inline
    objects/ab/cd...  values above ``inline_threshold``, named by their xxh3-128 content hash
    objects/tmp/      files being written (renamed into place when complete)
    leases/           per-key lock files of :meth:`LocalStore.lease`

Why it is built this way:

* Equal values share one object file (content addressing plus a reference count kept by SQLite
  triggers), so two requests with equal results store the bytes once.
* An object file is complete before its row commits (temp file + rename), and every entry carries
  a signature of its key and value under the deployment's secret key (``signing``), checked on
  every read before the value is returned: a crash, a bit flip, or an entry written by someone
  without the key yields a miss, never a wrong or a forged value. A bad entry is removed and
  logged on the ``reckon.core.store`` logger.
* Values of ``mmap_threshold`` bytes or more come back as a memoryview over a memory map of their
  file (no copy), smaller file values as a memoryview over one read, inline values as bytes.
* With ``sync=False`` (the default) writes go through a background thread that commits them in
  batches: a put costs the caller a queue append. Reads see queued writes. ``flush()`` waits for
  the queue; it is flushed by ``close()``, at interpreter exit, when a multiprocessing child ends
  and before ``fork()``.
* An entry's metadata (see ``metadata``: a small signed JSON object, e.g. which memoized call
  it is) lives in its index row, written and removed with it; ``entries()`` lists it.
* Hits are remembered in memory and appended, in batches, to an unindexed table; they are folded
  into the indexed access times (LRU) and priorities (GDS) only when an eviction needs them. A hit
  costs one indexed SELECT and a signature check, never a write transaction of its own.
"""

from __future__ import annotations

import contextlib
import logging
import mmap
import os
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, Literal

from reckon.core.stores import _lease, _objects, _seals, urls
from reckon.core.stores import metadata as md
from reckon.core.stores._exit import ExitHook
from reckon.core.stores._index import Index, is_corruption
from reckon.core.stores._writer import DELETE, PUT, TOUCH, Op, Writer
from reckon.core.stores.base import StoreData, StoreUsage
from reckon.core.stores.signing import Rejections, Signer, check_outside, default_signer
from reckon.errors import StoreError

log = logging.getLogger("reckon.core.store")

Policy = Literal["lru", "gds"]

_GET = "SELECT size, tag, digest, value FROM entries WHERE key = ?"
_SEAL_GET = "SELECT seal FROM seals WHERE key = ?"
_SEAL_PUT = (  # only while the entry is the one verified (a seal goes with its entry)
    "INSERT OR REPLACE INTO seals (key, seal) SELECT ?, ?"
    " WHERE EXISTS (SELECT 1 FROM entries WHERE key = ? AND tag = ? AND digest = ?)"
)
_MAX_VERIFIED = 10_000  # mapped files remembered as verified by this process
_INSERT = (
    "INSERT INTO entries (key, size, tag, digest, value, access, priority, cost, meta)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
# Hits are appended to an unindexed table (cheap) and folded into the indexed access times and
# GDS priorities only when an eviction needs them, or when the table grows large.
_HIT = "INSERT INTO hits (key, t) VALUES (?, ?)"
_FOLD = (
    "UPDATE entries SET access = max(entries.access, h.t),"
    " priority = (SELECT clock FROM stats WHERE id = 0) + entries.cost / max(entries.size, 1)"
    " FROM (SELECT key, max(t) AS t FROM hits GROUP BY key) AS h WHERE entries.key = h.key"
)
_TOUCH_BATCH = 4096  # hits remembered in memory before the writer appends them
_FOLD_ROWS = 100_000  # hits table size that triggers a fold without an eviction
_SWEEP_EVERY = 86_400.0  # seconds between sweeps for orphaned object files
_MAX_FAILED = 10_000  # failed keys kept for flush() to report
_ONE_PASS = 8 << 20  # values this big are hashed while written (see _objects.write_temp_hashing)


_DEFAULTS: dict[str, object] = {
    "budget": 10 << 30,
    "policy": "lru",
    "sync": False,
    "fsync": False,
    "inline_threshold": 4096,
    "mmap_threshold": 1 << 20,
    "queue_bytes": 64 << 20,
}


def default_directory() -> str:
    """$RECKON_CACHE_DIR, else the per-user cache directory ($XDG_CACHE_HOME/reckon)."""
    env = os.environ.get("RECKON_CACHE_DIR")
    if env:
        return os.path.abspath(os.path.expanduser(env))
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(os.path.abspath(base), "reckon")


def _bytes_like(data: object) -> bytes | memoryview:
    if isinstance(data, bytes):
        return data
    try:
        view = memoryview(data)  # type: ignore[arg-type]
    except TypeError:
        raise StoreError(
            f"a store holds bytes; got {type(data).__name__}: encode the value first "
            "(Engine does this with its codec)"
        ) from None
    if not view.c_contiguous:
        return memoryview(view.tobytes())
    return view if view.ndim == 1 and view.format == "B" else view.cast("B")


def _pieces(data: list[object] | tuple[object, ...]) -> tuple[bytes | memoryview, ...]:
    """The pieces of a put, each as bytes or a 1-D byte view (validated, nothing copied)."""
    return tuple(_bytes_like(piece) for piece in data)


def _payload(op: Op) -> bytes | memoryview | None:
    """A queued put's value as one buffer (pieces are joined: reads of queued puts are rare)."""
    data = op.data
    if isinstance(data, tuple):
        return b"".join(data)
    return data


class _Put:
    """A put made ready outside the write lock: signed, its object file written."""

    __slots__ = (
        "_data",
        "cost",
        "digest",
        "key",
        "meta",
        "size",
        "stamp",
        "tag",
        "temp",
        "value",
    )

    def __init__(self, op: Op, inline_threshold: int, store: LocalStore) -> None:
        data = op.data
        assert data is not None
        self.key = op.key
        self.size = op.size
        self.cost = op.cost
        self.stamp = op.stamp
        self.meta = op.meta
        self.temp: str | None = None
        self._data = data
        self.tag: bytes = store._signer.sign(op.key, data)
        if self.size <= inline_threshold:
            value = _payload(op)
            assert value is not None
            self.digest: str | None = None
            self.value: bytes | memoryview | None = value
        elif self.size >= _ONE_PASS:
            # Large: hash while writing (one pass over memory). A value stored already is then
            # written for nothing, and its temp file dropped in _place (rare for large ones).
            self.value = None
            self.temp, digest = _objects.write_temp_hashing(
                store._objects_dir, op.key, data, self.size, store._fsync, self.tag
            )
            self.digest = digest.hex()
        else:
            digest = _objects.content_digest(data)
            self.digest = digest.hex()
            self.value = None
            final = _objects.object_path(store._objects_dir, self.digest)
            if not os.path.exists(final):
                self.temp = _objects.write_temp(
                    store._objects_dir, op.key, data, digest, self.tag, store._fsync, self.size
                )


class LocalStore:
    """A store in a local directory (see the module docstring for how and why)."""

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        budget: int | None = 10 << 30,
        policy: Policy = "lru",
        inline_threshold: int = 4096,
        sync: bool = False,
        on_evict: Callable[[str], None] | None = None,
        fsync: bool = False,
        mmap_threshold: int = 1 << 20,
        queue_bytes: int = 64 << 20,
        signer: Signer | None = None,
    ) -> None:
        if policy not in ("lru", "gds"):
            raise StoreError(f"unknown eviction policy {policy!r}: use 'lru' or 'gds'")
        if budget is not None and budget < 0:
            raise StoreError(f"budget must be a byte count >= 0 or None, got {budget}")
        if inline_threshold < 0 or mmap_threshold < 0 or queue_bytes <= 0:
            raise StoreError("inline_threshold and mmap_threshold must be >= 0, queue_bytes > 0")
        self.path = (
            os.path.abspath(os.path.expanduser(os.fspath(path)))
            if path is not None
            else default_directory()
        )
        self.budget = budget
        self.policy: Policy = policy
        self.inline_threshold = inline_threshold
        self.mmap_threshold = max(mmap_threshold, inline_threshold + 1)
        self.sync = sync
        self.on_evict = on_evict
        self._fsync = fsync
        self._objects_dir = os.path.join(self.path, "objects")
        self._leases_dir = os.path.join(self.path, "leases")
        self._prepare_directory()
        if signer is None:
            check_outside(self.path)
            signer = default_signer()
        self._signer = signer
        self.rejections = Rejections(self.path)
        try:
            self._index = Index(self.path, self._objects_dir, fsync=fsync)
        except (sqlite3.Error, OSError) as exc:
            raise StoreError(
                f"cannot open the store index in {self.path}: {exc}. Check that the directory is "
                "on a local filesystem you can write, or point RECKON_CACHE_DIR elsewhere"
            ) from exc
        self._touched: dict[str, float] = {}  # key -> time of its latest hit
        # key -> (tag, digest, file identity) of mapped values this process has verified
        self._verified: dict[str, tuple[bytes, str, _seals.Identity]] = {}
        self._touch_requested = False
        self._last_stamp = 0.0
        self._closed = False
        self._writer: Writer | None = None
        if not sync:
            self._writer = Writer(self._apply_safely, max_bytes=queue_bytes)
        self._cleaned = False
        self.unstored = 0  # puts that were not stored (disk full, I/O errors), over its life
        self._failed: list[str] = []  # their keys, since the last flush()
        self._failed_lock = threading.Lock()
        self._failed_logged = 0.0
        _open_stores.add(self)
        self.url = "file://" + self.path
        self.options = urls.non_default(
            {
                "budget": budget,
                "policy": policy,
                "sync": sync,
                "fsync": fsync,
                "inline_threshold": inline_threshold,
                "mmap_threshold": mmap_threshold,
                "queue_bytes": queue_bytes,
            },
            _DEFAULTS,
        )
        urls.remember(self)

    def __reduce__(self) -> tuple[object, ...]:
        """A store pickles as its URL and options: see ``urls``."""
        return (urls.reopen, (self.url, self.options))

    @property
    def closed(self) -> bool:
        return self._closed

    def _prepare_directory(self) -> None:
        hint = "pass a directory you can write, or set RECKON_CACHE_DIR to one"
        if os.path.exists(self.path) and not os.path.isdir(self.path):
            raise StoreError(f"store path {self.path} exists and is not a directory: {hint}")
        try:
            for d in (
                self.path,
                self._objects_dir,
                os.path.join(self._objects_dir, "tmp"),
                self._leases_dir,
            ):
                os.makedirs(d, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create store directory {self.path}: {exc}; {hint}") from exc
        if not os.access(self.path, os.W_OK | os.X_OK):
            raise StoreError(f"store directory {self.path} is not writable: {hint}")

    def __repr__(self) -> str:
        return f"LocalStore({self.path!r}, policy={self.policy!r}, sync={self.sync})"

    # -- reads ---------------------------------------------------------------------------------

    def get(self, key: str) -> bytes | memoryview | None:
        """The value of ``key``, or None (missing, corrupt or unreadable: never raised)."""
        if self._closed:
            self._check_open()
        writer = self._writer
        if writer is not None and writer.pending:
            op = writer.pending.get(key)
            if op is not None:
                return _payload(op) if op.kind == PUT else None
        try:
            row = self._index.cursor().execute(_GET, (key,)).fetchone()
        except sqlite3.Error as exc:
            self._db_error(exc, "get")
            return None
        if row is None:
            return None
        size, tag, digest, value = row
        data: bytes | memoryview | None
        if digest is None:
            if value is None or len(value) != size:
                self._drop_inline(key, tag, "inline value of the wrong length")
                return None
            if not self._signer.verify(key, value, tag):
                self._reject(key, tag)
                return None
            data = value
        else:
            data = self._read_object(key, digest, size, tag)
            if data is None:
                return None
        touched = self._touched
        touched[key] = time.time()
        if len(touched) >= _TOUCH_BATCH:
            self._hand_over_touches()
        return data

    def _read_object(
        self, key: str, digest: str, size: int, tag: bytes | None, retry: bool = True
    ) -> bytes | memoryview | None:
        path = _objects.object_path(self._objects_dir, digest)
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            if self._drop_object(key, digest, "object file missing") and retry:
                return self._read_object(key, digest, size, tag, retry=False)
            return None
        except OSError as exc:
            log.warning("store %s: cannot read %s for key %s: %s", self.path, path, key, exc)
            return None
        try:
            view: memoryview
            st = os.fstat(fd)
            length = st.st_size
            mapped = size >= self.mmap_threshold and _seals.private(st)
            if not mapped:
                # Small, or a file someone else could change under a map after the check (see
                # _seals): one read into private memory.
                if not size < length <= size + _objects.MAX_HEADER:
                    raise ValueError(f"{length} bytes on disk for a value of {size}")
                buf = os.pread(fd, length, 0)
                header = _objects.parse_header(buf)
                view = memoryview(buf)
            else:
                mm = mmap.mmap(fd, 0, access=mmap.ACCESS_READ)
                header = _objects.parse_header(mm)
                view = memoryview(mm)
        except (OSError, ValueError) as exc:  # ValueError: wrong length, or mmap of an empty file
            self._drop_object(key, digest, f"unreadable object file ({exc})")
            return None
        finally:
            os.close(fd)
        if header is None or header.size != size or header.digest.hex() != digest:
            self._drop_object(key, digest, "object file header invalid or truncated")
            return None
        if len(view) != header.offset + size:
            self._drop_object(key, digest, "object file truncated or extended")
            return None
        data = view[header.offset :]
        if not (
            self._sealed(key, tag, digest, st, data)
            if mapped
            else self._signer.verify(key, data, tag)
        ):
            self._reject(key, tag)
            return None
        return data

    def _sealed(
        self, key: str, tag: bytes | None, digest: str, st: os.stat_result, data: memoryview
    ) -> bool:
        """Whether a mapped value is authentic: by its seal when it has one for this very file
        (see ``_seals``), else by verifying it in full, after which the file is sealed."""
        if tag is None:
            return False
        ident = _seals.identity(st)
        if self._verified.get(key) == (tag, digest, ident):  # checked by this process already
            return True
        boot = _seals.boot_id()
        record = None if boot is None else _seals.record(key, tag, digest, ident, boot)
        if record is not None:
            try:
                row = self._index.cursor().execute(_SEAL_GET, (key,)).fetchone()
            except sqlite3.Error:
                row = None
            if row is not None and self._signer.check_seal(record, row[0]):
                self._remember(key, tag, digest, ident)
                return True
        if not self._signer.verify(key, data, tag):
            return False
        if record is not None and _seals.settled(st):
            self._remember(key, tag, digest, ident)
            try:
                with self._index.write() as conn:
                    conn.execute(_SEAL_PUT, (key, self._signer.seal(record), key, tag, digest))
            except sqlite3.Error as exc:
                self._db_error(exc, "sealing a verified file")
        return True

    def _remember(self, key: str, tag: bytes, digest: str, ident: _seals.Identity) -> None:
        verified = self._verified
        if len(verified) >= _MAX_VERIFIED:
            verified.clear()
        verified[key] = (tag, digest, ident)

    def _reject(self, key: str, tag: bytes | None) -> None:
        """An entry whose signature does not verify: drop it (only if unchanged meanwhile)."""
        try:
            with self._index.write() as conn:
                conn.execute("DELETE FROM entries WHERE key = ? AND tag IS ?", (key, tag))
        except sqlite3.Error as exc:
            self._db_error(exc, "removing an unauthenticated entry")
        self.rejections.report(key, self._signer.why_not(tag))
        self._collect()

    def contains(self, key: str) -> bool:
        self._check_open()
        writer = self._writer
        if writer is not None and writer.pending:
            op = writer.pending.get(key)
            if op is not None:
                return op.kind == PUT
        try:
            conn = self._index.conn()
            return (
                conn.execute("SELECT 1 FROM entries WHERE key = ?", (key,)).fetchone() is not None
            )
        except sqlite3.Error as exc:
            self._db_error(exc, "contains")
            return False

    def _pending_snapshot(self) -> dict[str, Op]:
        """The queued writes, copied *before* a listing reads the index: a write committed in
        between is then in the index, or still in the copy (which wins: it is the newer). Copied
        after, a write committed meanwhile would be in neither."""
        return dict(self._writer.pending) if self._writer is not None else {}

    def keys(self) -> Iterator[str]:
        """Every key, including queued puts; a snapshot taken when iteration starts."""
        self._check_open()
        pending = self._pending_snapshot()
        found: list[str] = []
        try:
            conn = self._index.conn()
            last = ""
            while True:
                rows = conn.execute(
                    "SELECT key FROM entries WHERE key > ? ORDER BY key LIMIT 1000", (last,)
                ).fetchall()
                if not rows:
                    break
                found.extend(r[0] for r in rows)
                last = rows[-1][0]
        except sqlite3.Error as exc:
            self._db_error(exc, "keys")
        if pending:
            present = set(found)
            found = [k for k in found if pending.get(k, None) is None or pending[k].kind == PUT]
            found.extend(k for k, op in pending.items() if op.kind == PUT and k not in present)
        return iter(found)

    # -- metadata (see ``metadata``) ----------------------------------------------------------

    keeps_metadata = True

    def metadata(self, key: str) -> dict[str, Any] | None:
        """The authenticated metadata ``key`` was put with, or None."""
        self._check_open()
        writer = self._writer
        if writer is not None and writer.pending:
            op = writer.pending.get(key)
            if op is not None:
                return md.decode(self._signer, key, op.meta) if op.kind == PUT else None
        try:
            row = (
                self._index.conn()
                .execute("SELECT meta FROM entries WHERE key = ?", (key,))
                .fetchone()
            )
        except sqlite3.Error as exc:
            self._db_error(exc, "metadata")
            return None
        return None if row is None else md.decode(self._signer, key, row[0])

    def set_metadata(self, items: Iterable[tuple[str, Mapping[str, Any]]]) -> int:
        """Attach metadata to entries stored without any (one transaction); returns how many
        took it. For descriptions carried over from elsewhere: entries that have metadata, or
        are absent, are left as they are (a put sets value and metadata together)."""
        self._check_open()
        rows = [(md.encode(self._signer, key, meta), key) for key, meta in items]
        if not rows:
            return 0
        self.flush()
        try:
            with self._index.write() as conn:
                return sum(
                    conn.execute(
                        "UPDATE entries SET meta = ? WHERE key = ? AND meta IS NULL", row
                    ).rowcount
                    for row in rows
                )
        except sqlite3.Error as exc:
            self._db_error(exc, "set_metadata")
            return 0

    def entries(self, prefix: str = "") -> Iterator[md.EntryInfo]:
        """Every entry whose key starts with ``prefix``: key, size and authenticated metadata
        (queued puts included; a snapshot taken when iteration starts)."""
        self._check_open()
        pending = self._pending_snapshot()
        found: dict[str, md.EntryInfo] = {}
        decode = md.decode
        signer = self._signer
        try:
            conn = self._index.conn()
            last = prefix
            first = True
            while True:
                rows = conn.execute(
                    "SELECT key, size, meta FROM entries WHERE key >= ? AND key > ?"
                    " ORDER BY key LIMIT 1000",
                    (prefix, "" if first else last),
                ).fetchall()
                first = False
                rows = [r for r in rows if r[0].startswith(prefix)]
                if not rows:
                    break
                for key, size, raw in rows:
                    found[key] = md.EntryInfo(key, size, decode(signer, key, raw))
                last = rows[-1][0]
        except sqlite3.Error as exc:
            self._db_error(exc, "entries")
        for key, op in pending.items():
            if not key.startswith(prefix):
                continue
            if op.kind == PUT:
                found[key] = md.EntryInfo(key, op.size, decode(signer, key, op.meta))
            else:
                found.pop(key, None)
        return iter(sorted(found.values(), key=lambda e: e.key))

    def usage(self) -> StoreUsage:
        """Committed entries and bytes (queued writes count once flushed)."""
        self._check_open()
        try:
            row = (
                self._index.conn()
                .execute("SELECT entries, bytes FROM stats WHERE id = 0")
                .fetchone()
            )
        except sqlite3.Error as exc:
            self._db_error(exc, "usage")
            row = None
        entries, nbytes = row if row is not None else (0, 0)
        return StoreUsage(int(entries), int(nbytes), self.budget)

    # -- writes --------------------------------------------------------------------------------

    def put(
        self,
        key: str,
        data: StoreData,
        *,
        cost: float = 0.0,
        meta: Mapping[str, Any] | None = None,
    ) -> None:
        """Store ``data`` (one buffer, or a list/tuple of pieces of one value) under ``key``,
        with ``meta`` (a small JSON object, see ``metadata``) beside it when given.

        Pieces are written straight into the object file (one writev; the checksum is computed
        piece by piece), or joined when the value is small enough to live inline. With
        sync=False the caller must not mutate a buffer it passed until ``flush()``: the queue
        holds it by reference (no copy)."""
        self._check_open()
        if not isinstance(key, str) or not key:
            raise StoreError(f"store keys are non-empty strings (RequestId.disk_key), got {key!r}")
        if len(key) > 1024 and len(key.encode("utf-8")) > _objects.MAX_KEY:
            raise StoreError(
                f"store key of {len(key.encode('utf-8'))} bytes is too long (at most "
                f"{_objects.MAX_KEY}): use a digest such as RequestId.disk_key"
            )
        if isinstance(data, list | tuple):
            pieces = _pieces(data)
            size = sum(map(len, pieces))
            value: bytes | memoryview | tuple[bytes | memoryview, ...]
            if len(pieces) == 1:
                value = pieces[0]
            elif size <= self.inline_threshold:
                value = b"".join(pieces)  # small: one inline buffer
            else:
                value = pieces
            op = Op(PUT, key, value, float(cost), self._stamp(), size)
        else:
            op = Op(PUT, key, _bytes_like(data), float(cost), self._stamp())
        if meta is not None:
            op.meta = md.encode(self._signer, key, meta)
        if self.budget is not None and op.size > self.budget:
            log.info(
                "store %s: value of %d bytes for %s exceeds the budget of %d bytes; not stored",
                self.path,
                op.size,
                key,
                self.budget,
            )
            self.delete(key)
            if self._writer is None:
                raise StoreError(
                    f"value of {op.size} bytes for {key} not stored: it exceeds the store's "
                    f"budget of {self.budget} bytes (raise budget= to keep values this large)"
                )
            return
        if self._writer is not None:
            _at_exit.arm()
            self._writer.submit(op)
            return
        # sync: the caller learns whether the value is stored
        try:
            failed = self._apply([op])
        except Exception as exc:
            failed = [(op, exc)]
        if failed:
            self._write_failed(failed)
            cause = failed[0][1]
            raise StoreError(
                f"value for {key} not stored in {self.path}: {type(cause).__name__}: {cause}. "
                "Free space on the disk or give the store a budget that fits it"
            ) from cause

    def delete(self, key: str) -> bool:
        """Remove ``key``; True when it was present."""
        self._check_open()
        writer = self._writer
        if writer is not None:
            op = writer.pending.get(key)
            if op is not None:  # its newest write decides (a delete queued: gone already)
                existed = op.kind == PUT or (op.kind != DELETE and self._committed(key))
                writer.submit(Op(DELETE, key))
                return existed
        try:
            with self._index.write() as conn:
                existed = conn.execute("DELETE FROM entries WHERE key = ?", (key,)).rowcount > 0
            self._collect()
            return existed
        except sqlite3.Error as exc:
            self._db_error(exc, "delete")
            return False

    def _committed(self, key: str) -> bool:
        try:
            conn = self._index.conn()
            return (
                conn.execute("SELECT 1 FROM entries WHERE key = ?", (key,)).fetchone() is not None
            )
        except sqlite3.Error:
            return False

    def evict(self, target_bytes: int | None = None) -> int:
        """Evict entries until at most ``target_bytes`` (default: the budget) remain."""
        self._check_open()
        self.flush()
        target = self.budget if target_bytes is None else target_bytes
        if target is None:
            return 0
        evicted: list[str] = []
        try:
            with self._index.write() as conn:
                self._write_touches(conn)
                evicted = self._evict_locked(conn, max(0, target))
        except sqlite3.Error as exc:
            self._db_error(exc, "evict")
            return 0
        self._collect()
        self._notify_evicted(evicted)
        return len(evicted)

    def flush(self) -> list[str]:
        """Wait until every queued write is committed (durable unless the machine loses power
        and ``fsync`` is off). Returns the keys whose writes failed since the last flush (empty
        when every value is stored); ``unstored`` counts them over the store's life."""
        if self._writer is not None:
            self._writer.flush()
        with self._failed_lock:
            failed, self._failed = self._failed, []
        return failed

    def close(self) -> None:
        """Flush, persist access times, release connections. Idempotent."""
        if self._closed:
            return
        if self._writer is not None:
            self._writer.close()
        if self._touched:
            with contextlib.suppress(sqlite3.Error), self._index.write() as conn:
                self._write_touches(conn)
        self._closed = True
        self._index.close()
        _open_stores.discard(self)
        urls.forget(self)

    def __enter__(self) -> LocalStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def lease(
        self, key: str, timeout: float | None = None
    ) -> contextlib.AbstractContextManager[bool]:
        """Cross-process single flight for ``key``.

        Yields True when the caller should compute (and put) the value, False when another holder
        put it while this caller waited (read it with get). The lease is an OS file lock, so it
        ends when its holder dies, even by SIGKILL. Leaving the block flushes the holder's put, so
        the waiter sees it. When ``timeout`` passes first, yields True without the lease.
        """
        self._check_open()
        path = _lease.lock_path(self._leases_dir, key)

        def present() -> bool:
            return self.contains(key)

        return _lease.lease(path, timeout, present, lambda: self.settle(key))

    def settle(self, key: str) -> None:
        """Wait until a queued write of ``key`` is committed, so other processes see it (its
        failure, if it fails, is reported by ``flush`` as any other)."""
        if self._writer is not None and key in self._writer.pending:
            self._writer.flush()

    # -- the write path ------------------------------------------------------------------------

    def _stamp(self) -> float:
        now = time.time()
        if now <= self._last_stamp:
            now = self._last_stamp + 1e-6
        self._last_stamp = now
        return now

    def _hand_over_touches(self) -> None:
        if self._writer is not None:
            if not self._touch_requested:  # one request in the queue is enough
                self._touch_requested = self._writer.submit(Op(TOUCH, ""), wait=False)
        else:
            with contextlib.suppress(sqlite3.Error), self._index.write() as conn:
                self._write_touches(conn)

    def _write_touches(self, conn: sqlite3.Connection) -> None:
        if not self._touched:
            return
        touched, self._touched = self._touched, {}
        self._touch_requested = False
        conn.executemany(_HIT, list(touched.items()))
        last = conn.execute("SELECT max(rowid) FROM hits").fetchone()[0]
        if last is not None and last > _FOLD_ROWS:
            self._fold_hits(conn)

    @staticmethod
    def _fold_hits(conn: sqlite3.Connection) -> None:
        if conn.execute("SELECT 1 FROM hits LIMIT 1").fetchone() is not None:
            conn.execute(_FOLD)
            conn.execute("DELETE FROM hits")

    def _apply_safely(self, ops: list[Op]) -> None:
        """The writer's entry point: never raises. A failed write is recorded (``flush()``
        reports it, ``unstored`` counts it), and one failing op never takes the others of its
        batch with it: a batch that fails as a whole is applied again op by op."""
        try:
            failed = self._apply(ops)
        except Exception as exc:
            if isinstance(exc, sqlite3.Error):
                self._db_error(exc, f"write of {len(ops)} entries")
            if len(ops) == 1:
                failed = [(ops[0], exc)]
            else:
                failed = []
                for op in ops:
                    if op.kind == TOUCH:
                        continue
                    try:
                        failed.extend(self._apply([op]))
                    except Exception as one:
                        failed.append((op, one))
        if failed:
            self._write_failed(failed)

    def _write_failed(self, failed: list[tuple[Op, BaseException]]) -> None:
        puts = [op for op, _exc in failed if op.kind == PUT]
        if not puts:
            return
        with self._failed_lock:
            self.unstored += len(puts)
            room = _MAX_FAILED - len(self._failed)
            self._failed.extend(op.key for op in puts[: max(0, room)])
            now = time.monotonic()
            quiet = now - self._failed_logged < 10.0
            if not quiet:
                self._failed_logged = now
        if not quiet:  # at most one line per 10 s: a full disk must not flood the log
            exc = failed[0][1]
            log.warning(
                "store %s: %d value%s not stored (%s: %s); they are misses, not errors. "
                "%d not stored so far",
                self.path,
                len(puts),
                "" if len(puts) == 1 else "s",
                type(exc).__name__,
                exc,
                self.unstored,
            )

    def _apply(self, ops: list[Op]) -> list[tuple[Op, BaseException]]:
        """Commit ``ops`` in one transaction; returns the puts that could not be prepared (their
        file could not be written: they are left out, the others commit)."""
        if not self._cleaned:
            self._cleaned = True
            self._housekeeping()
        prepared: list[_Put | Op] = []
        failed: list[tuple[Op, BaseException]] = []
        try:
            for op in ops:
                if op.kind == PUT:
                    try:
                        prepared.append(_Put(op, self.inline_threshold, self))
                    except OSError as exc:
                        failed.append((op, exc))
                elif op.kind == DELETE:
                    prepared.append(op)
            evicted: list[str] = []
            with self._index.write() as conn:
                self._write_touches(conn)
                clock: float | None = None
                for item in prepared:
                    if isinstance(item, Op):
                        conn.execute("DELETE FROM entries WHERE key = ?", (item.key,))
                        continue
                    conn.execute("DELETE FROM entries WHERE key = ?", (item.key,))
                    if item.digest is not None:
                        self._place(conn, item)
                    if clock is None:
                        clock = float(
                            conn.execute("SELECT clock FROM stats WHERE id = 0").fetchone()[0]
                        )
                    conn.execute(
                        _INSERT,
                        (
                            item.key,
                            item.size,
                            item.tag,
                            item.digest,
                            item.value,
                            item.stamp,
                            clock + item.cost / max(item.size, 1),
                            item.cost,
                            item.meta,
                        ),
                    )
                if self.budget is not None:
                    evicted = self._evict_locked(conn, self.budget)
        finally:
            for item in prepared:
                if isinstance(item, _Put) and item.temp is not None:
                    with contextlib.suppress(OSError):
                        os.unlink(item.temp)
        self._collect()
        self._notify_evicted(evicted)
        return failed

    def _housekeeping(self) -> None:
        """Once per process (on its first write): remove temp files of dead writers; once a day
        per directory: remove object files orphaned by writers killed mid-put."""
        now = time.time()
        _objects.clean_temps(self._objects_dir, older_than=3600.0, now=now)
        stamp = os.path.join(self.path, "swept")
        try:
            due = now - os.stat(stamp).st_mtime > _SWEEP_EVERY
        except FileNotFoundError:
            due = True
        if due:
            with open(stamp, "a"):
                os.utime(stamp)
            try:
                self._index.sweep_orphans(min_age=3600.0)
            except sqlite3.Error as exc:
                self._db_error(exc, "orphan sweep")

    def _place(self, conn: sqlite3.Connection, item: _Put) -> None:
        """Under the write lock: make sure the object file of ``item`` is in place and sound."""
        assert item.digest is not None
        final = _objects.object_path(self._objects_dir, item.digest)
        known = conn.execute("SELECT 1 FROM objects WHERE digest = ?", (item.digest,)).fetchone()
        if known is not None and os.path.exists(final):
            return  # the same bytes are stored already: share them
        if item.temp is None:  # a leftover file with no row: do not trust it, write afresh
            item.temp = _objects.write_temp(
                self._objects_dir,
                item.key,
                item._data,
                bytes.fromhex(item.digest),
                item.tag,
                self._fsync,
            )
        _objects.place(item.temp, final, self._fsync)
        item.temp = None

    def _evict_locked(self, conn: sqlite3.Connection, target: int) -> list[str]:
        nbytes = conn.execute("SELECT bytes FROM stats WHERE id = 0").fetchone()[0]
        evicted: list[str] = []
        if nbytes <= target:
            return evicted
        self._fold_hits(conn)
        order = "access" if self.policy == "lru" else "priority, access"
        clock: float | None = None
        while nbytes > target:
            rows = conn.execute(
                f"SELECT key, priority FROM entries ORDER BY {order} LIMIT 64"
            ).fetchall()
            if not rows:
                break
            for key, priority in rows:
                conn.execute("DELETE FROM entries WHERE key = ?", (key,))
                evicted.append(key)
                clock = priority if clock is None else max(clock, priority)
                nbytes = conn.execute("SELECT bytes FROM stats WHERE id = 0").fetchone()[0]
                if nbytes <= target:
                    break
        if self.policy == "gds" and clock is not None:
            conn.execute("UPDATE stats SET clock = max(clock, ?) WHERE id = 0", (clock,))
        return evicted

    def _collect(self) -> None:
        try:
            self._index.collect()
        except sqlite3.Error as exc:
            self._db_error(exc, "garbage collection")

    def _notify_evicted(self, keys: list[str]) -> None:
        callback = self.on_evict
        if callback is None:
            return
        for key in keys:
            try:
                callback(key)
            except Exception:
                log.exception("store %s: on_evict callback failed for %s", self.path, key)

    # -- bad entries ---------------------------------------------------------------------------

    def _drop_inline(self, key: str, tag: bytes | None, reason: str) -> None:
        try:
            with self._index.write() as conn:
                gone = conn.execute(
                    "DELETE FROM entries WHERE key = ? AND digest IS NULL AND tag IS ?",
                    (key, tag),
                ).rowcount
        except sqlite3.Error as exc:
            self._db_error(exc, "removing a corrupt entry")
            return
        if gone:
            log.warning("store %s: dropped entry %s: %s", self.path, key, reason)

    def _drop_object(self, key: str, digest: str, reason: str) -> bool:
        """Remove every entry sharing a bad object file. True when the file has reappeared (a
        concurrent put of the same bytes) and the read should be retried."""
        final = _objects.object_path(self._objects_dir, digest)
        try:
            with self._index.write() as conn:
                if (
                    conn.execute("SELECT 1 FROM objects WHERE digest = ?", (digest,)).fetchone()
                    is None
                ):
                    return False  # deleted meanwhile: a plain miss, nothing is wrong
                if reason == "object file missing" and os.path.exists(final):
                    return True
                gone = conn.execute("DELETE FROM entries WHERE digest = ?", (digest,)).rowcount
        except sqlite3.Error as exc:
            self._db_error(exc, "removing a corrupt entry")
            return False
        log.warning(
            "store %s: dropped %d entr%s sharing object %s (read for %s): %s",
            self.path,
            gone,
            "y" if gone == 1 else "ies",
            digest,
            key,
            reason,
        )
        self._collect()
        return False

    def _db_error(self, exc: sqlite3.Error, what: str) -> None:
        if is_corruption(exc):
            log.warning("store %s: index corrupt during %s: %s", self.path, what, exc)
            try:
                self._index.recover(exc)
            except Exception as again:
                log.warning("store %s: rebuilding the index failed: %s", self.path, again)
        else:
            log.warning("store %s: %s failed: %s: %s", self.path, what, type(exc).__name__, exc)
            self._index.reset_thread()

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError(f"store {self.path} is closed; open a new LocalStore to use it")

    def _after_fork_in_child(self) -> None:
        self._touched = {}
        self._touch_requested = False
        if self._writer is not None:
            self._writer.after_fork_in_child()


_open_stores: weakref.WeakSet[LocalStore] = weakref.WeakSet()


def _flush_at_exit() -> None:
    for store in list(_open_stores):
        try:
            store.close()
        except Exception:
            log.exception("store %s: flush at exit failed", store.path)


_at_exit = ExitHook(_flush_at_exit, priority=100)


def _before_fork() -> None:
    # A child must see what its parent saw: queued writes reach disk before the fork (the child
    # starts with an empty queue; the parent's writer thread does not exist in it).
    for store in list(_open_stores):
        try:
            store.flush()
        except Exception:
            log.exception("store %s: flush before fork failed", store.path)


def _after_fork_in_child() -> None:
    for store in list(_open_stores):
        store._after_fork_in_child()


os.register_at_fork(before=_before_fork, after_in_child=_after_fork_in_child)
