"""A :class:`~reckon.core.Store` on any fsspec file system: S3, GCS, Azure, a local directory,
or fsspec's in-memory file system.

fsspec is not a core dependency: it is imported when an ObjectStore is created (``pip install
fsspec``, plus s3fs or gcsfs for those schemes), so ``@memoize(store=ObjectStore("s3://..."))``
works wherever fsspec does. Each entry is one object ``<root>/<key[:2]>/<key>``: a 45-byte
header (magic, length, the signature of key and value under the deployment's secret key, see
``signing``) and the value's bytes. Object stores publish an object
whole when its upload completes, so readers never see half a value; on a local file system the
object is written to a temporary name and renamed. A read whose header, length or signature does
not match is dropped and reported as a miss (never decoded), as every store must.

Eviction is least-recently-*written* (objects' modification times; object stores do not record
reads) down to the budget, checked after writes. The ``cost`` a put carries is not kept.

Every call has a deadline: on S3, ``timeout`` (read) and ``connect_timeout`` go to botocore,
with no retries, unless ``storage_options`` set ``config_kwargs`` themselves. A file system that
cannot be reached never fails a call: the store warns once per outage, answers misses at once,
and probes again every few seconds (see ``_outage``).

``lease(key)`` gives single flight across machines: the lease is an object
``<root>/leases/<key>.lease`` created only if absent (a conditional create: S3's
``If-None-Match: *``, ``O_EXCL`` on local files), rewritten by a heartbeat every ``lease_ttl/4``
seconds while its holder lives. A waiter looks for the value first at each of its looks, and
stops waiting the moment it is there; it reads the lease object at its first look, then every
``lease_ttl/8`` seconds at most, and when it sees it unchanged for ``lease_ttl`` seconds of its
own clock (no clocks are compared across machines) removes it and takes over. A holder leaves
its lease at once, but the lease object is removed in the background, in batches (one request
removes up to 1,000 on S3, see ``_release_later``): nobody waits for that removal, since the
value, written before it, is what ends every wait. It is removed no sooner than ``lease_ttl/16``
after the value written under it, which spares a holder a second look: a lease taken (one failed
look, one create) within that time of the look's start cannot have missed a value stored under a
lease meanwhile, whose lease object would still have been there to make the create fail. The
lease's token fences writes: a holder whose lease lapsed (paused, or cut off longer than
``lease_ttl``) reads the lease object before it writes the value and, finding it gone or another
holder's, does not write.

An entry's metadata (see ``metadata``) is a small object beside it, ``<key>.meta``, written with
the value (both requests at once on S3: a put waits for one round trip, not two) and removed with
it. A listing shows the metadata of values only: one whose value write failed is not listed.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import struct
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from reckon.core._waiting import Pause, waiting
from reckon.core.stores import metadata as md
from reckon.core.stores import urls
from reckon.core.stores._exit import ExitHook
from reckon.core.stores._machine import MachineLeases
from reckon.core.stores._outage import Outage
from reckon.core.stores._writer import DELETE, Op, Writer
from reckon.core.stores.base import StoreUsage
from reckon.core.stores.local import default_directory
from reckon.core.stores.signing import TAG_SIZE, Rejections, Signer, default_signer
from reckon.errors import ConfigurationError

__all__ = ["ObjectStore"]

log = logging.getLogger("reckon.core.store")

_MAGIC = b"RKF2"
_HEADER = struct.Struct(f"<4sQ{TAG_SIZE}s")  # magic, value length, signature
_HEADER_SIZE = _HEADER.size
_FIRST_READ = 2 << 20  # a get's first read: the whole object for most values, else the header
_PART = 16 << 20  # a large put's part (S3's multipart uploads need 5 MB or more per part)


_IN_FLIGHT = 2  # ranges a large get reads at once
_LEASE_READ = 4096  # a lease object is far smaller: a ranged read needs no size request first
# A lease object stays at least this share of lease_ttl after the value written under it, and a
# lease taken within this share of its look needs no second look (see the module docstring).
_LINGER = 1 / 16


def _range_size(length: int) -> int:
    """The size of a large get's ranges: a 16th of the value, so the ranges in flight (each
    briefly held twice by the HTTP client) cost at most a quarter of it beside the value;
    between 1 and 16 MB (fewer requests when large)."""
    return max(1 << 20, min(16 << 20, length // 16))


def _is_key(name: str) -> bool:
    return len(name) == 64 and all(c in "0123456789abcdef" for c in name)


class ObjectStore:
    """Bytes in, bytes out, on ``url`` (``"s3://bucket/cache"``, ``"memory://cache"``,
    ``"file:///tmp/cache"``, a plain path). ``storage_options`` go to ``fsspec.filesystem``
    (credentials, endpoint); ``budget``: bytes kept before the oldest writes are evicted."""

    lease_looks = True
    """Its lease reads the value in the same step as taking it (see ``Store``): the engine
    makes no far read of its own before the lease."""

    def __init__(
        self,
        url: str,
        *,
        budget: int | None = None,
        storage_options: dict[str, Any] | None = None,
        on_evict: Callable[[str], None] | None = None,
        signer: Signer | None = None,
        timeout: float = 10.0,
        connect_timeout: float = 3.0,
        lease_ttl: float = 4.0,
    ) -> None:
        try:
            import fsspec
        except ImportError:  # pragma: no cover - fsspec is in the memo extra
            raise ConfigurationError(
                "ObjectStore needs fsspec (and s3fs for s3://): pip install fsspec s3fs"
            ) from None
        if budget is not None and budget <= 0:
            raise ConfigurationError(f"budget must be a positive number of bytes, got {budget}")
        self.url = url
        self.budget = budget
        self.storage_options = dict(storage_options or {})
        self._on_evict = on_evict
        self._signer = signer if signer is not None else default_signer()
        self.rejections = Rejections(url)
        if lease_ttl <= 0:
            raise ConfigurationError(f"lease_ttl must be positive seconds, got {lease_ttl}")
        self.lease_ttl = lease_ttl
        self._outage = Outage(url)
        fs_options = dict(self.storage_options)
        if url.split("://", 1)[0] in ("s3", "s3a") and "config_kwargs" not in fs_options:
            fs_options["config_kwargs"] = {
                "connect_timeout": connect_timeout,
                "read_timeout": timeout,
                "retries": {"max_attempts": 1, "mode": "standard"},
            }
        fs, root = fsspec.core.url_to_fs(url, **fs_options)
        self._fs: Any = fs
        self._root = root.rstrip("/")
        protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
        self._local = protocol in ("file", "local")
        self._lock = threading.Lock()
        self._bytes: int | None = None  # running total, from one listing on first need
        try:
            fs.makedirs(self._root, exist_ok=True)
        except Exception as exc:  # not fatal: compute without the store until it is back
            self._outage.failed("open", exc)
        self.options = urls.non_default(
            {
                "budget": budget,
                "storage_options": self.storage_options,
                "timeout": timeout,
                "connect_timeout": connect_timeout,
                "lease_ttl": lease_ttl,
            },
            {
                "budget": None,
                "storage_options": {},
                "timeout": 10.0,
                "connect_timeout": 3.0,
                "lease_ttl": 4.0,
            },
        )
        self.closed = False
        self._failed: list[str] = []
        self.unstored = 0  # puts that did not reach the file system
        self._held: dict[str, str] = {}  # key -> token of a lease this process holds
        # key -> when (monotonic) the last write of that lease object that succeeded was sent
        self._renewed: dict[str, float] = {}
        # key -> when (monotonic) the value put under this process's lease of it was written
        self._written: dict[str, float] = {}
        self._linger = lease_ttl * _LINGER
        self.machine_leases = MachineLeases(default_directory(), url)
        # lease objects of leases left, removed in batches in the background (_release_later)
        self._releases = Writer(self._release, max_bytes=1 << 30, idle_timeout=2.0)
        self._closing = False
        self._hurry = threading.Event()  # set: the queued releases go now (flush, close, exit)
        urls.remember(self)
        _open_stores.add(self)

    def __repr__(self) -> str:
        return f"ObjectStore({self.url!r}, budget={self.budget})"

    def __reduce__(self) -> tuple[Any, ...]:
        """A store pickles as its URL and options: see ``urls``."""
        return (urls.reopen_far, ("object", self.url, self.options))

    def _path(self, key: str) -> str:
        if not _is_key(key):
            raise ValueError(f"store keys are 64 lower-case hex digits, got {key!r:.80}")
        return f"{self._root}/{key[:2]}/{key}"

    # -- reads ------------------------------------------------------------------------------

    @property
    def reachable(self) -> bool:
        """False during an outage (operations are then misses and no-ops, not waits)."""
        return not self._outage.down

    def get(self, key: str) -> bytes | memoryview | None:
        handed = self.machine_leases.handed(key)  # read (and verified) by this thread's lease
        if handed is not None:
            return handed  # type: ignore[no-any-return]
        path = self._path(key)
        if self._outage.skip():
            return None
        try:
            blob = self._fs.cat_file(path, start=0, end=_FIRST_READ)
            self._outage.ok()
        except FileNotFoundError:
            self._outage.ok()
            return None
        except Exception as exc:
            self._outage.failed("get", exc)
            return None
        tag: bytes | None = None
        if len(blob) >= _HEADER_SIZE:
            magic, length, tag = _HEADER.unpack_from(blob)
            data = memoryview(blob)[_HEADER_SIZE:]
            if magic == _MAGIC and length == len(data) and self._signer.verify(key, data, tag):
                return data  # the whole object in one read: a view into it, no copy
            if magic == _MAGIC and length > len(data) and len(blob) == _FIRST_READ:
                del data
                try:
                    return self._get_ranged(key, path, blob, length, tag)
                except FileNotFoundError:
                    return None  # removed meanwhile: a plain miss
                except Exception as exc:
                    self._outage.failed("get", exc)
                    return None
        self.delete(key)
        self.rejections.report(key, self._signer.why_not(tag))
        return None

    def _get_ranged(
        self, key: str, path: str, first: bytes, length: int, tag: bytes
    ) -> memoryview | None:
        """A value larger than the first read: the rest read in ranges of a few MB, a few at
        once, straight into one buffer of the value's size, each range fed to the signature
        check as it arrives; the buffer is handed out only once the whole value verifies (so a
        hit peaks at the value plus the ranges in flight, never two copies). The header's
        length is checked against the object's real size first: a forged length cannot make
        the reader allocate."""
        for attempt in range(2):  # a second try when the object was replaced mid-read
            if int(self._fs.size(path) or 0) != _HEADER_SIZE + length:
                break
            buf = bytearray(length)
            view = memoryview(buf)
            check = self._signer.verifier(key, tag, length)
            if attempt == 0:
                head = memoryview(first)[_HEADER_SIZE:]
                pos = len(head)
                view[:pos] = head
                check.update(head)
                del head
            else:
                pos = 0
            block = _range_size(length)
            while pos < length:
                spans = [
                    (start, min(length, start + block))
                    for start in range(pos, min(length, pos + _IN_FLIGHT * block), block)
                ]
                pieces = self._fs.cat_ranges(
                    [path] * len(spans),
                    [_HEADER_SIZE + a for a, _ in spans],
                    [_HEADER_SIZE + b for _, b in spans],
                    on_error="raise",
                )
                for i, (a, b) in enumerate(spans):
                    if len(pieces[i]) != b - a:
                        break  # shorter than its header says: replaced or truncated
                    view[a:b] = pieces[i]
                    pieces[i] = b""  # freed as soon as it is in the buffer
                    check.update(view[a:b])
                    pos = b
                del pieces
                if pos != spans[-1][1]:
                    break
            if pos == length and check.ok():
                return view
            del view, buf
        self.delete(key)
        self.rejections.report(key, self._signer.why_not(tag))
        return None

    def contains(self, key: str) -> bool:
        path = self._path(key)
        if self._outage.skip():
            return False
        try:
            found = bool(self._fs.exists(path))
        except Exception as exc:
            self._outage.failed("contains", exc)
            return False
        self._outage.ok()
        return found

    def keys(self) -> Iterator[str]:
        if self._outage.skip():
            return iter(())
        try:
            paths = self._fs.find(self._root)
        except FileNotFoundError:
            return iter(())
        except Exception as exc:
            self._outage.failed("keys", exc)
            return iter(())
        names = (p.rsplit("/", 1)[-1] for p in paths)
        return iter([n for n in names if _is_key(n)])

    def _listing(self) -> list[tuple[str, int, float]]:
        """(key, size, modified) of every entry."""
        out: list[tuple[str, int, float]] = []
        if self._outage.skip():
            return out
        try:
            found = self._fs.find(self._root, detail=True)
        except FileNotFoundError:
            return out
        except Exception as exc:
            self._outage.failed("listing", exc)
            return out
        for path, info in found.items():
            name = path.rsplit("/", 1)[-1]
            if not _is_key(name):
                continue
            out.append((name, int(info.get("size") or 0), _modified(info)))
        return out

    def usage(self) -> StoreUsage:
        listing = self._listing()
        total = sum(size for _, size, _ in listing)
        with self._lock:
            self._bytes = total
        return StoreUsage(entries=len(listing), bytes=total, budget=self.budget)

    # -- writes -----------------------------------------------------------------------------

    def put(
        self,
        key: str,
        data: bytes | memoryview | Sequence[bytes | memoryview],
        *,
        cost: float = 0.0,
        meta: Mapping[str, Any] | None = None,
    ) -> None:
        pieces: list[Any] = list(data) if isinstance(data, list | tuple) else [data]
        self._path(key)  # a bad key raises before anything is signed
        meta_blob = None if meta is None else md.encode(self._signer, key, meta)
        tag = self._signer.sign(key, pieces)
        size = sum(memoryview(p).nbytes for p in pieces)
        head = _HEADER.pack(_MAGIC, size, tag)
        path = self._path(key)
        if self._outage.skip():
            self._not_stored(key)
            return
        try:
            if not self._still_held(key):
                return
            if self._local:  # (object stores have no directories to make)
                self._fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
            if size <= _PART:  # small: one joined copy, one request (with its metadata's)
                objects = {path: b"".join([head, *pieces])}
                if meta_blob is not None:
                    objects[path + ".meta"] = meta_blob
                self._write_whole(objects)
            else:  # large: streamed in parts (a multipart upload on S3), never joined
                self._write_streamed(path, head, pieces)
                if meta_blob is not None:
                    self._write_whole({path + ".meta": meta_blob})
            if key in self._held:  # its lease object stays a while (see the module docstring)
                self._written[key] = time.monotonic()
        except Exception as exc:
            self._outage.failed("put", exc)
            self._not_stored(key)
            return
        self._outage.ok()
        if self.budget is not None:
            with self._lock:
                if self._bytes is not None:
                    self._bytes += _HEADER_SIZE + size
                over = self._bytes is None or self._bytes > self.budget
            if over:
                self.evict()

    def _write_whole(self, objects: dict[str, bytes]) -> None:
        """Write each object (path: bytes) whole; on an object store all in one call, which an
        asynchronous file system (s3fs, gcsfs) sends at once: a value and its metadata cost
        one round trip of waiting, not two. Raises when any was not written."""
        if self._local:  # a file system can show a half-written file: write, then rename
            for path, blob in objects.items():
                temp = f"{path}.{uuid.uuid4().hex}.tmp"
                self._fs.pipe_file(temp, blob)
                self._fs.mv(temp, path)
        elif len(objects) == 1:  # object stores publish an object whole
            [(path, blob)] = objects.items()
            self._fs.pipe_file(path, blob)
        else:
            self._fs.pipe(objects)

    def _write_streamed(self, path: str, head: bytes, pieces: Sequence[Any]) -> None:
        """The header, then each piece in slices of one part: the file object uploads a part
        as soon as it has one (S3: a multipart upload, published whole when it completes), so
        at most a part or two is buffered beside the value. A failed write is discarded (the
        multipart upload aborted), never published."""
        target = f"{path}.{uuid.uuid4().hex}.tmp" if self._local else path
        f = self._fs.open(target, "wb", block_size=_PART)
        try:
            f.write(head)
            for piece in pieces:
                view = memoryview(piece).cast("B")
                for start in range(0, view.nbytes, _PART):
                    f.write(view[start : start + _PART])
        except BaseException:
            with contextlib.suppress(Exception):
                f.discard()
            with contextlib.suppress(Exception):
                f.close()
            if self._local:
                with contextlib.suppress(Exception):
                    self._fs.rm_file(target)
            raise
        f.close()
        if self._local:
            self._fs.mv(target, path)

    def _fresh(self, key: str) -> bool:
        """Whether this process's lease of ``key`` is certainly still its own, without asking
        the store: a waiter takes a lease over only after seeing its object unchanged for
        ``lease_ttl`` of its own clock, and it cannot have seen our last write before we sent
        it; so for half a ``lease_ttl`` after sending that write, no one has taken over."""
        sent = self._renewed.get(key)
        return sent is not None and time.monotonic() - sent < self.lease_ttl / 2

    def _still_held(self, key: str) -> bool:
        """Fencing: False (and the put counted as not stored) when this process took the lease
        of ``key`` and the lease object no longer carries its token: it lapsed, and another
        holder may have written a newer value. (A fresh lease needs no read: see ``_fresh``.)"""
        token = self._held.get(key)
        if token is None or self._fresh(key):
            return True
        if self._read_lease(self._lease_path(key)) == token.encode():
            return True
        log.warning(
            "store %s: value for %s not written: its lease lapsed and passed to another "
            "holder (fencing token)",
            self.url,
            key[:16],
        )
        self._not_stored(key)
        return False

    def delete(self, key: str) -> bool:
        path = self._path(key)
        if self._outage.skip():
            return False
        try:
            size = int(self._fs.size(path) or 0)
            self._fs.rm_file(path)
        except FileNotFoundError:
            self._drop_meta(path)
            return False
        except Exception as exc:
            self._outage.failed("delete", exc)
            return False
        self._drop_meta(path)
        with self._lock:
            if self._bytes is not None:
                self._bytes -= size
        return True

    def _drop_meta(self, path: str) -> None:
        with contextlib.suppress(Exception):
            self._fs.rm_file(path + ".meta")

    # -- metadata (see ``metadata``) --------------------------------------------------------

    keeps_metadata = True

    def metadata(self, key: str) -> dict[str, Any] | None:
        """The authenticated metadata ``key`` was put with, or None."""
        path = self._path(key) + ".meta"
        if self._outage.skip():
            return None
        try:
            raw = self._fs.cat_file(path)
        except FileNotFoundError:
            return None
        except Exception as exc:
            self._outage.failed("metadata", exc)
            return None
        return md.decode(self._signer, key, raw)

    def entries(self, prefix: str = "") -> Iterator[md.EntryInfo]:
        """Every entry whose key starts with ``prefix``: key, size and authenticated metadata
        (one listing, then the metadata objects read together)."""
        if self._outage.skip():
            return iter(())
        where = f"{self._root}/{prefix[:2]}" if len(prefix) >= 2 else self._root
        try:
            found = self._fs.find(where, detail=True)
        except FileNotFoundError:
            return iter(())
        except Exception as exc:
            self._outage.failed("entries", exc)
            return iter(())
        sizes: dict[str, int] = {}
        metas: dict[str, str] = {}
        for path, info in found.items():
            name = path.rsplit("/", 1)[-1]
            if _is_key(name) and name.startswith(prefix):
                sizes[name] = max(0, int(info.get("size") or 0) - _HEADER_SIZE)
            elif name.endswith(".meta") and _is_key(name[:-5]) and name.startswith(prefix):
                metas[name[:-5]] = path
        wanted = [metas[k] for k in sizes if k in metas]
        raws: dict[str, Any] = {}
        if wanted:
            try:
                raws = self._fs.cat(wanted, on_error="omit")
            except Exception as exc:
                self._outage.failed("entries", exc)
        by_key = {p.rsplit("/", 1)[-1][:-5]: raw for p, raw in raws.items()}
        out = [
            md.EntryInfo(k, size, md.decode(self._signer, k, by_key.get(k)))
            for k, size in sorted(sizes.items())
        ]
        return iter(out)

    def evict(self, target_bytes: int | None = None) -> int:
        """Delete the oldest writes until at most ``target_bytes`` (default: the budget) remain."""
        target = self.budget if target_bytes is None else target_bytes
        listing = sorted(self._listing(), key=lambda item: item[2])
        total = sum(size for _, size, _ in listing)
        evicted = 0
        if target is not None:
            for key, size, _ in listing:
                if total <= target:
                    break
                if self.delete(key):
                    total -= size
                    evicted += 1
                    if self._on_evict is not None:
                        self._on_evict(key)
        with self._lock:
            self._bytes = total
        return evicted

    # -- leases -----------------------------------------------------------------------------

    def lease(
        self, key: str, timeout: float | None = None
    ) -> contextlib.AbstractContextManager[bool]:
        """Single flight for ``key`` across processes and machines (see the module docstring).
        Yields True when the caller should compute and put the value, False when it is present
        (another holder put it). When ``timeout`` passes first, or the store is unreachable,
        yields True without the lease.

        Copies on one machine agree among themselves first (see ``_machine``): one takes the
        lease object, the others wait for it on a file lock and then take the lease, whose
        first step reads the value (the get that follows takes what that read found)."""
        return self.machine_leases.lease(
            key, timeout, self.shared_lease, None, self.lease_lives, self.lease_ttl / 2
        )

    def lease_lives(self, key: str) -> Callable[[], bool]:
        """A check whether a holder renews its lease on ``key``: asked every half ``lease_ttl``,
        it says yes when the lease object changed since it last asked (its holder rewrites it
        every quarter ``lease_ttl``; its first answer is yes); no when it is gone. Yes when the
        store cannot say."""
        path = self._lease_path(key)
        seen: list[bytes | None] = []

        def lives() -> bool:
            if self._outage.skip():
                return True
            try:
                now = self._lease_object(path)
            except Exception as exc:
                self._outage.failed("lease", exc)
                return True
            if now is None:
                return False
            renewed = not seen or seen[0] != now
            seen[:] = [now]
            return renewed

        return lives

    def shared_lease(
        self, key: str, timeout: float | None = None
    ) -> contextlib.AbstractContextManager[bool]:
        """The lease object alone, without the machine's lease (see :meth:`lease`)."""
        return self._lease(key, timeout)

    def _look(self, key: str) -> bool:
        """Whether the value is here now; what was read goes to this thread's next get (inside
        the lease: see ``_machine``)."""
        data = self.get(key)
        if data is None:
            return False
        self.machine_leases.hand(key, data)
        return True

    def _lease_path(self, key: str) -> str:
        self._path(key)  # validates the key
        return f"{self._root}/leases/{key}.lease"

    @contextlib.contextmanager
    def _lease(self, key: str, timeout: float | None) -> Iterator[bool]:
        path = self._lease_path(key)
        if path in self._releases.pending:  # our own lease of this key, still being removed
            self._releases.flush()
        # The lease looks first (``lease_looks``): a value already here costs one read, as a
        # plain get would, and no lease object written and removed.
        looked = time.monotonic()
        if self._look(key):
            yield False
            return
        token = f"{os.getpid()}-{uuid.uuid4().hex}"
        got, looked = self._acquire(key, path, token, timeout, looked)
        if got is None:
            yield False
            return
        if not got:
            yield True
            return
        self._held[key] = token  # puts of this key check that the lease is still ours
        stop = threading.Event()
        beat = threading.Thread(
            target=self._heartbeat,
            args=(key, path, token, stop),
            daemon=True,
            name="reckon-os-lease",
        )
        beat.start()
        try:
            # Again once the lease is ours, unless it was taken soon after the last look: a
            # holder may have stored the value and left since (see the module docstring). (A
            # look that reads: a GET of a missing object is one request, where asking whether
            # it exists is two on S3, and a value found is handed to the get.)
            yield time.monotonic() - looked < self._linger or not self._look(key)
        finally:
            stop.set()
            beat.join()
            sent = self._renewed.get(key)
            written = self._written.pop(key, None)
            if self._held.get(key) == token:
                del self._held[key]
                self._renewed.pop(key, None)
            self._release_later(path, token, sent, written)

    def _release_later(
        self, path: str, token: str, sent: float | None, written: float | None
    ) -> None:
        """Have the lease object ``path`` (ours: ``token``, last written at ``sent``, the value
        under it written at ``written``) removed in the background. The releases of a few
        moments go in one request (S3's DeleteObjects takes 1,000 keys): each computed key costs
        a fraction of a request instead of one. ``flush``, ``close`` and the process's exit
        send what is queued."""
        _at_exit.arm()
        op = Op(DELETE, path, meta=(token, sent, written))
        if not self._releases.submit(op):  # closed: at once
            self._release([op])

    def _release(self, ops: list[Op]) -> None:
        """Remove the lease objects of ``ops`` that are still ours, in one request where the
        file system can. One still certainly ours (written less than half a ``lease_ttl``
        ago: see ``_fresh``) is removed without a look; an older one only when it still
        carries our token (a read each: rare, a lease held past its last renewal). None is
        removed sooner than ``_linger`` after the value written under it, even in a hurry."""
        written = [op.meta[2] for op in ops if op.meta[2] is not None]
        if written:
            early = max(written) + self._linger - time.monotonic()
            if early > 0:
                time.sleep(early)
        if not self._closing and not self._hurry.is_set():
            # The releases of the next moments join the next batch: wait up to a quarter
            # lease_ttl, but not past the moment the oldest of these stops being certainly ours
            # (half a lease_ttl after its last write, less a margin for the request).
            sents = [op.meta[1] for op in ops if op.meta[1] is not None]
            wait = self.lease_ttl / 4
            if sents:
                wait = min(wait, min(sents) + self.lease_ttl * 0.4 - time.monotonic())
            if wait > 0:
                self._hurry.wait(wait)
        now = time.monotonic()
        paths = []
        for op in ops:
            token, sent, _written = op.meta
            if sent is not None and now - sent < self.lease_ttl / 2:
                paths.append(op.key)
                continue
            with contextlib.suppress(Exception):
                if self._read_lease(op.key) == token.encode():
                    paths.append(op.key)
        if not paths:
            return
        try:
            self._fs.rm(paths)
        except Exception:  # (one already gone, say): one by one
            for path in paths:
                with contextlib.suppress(Exception):
                    self._fs.rm_file(path)

    def _create_lease(self, key: str, path: str, token: str) -> bool:
        """Create the lease object only if absent (True), or see it held (False)."""
        try:
            sent = time.monotonic()
            self._fs.pipe_file(path, token.encode() + b" 0", mode="create")
            self._renewed[key] = sent
            return True
        except FileExistsError:
            return False
        except FileNotFoundError:  # the leases directory of a local file system
            self._fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
            return self._create_lease(key, path, token)
        except OSError as exc:
            if getattr(exc, "errno", None) == 17 or "PreconditionFailed" in repr(exc):
                return False
            raise

    def _lease_object(self, path: str) -> bytes | None:
        """The lease object's contents (token and beat), None when there is none: one ranged
        read (a whole read would ask for the object's size first on S3)."""
        try:
            data: bytes = self._fs.cat_file(path, start=0, end=_LEASE_READ)
        except FileNotFoundError:
            return None
        return data

    def _read_lease(self, path: str) -> bytes | None:
        """The token of the lease object's holder, None when there is none."""
        data = self._lease_object(path)
        return None if data is None else data.split(b" ", 1)[0]

    def _acquire(
        self, key: str, path: str, token: str, timeout: float | None, looked: float
    ) -> tuple[bool | None, float]:
        """True: the lease is ours; False: compute without it; None: the value appeared. With
        it, when the last look for the value (the caller's, at ``looked``, or one here) began."""
        if self._outage.skip():
            return False, looked
        deadline = None if timeout is None else time.monotonic() + timeout
        # The lease object is read at the first look (its content starts the clock of a
        # takeover: a holder killed just now is replaced lease_ttl later), then every
        # lease_ttl/8 at most.
        seen: bytes | None = None
        seen_since, read_at = time.monotonic(), -math.inf
        try:
            if self._create_lease(key, path, token):
                return True, looked
            with waiting():
                # Each look is a request (tens of ms on S3): the first comes after 20 ms, and
                # the pace slows with the wait (see Pause).
                pause = Pause(0.02, self.lease_ttl / 8)
                while True:
                    now = time.monotonic()
                    if deadline is not None and now >= deadline:
                        return False, looked
                    delay = pause.next()
                    time.sleep(delay if deadline is None else min(delay, deadline - now))
                    # The value first: it ends the wait the moment it is there (its holder's
                    # lease object may still be there for a moment: see _release_later).
                    looked = time.monotonic()
                    if self._look(key):
                        return None, looked
                    now = time.monotonic()
                    if now - read_at < self.lease_ttl / 8:
                        continue  # the lease object is read every lease_ttl/8 at most
                    now_content = self._lease_object(path)
                    now = read_at = time.monotonic()
                    if now_content is None:  # released: try to take it
                        if self._create_lease(key, path, token):
                            return True, looked
                    elif now_content != seen:  # the holder renewed (or changed): it is alive
                        seen, seen_since = now_content, now
                    elif now - seen_since > self.lease_ttl:
                        log.info(
                            "store %s: lease of %s not renewed for %.1fs: taking over",
                            self.url,
                            key[:16],
                            now - seen_since,
                        )
                        with contextlib.suppress(FileNotFoundError):
                            if self._lease_object(path) == seen:
                                self._fs.rm_file(path)
                        if self._create_lease(key, path, token):
                            return True, looked
        except Exception as exc:
            self._outage.failed("lease", exc)
            return False, looked

    def _heartbeat(self, key: str, path: str, token: str, stop: threading.Event) -> None:
        beat = 0
        while not stop.wait(self.lease_ttl / 4):
            beat += 1
            try:
                if self._read_lease(path) != token.encode():
                    log.warning("store %s: lease %s passed to another holder", self.url, path)
                    return
                sent = time.monotonic()
                self._fs.pipe_file(path, f"{token} {beat}".encode())
                if self._held.get(key) == token:
                    self._renewed[key] = sent
            except Exception as exc:
                self._outage.failed("lease renewal", exc)
                return

    def _not_stored(self, key: str) -> None:
        self.unstored += 1
        if len(self._failed) < 10_000:
            self._failed.append(key)

    def flush(self) -> list[str]:
        """Writes are synchronous; the lease objects of leases left are removed now. Returns
        the keys whose puts did not reach the file system since the last flush."""
        self._hurry.set()
        try:
            self._releases.flush()
        finally:
            self._hurry.clear()
        failed, self._failed = self._failed, []
        return failed

    def close(self) -> None:
        """Removes the lease objects of leases left (fsspec file systems themselves are shared
        and cached by fsspec: nothing else to release)."""
        self._closing = True
        self._hurry.set()
        self._releases.close()
        self.closed = True
        urls.forget(self)
        _open_stores.discard(self)


def _modified(info: dict[str, Any]) -> float:
    for field in ("mtime", "LastModified", "last_modified", "created", "updated"):
        value = info.get(field)
        if value is None:
            continue
        if hasattr(value, "timestamp"):
            return float(value.timestamp())
        try:
            return float(value)
        except (TypeError, ValueError):
            continue
    return 0.0


_open_stores: weakref.WeakSet[ObjectStore] = weakref.WeakSet()


def _release_at_exit() -> None:
    """Lease objects still queued for removal (leases left just before the exit) are removed
    before the process ends."""
    for store in list(_open_stores):
        store._closing = True
        store._hurry.set()
        try:
            store._releases.flush()
        except Exception:
            log.exception("store %s: lease releases at exit failed", store.url)


# after a near tier's far writes (priority 101), which may leave leases
_at_exit = ExitHook(_release_at_exit, priority=100)


def _after_fork_in_child() -> None:
    for store in list(_open_stores):  # the parent's queue is the parent's to send
        store._releases.after_fork_in_child()


os.register_at_fork(after_in_child=_after_fork_in_child)
