"""Stores named by URL: ``open_store(url)`` is the one way in, and how stores travel.

==============================  ===========================================================
URL                             store
==============================  ===========================================================
a path, ``file:///path``        :class:`~reckon.core.stores.LocalStore` in that directory
``redis://``, ``rediss://``,    :class:`~reckon.core.stores.RedisStore` (redis-py parses the
``unix://``                     URL; its own query options such as ``socket_timeout`` work)
``s3://``, ``gs://``,           :class:`~reckon.core.stores.ObjectStore` on that fsspec file
``memory://``, any fsspec URL   system (its query options go to the file system)
==============================  ===========================================================

Query options reckon reads itself: ``budget`` (bytes, or ``10GiB``), ``policy`` (``lru`` or
``gds``, LocalStore), ``sync`` (LocalStore), ``prefix``, ``ttl``, ``lease_ttl``, ``timeout``,
``connect_timeout`` (RedisStore).
Keyword options of :func:`open_store` win over the URL's. A far store (Redis, object stores) gets
a near tier in front of it (see ``near``): ``near=off`` (or ``near=None``) turns it off,
``near=/some/dir`` puts it there, ``near_budget`` sizes it (default 2 GiB).

Every store pickles as its URL and options (never its connections, callbacks or key), and
unpickling returns the store this process already has for them, or opens one: so an object that
holds a store (a memoized function, its group) travels to Dask or Ray workers and means the same
cache there, without opening a new store per task. A process unpickling a store signs and
verifies with its own key (``RECKON_CACHE_KEY``): the key never travels.
"""

from __future__ import annotations

import os
import re
import threading
import weakref
from typing import Any, Protocol
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

from reckon.core.stores.base import Store
from reckon.errors import ConfigurationError

__all__ = ["open_store", "store_kind"]

_REDIS_SCHEMES = frozenset({"redis", "rediss", "unix"})
_WINDOWS_DRIVE = re.compile(r"^[A-Za-z]:[\\/]")
_SIZE = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*([kmgt]?)(i?)b?\s*$", re.IGNORECASE)
_POWERS = {"": 0, "k": 1, "m": 2, "g": 3, "t": 4}


class _Named(Protocol):
    url: str
    options: dict[str, Any]


def store_kind(url: str | os.PathLike[str]) -> str:
    """``"local"``, ``"redis"`` or ``"object"``: the kind of store ``url`` names."""
    text = os.fspath(url)
    scheme = urlsplit(text).scheme.lower() if "://" in text else ""
    if not scheme or scheme == "file" or _WINDOWS_DRIVE.match(text):
        return "local"
    if scheme in _REDIS_SCHEMES:
        return "redis"
    return "object"


def local_path(url: str | os.PathLike[str]) -> str | None:
    """The directory a path or ``file://`` URL names (without its query), else None."""
    text = os.fspath(url)
    if store_kind(text) != "local":
        return None
    if text.lower().startswith("file://"):
        parts = urlsplit(text)
        text = unquote(parts.netloc + parts.path)
    elif "?" in text and "://" not in text:
        text = text.split("?", 1)[0]
    return os.path.abspath(os.path.expanduser(text))


def parse_size(value: object, what: str = "budget") -> int | None:
    """``1000``, ``"10GiB"``, ``"1.5 GB"``, ``"none"`` -> bytes (or None)."""
    if value is None or (isinstance(value, str) and value.lower() in ("", "none", "off")):
        return None
    if isinstance(value, bool):
        raise ConfigurationError(f"{what} must be a number of bytes, got {value!r}")
    if isinstance(value, int):
        return value
    m = _SIZE.match(str(value))
    if m is None:
        raise ConfigurationError(
            f"{what}={value!r} is not a size: use bytes (1000) or a size like '10GiB', '2GB'"
        )
    base = 1024 if m.group(3) else 1000
    return int(float(m.group(1)) * base ** _POWERS[m.group(2).lower()])


def _bool(value: object, what: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ConfigurationError(f"{what}={value!r} is not a boolean: use true or false")


def _float(value: object, what: str) -> float | None:
    if value is None or (isinstance(value, str) and value.lower() in ("", "none")):
        return None
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ConfigurationError(f"{what}={value!r} is not a number of seconds") from None


# Options reckon reads from a URL's query, per kind, with their parsers.
_READERS: dict[str, dict[str, Any]] = {
    "local": {
        "budget": parse_size,
        "policy": lambda v, w: str(v),
        "sync": _bool,
        "fsync": _bool,
        "inline_threshold": lambda v, w: int(v),
        "mmap_threshold": lambda v, w: int(v),
    },
    "redis": {
        "budget": parse_size,
        "prefix": lambda v, w: str(v),
        "ttl": _float,
        "lease_ttl": _float,
        "timeout": _float,
        "connect_timeout": _float,
        "near": lambda v, w: _near(v),
        "near_budget": parse_size,
    },
    "object": {
        "budget": parse_size,
        "timeout": _float,
        "connect_timeout": _float,
        "lease_ttl": _float,
        "near": lambda v, w: _near(v),
        "near_budget": parse_size,
    },
}

NEAR_AUTO = "auto"


def _near(value: object) -> str | None:
    """``near=`` of a far store: ``auto`` (a directory under the local cache directory), a
    directory, or off (``off``, ``none``, ``false``, ``0``, None)."""
    if value is None:
        return None
    text = os.fspath(value) if isinstance(value, os.PathLike) else str(value)
    if text.strip().lower() in ("off", "none", "false", "no", "0", ""):
        return None
    return text


def split_options(url: str) -> tuple[str, str, dict[str, Any]]:
    """(kind, the URL without the query options reckon reads, those options parsed)."""
    kind = store_kind(url)
    if "?" not in url:
        return kind, url, {}
    parts = urlsplit(url)
    readers = _READERS[kind]
    ours: dict[str, Any] = {}
    theirs: list[tuple[str, str]] = []
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        if name in readers:
            ours[name] = readers[name](value, name)
        else:
            theirs.append((name, value))
    if kind == "object" and theirs:  # the file system's own options (endpoint_url=, anon=, ...)
        ours["storage_options"] = dict(theirs)
        theirs = []
    rest = urlunsplit(parts._replace(query=urlencode(theirs)))
    return kind, rest, ours


# -- one store per URL and options, per process ------------------------------------------------

_lock = threading.RLock()
_open: weakref.WeakValueDictionary[tuple[str, str], Any] = weakref.WeakValueDictionary()


def _registry_key(url: str, options: dict[str, Any]) -> tuple[str, str]:
    return (url, repr(sorted(options.items())))


def remember(store: _Named) -> None:
    """Record an open store under its URL and options (the first one opened wins)."""
    key = _registry_key(store.url, store.options)
    with _lock:
        if _open.get(key) is None:
            _open[key] = store


def forget(store: _Named) -> None:
    """A closed store is no longer handed out."""
    key = _registry_key(store.url, store.options)
    with _lock:
        if _open.get(key) is store:
            del _open[key]


def open_store(url: str | os.PathLike[str] | Store | None = None, /, **options: Any) -> Store:
    """The store ``url`` names (see the module docstring), opened once per process.

    ``None`` means ``$RECKON_STORE``, else a LocalStore in the default cache directory. A Store
    passed in is returned as it is. Asking again for the same URL and options returns the same
    open store. A URL reckon cannot use raises :class:`~reckon.errors.ConfigurationError`; a
    store that cannot be opened raises :class:`~reckon.errors.StoreError`.
    """
    if url is not None and not isinstance(url, str | os.PathLike):
        if isinstance(url, Store):
            return url
        raise ConfigurationError(
            f"a store is a URL, a path or a Store, got {type(url).__name__}: e.g. "
            "'redis://host:6379/0', 's3://bucket/cache' or '/path/to/cache'"
        )
    if url is None:
        url = os.environ.get("RECKON_STORE") or None
    if url is None:
        from reckon.core.stores.local import default_directory

        url = default_directory()
    kind, rest, parsed = split_options(os.fspath(url))
    parsed.update(options)
    with _lock:
        if kind == "local":
            path = local_path(rest)
            assert path is not None
            canonical = "file://" + path
        else:
            canonical = rest
        if kind == "local":
            picklable = {k: v for k, v in parsed.items() if k not in ("on_evict", "signer")}
            found = _open.get(_registry_key(canonical, picklable))
            if found is not None and not getattr(found, "closed", False):
                return found  # type: ignore[no-any-return]
            from reckon.core.stores.local import LocalStore

            return LocalStore(path, **parsed)
        # A far store: the near tier in front of it, unless turned off.
        near = _near(parsed.pop("near", NEAR_AUTO))
        near_budget = parsed.pop("near_budget", None)
        if near is None:
            return _open_far(kind, canonical, parsed)
        near_options: dict[str, Any] = {"near": near}
        if near_budget is not None:
            near_options["near_budget"] = near_budget
        picklable = {k: v for k, v in parsed.items() if k not in ("on_evict", "signer", "client")}
        found = _open.get(_registry_key(canonical, picklable | near_options))
        if found is not None and not getattr(found, "closed", False):
            return found  # type: ignore[no-any-return]
        far = _open_far(kind, canonical, parsed)
        from reckon.core.stores.local import LocalStore
        from reckon.core.stores.near import DEFAULT_NEAR_BUDGET, NearStore, near_directory

        directory = near_directory(canonical) if near == NEAR_AUTO else local_path(near)
        budget = DEFAULT_NEAR_BUDGET if near_budget is None else near_budget
        return NearStore(far, LocalStore(directory, budget=budget), options=near_options)


def _open_far(kind: str, canonical: str, options: dict[str, Any]) -> Store:
    """The far store itself (shared by every near tier in front of it in this process)."""
    picklable = {k: v for k, v in options.items() if k not in ("on_evict", "signer", "client")}
    found = _open.get(_registry_key(canonical, picklable))
    if found is not None and not getattr(found, "closed", False):
        return found  # type: ignore[no-any-return]
    if kind == "redis":
        from reckon.core.stores.redis import RedisStore

        return RedisStore(canonical, **options)
    from reckon.core.stores.objectstore import ObjectStore

    return ObjectStore(canonical, **options)


def reopen(url: str, options: dict[str, Any]) -> Store:
    """What an unpickled store becomes: this process's store for ``url`` and ``options``."""
    return open_store(url, **options)


def reopen_far(kind: str, url: str, options: dict[str, Any]) -> Store:
    """What an unpickled far store (``kind`` ``redis`` or ``object``) without a near tier
    becomes: this process's store for ``url`` and ``options``. (The kind is explicit: an
    ObjectStore on ``file://`` is not a LocalStore.)"""
    return _open_far(kind, url, dict(options))


def non_default(values: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    """The options among ``values`` that differ from ``defaults`` (a store's pickled options)."""
    return {k: v for k, v in values.items() if defaults.get(k, object()) != v}
