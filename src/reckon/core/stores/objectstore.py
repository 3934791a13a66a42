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
"""

from __future__ import annotations

import logging
import struct
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from reckon.core.stores import urls
from reckon.core.stores.base import StoreUsage
from reckon.core.stores.signing import TAG_SIZE, Rejections, Signer, default_signer
from reckon.errors import ConfigurationError

__all__ = ["ObjectStore"]

logger = logging.getLogger("reckon.memo")

_MAGIC = b"RKF2"
_HEADER = struct.Struct(f"<4sQ{TAG_SIZE}s")  # magic, value length, signature
_HEADER_SIZE = _HEADER.size


def _is_key(name: str) -> bool:
    return len(name) == 64 and all(c in "0123456789abcdef" for c in name)


class ObjectStore:
    """Bytes in, bytes out, on ``url`` (``"s3://bucket/cache"``, ``"memory://cache"``,
    ``"file:///tmp/cache"``, a plain path). ``storage_options`` go to ``fsspec.filesystem``
    (credentials, endpoint); ``budget``: bytes kept before the oldest writes are evicted."""

    def __init__(
        self,
        url: str,
        *,
        budget: int | None = None,
        storage_options: dict[str, Any] | None = None,
        on_evict: Callable[[str], None] | None = None,
        signer: Signer | None = None,
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
        fs, root = fsspec.core.url_to_fs(url, **self.storage_options)
        self._fs: Any = fs
        self._root = root.rstrip("/")
        protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
        self._local = protocol in ("file", "local")
        self._lock = threading.Lock()
        self._bytes: int | None = None  # running total, from one listing on first need
        fs.makedirs(self._root, exist_ok=True)
        self.options = urls.non_default(
            {"budget": budget, "storage_options": self.storage_options},
            {"budget": None, "storage_options": {}},
        )
        self.closed = False
        urls.remember(self)

    def __repr__(self) -> str:
        return f"ObjectStore({self.url!r}, budget={self.budget})"

    def __reduce__(self) -> tuple[Any, ...]:
        """A store pickles as its URL and options: see ``urls``."""
        return (urls.reopen, (self.url, self.options))

    def _path(self, key: str) -> str:
        if not _is_key(key):
            raise ValueError(f"store keys are 64 lower-case hex digits, got {key!r:.80}")
        return f"{self._root}/{key[:2]}/{key}"

    # -- reads ------------------------------------------------------------------------------

    def get(self, key: str) -> bytes | None:
        path = self._path(key)
        try:
            blob = self._fs.cat_file(path)
        except FileNotFoundError:
            return None
        except Exception as exc:
            logger.warning("fsspec store %s: read of %s failed: %s", self.url, key[:16], exc)
            return None
        tag: bytes | None = None
        if len(blob) >= _HEADER_SIZE:
            magic, length, tag = _HEADER.unpack_from(blob)
            data = memoryview(blob)[_HEADER_SIZE:]
            if magic == _MAGIC and length == len(data) and self._signer.verify(key, data, tag):
                return bytes(data)
        self.delete(key)
        self.rejections.report(key, self._signer.why_not(tag))
        return None

    def contains(self, key: str) -> bool:
        try:
            return bool(self._fs.exists(self._path(key)))
        except Exception:
            return False

    def keys(self) -> Iterator[str]:
        try:
            paths = self._fs.find(self._root)
        except FileNotFoundError:
            return iter(())
        names = (p.rsplit("/", 1)[-1] for p in paths)
        return iter([n for n in names if _is_key(n)])

    def _listing(self) -> list[tuple[str, int, float]]:
        """(key, size, modified) of every entry."""
        out: list[tuple[str, int, float]] = []
        try:
            found = self._fs.find(self._root, detail=True)
        except FileNotFoundError:
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
    ) -> None:
        payload = b"".join(data) if isinstance(data, list | tuple) else bytes(data)  # type: ignore[arg-type]
        self._path(key)  # a bad key raises before anything is signed
        tag = self._signer.sign(key, payload)
        blob = _HEADER.pack(_MAGIC, len(payload), tag) + payload
        path = self._path(key)
        try:
            self._fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
            if self._local:  # a file system can show a half-written file: write, then rename
                temp = f"{path}.{uuid.uuid4().hex}.tmp"
                self._fs.pipe_file(temp, blob)
                self._fs.mv(temp, path)
            else:  # object stores publish an object whole
                self._fs.pipe_file(path, blob)
        except Exception as exc:
            logger.warning("fsspec store %s: write of %s failed: %s", self.url, key[:16], exc)
            return
        if self.budget is not None:
            with self._lock:
                if self._bytes is not None:
                    self._bytes += len(blob)
                over = self._bytes is None or self._bytes > self.budget
            if over:
                self.evict()

    def delete(self, key: str) -> bool:
        path = self._path(key)
        try:
            size = int(self._fs.size(path) or 0)
            self._fs.rm_file(path)
        except FileNotFoundError:
            return False
        except Exception as exc:
            logger.warning("fsspec store %s: delete of %s failed: %s", self.url, key[:16], exc)
            return False
        with self._lock:
            if self._bytes is not None:
                self._bytes -= size
        return True

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

    def flush(self) -> None:
        """Writes are synchronous: nothing is pending."""

    def close(self) -> None:
        """Nothing to release (fsspec file systems are shared and cached by fsspec)."""
        self.closed = True
        urls.forget(self)


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
