"""Groups: memoized functions that share a store, a size budget and an eviction policy.

A group is configuration, not state: it names where entries live (a directory, or any
:class:`~reckon.core.Store`), how big that may grow and what is evicted first (``"gds"``:
GreedyDual-Size, keeps what was expensive to compute per byte; ``"lru"``: least recently used).
The engine behind it is built on first use and rebuilt in a forked child, so a group pickles as
its configuration and means the same cache in every process that unpickles it. What each entry
is (function, arguments, code version) is stored with it, in the store (see ``entries``).
"""

from __future__ import annotations

import logging
import os
import re
import threading
import weakref
from pathlib import Path
from typing import Any, Literal

from reckon.core import CachingLevel, Engine, LocalStore, Store, default_engine, open_store
from reckon.core.levels import as_level
from reckon.core.stores.urls import local_path
from reckon.errors import ConfigurationError
from reckon.memo import background, log
from reckon.memo.entries import IMPORTED_SUFFIX, OLD_INDEX, import_old_index

Policy = Literal["lru", "gds"]

_SIZE_RE = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*([kmgt]?i?b?)\s*$", re.IGNORECASE)
_SIZE_UNITS = {
    "": 1,
    "b": 1,
    "k": 1000,
    "kb": 1000,
    "kib": 1 << 10,
    "ki": 1 << 10,
    "m": 1000**2,
    "mb": 1000**2,
    "mib": 1 << 20,
    "mi": 1 << 20,
    "g": 1000**3,
    "gb": 1000**3,
    "gib": 1 << 30,
    "gi": 1 << 30,
    "t": 1000**4,
    "tb": 1000**4,
    "tib": 1 << 40,
    "ti": 1 << 40,
}


def parse_size(size: int | str | None, what: str = "size") -> int | None:
    """``1000``, ``"10KiB"``, ``"1.5 GB"`` -> bytes."""
    if size is None:
        return None
    if isinstance(size, bool):
        raise ConfigurationError(f"{what} must be a number of bytes or a string like '10 GiB'")
    if isinstance(size, int):
        if size <= 0:
            raise ConfigurationError(f"{what} must be positive, got {size}")
        return size
    m = _SIZE_RE.match(str(size))
    if not m or m.group(2).lower() not in _SIZE_UNITS:
        raise ConfigurationError(
            f"{what}={size!r} is not a size; use bytes (1000) or a string like '10KiB', '2 GB'"
        )
    n = int(float(m.group(1)) * _SIZE_UNITS[m.group(2).lower()])
    if n <= 0:
        raise ConfigurationError(f"{what} must be positive, got {size!r}")
    return n


def default_cache_dir() -> Path:
    """``$RECKON_CACHE_DIR``, else the per-user cache directory (what the core's stores use)."""
    env = os.environ.get("RECKON_CACHE_DIR")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "reckon"


def store_path(store: object) -> Path | None:
    """The directory of a path-backed store (LocalStore), else None."""
    for attr in ("path", "root", "directory"):
        value = getattr(store, attr, None)
        if isinstance(value, str | os.PathLike):
            return Path(value)
    return None


class _Backend:
    """An engine, and this machine's directory for the group's notes; shared by groups on the
    same store. ``names`` remembers the calls of entries this process stored (by key), for the
    eviction log."""

    def __init__(self, engine: Engine, local_dir: Path | None, owned: bool) -> None:
        self.engine = engine
        self.local_dir = local_dir
        self.owned = owned
        self.names: dict[str, str] = {}
        if local_dir is not None and engine.store is not None:
            _import_old_index(engine.store, local_dir)

    def named(self, key: str, call: str) -> None:
        names = self.names
        if len(names) >= 10_000:
            names.clear()
        names[key] = call


_backends: dict[tuple[Any, ...], _Backend] = {}
_backends_lock = threading.RLock()
_groups: dict[str, MemoizedGroup] = {}
_all_groups: weakref.WeakSet[MemoizedGroup] = weakref.WeakSet()
_mentioned: set[Path] = set()


def _import_old_index(store: Store, directory: Path) -> None:
    """Once per directory: carry an older reckon's memo index file into the store's metadata."""
    old = directory / OLD_INDEX
    if directory in _mentioned or not old.exists():
        return
    _mentioned.add(directory)
    found = store_path(store)
    if found is None or found.resolve() != directory.resolve():
        return
    imported = import_old_index(store, directory)
    if imported is not None:
        log.event(
            "index",
            f"{old} was written by an older reckon: the descriptions of {imported} entries "
            f"moved into the store, which keeps them now (the file is renamed "
            f"{OLD_INDEX}{IMPORTED_SUFFIX})",
            logging.INFO,
        )


def local_dir_of(store: Store | None) -> Path | None:
    """This machine's directory of ``store``: its own (a LocalStore) or its near tier's."""
    if store is None:
        return None
    path = store_path(store)
    if path is not None:
        return path
    near = getattr(store, "near", None)
    return store_path(near) if near is not None else None


def _on_evict_for(backend_ref: list[_Backend]) -> Any:
    """The store's eviction callback: log which call went (when this process stored it)."""

    def on_evict(key: str) -> None:
        backend = backend_ref[0] if backend_ref else None
        call = backend.names.pop(key, None) if backend is not None else None
        what = call if call is not None else f"entry {key[:16]}"
        log.event("evict", f"{what} (over the group's size budget)")

    return on_evict


class MemoizedGroup:
    """Where a set of memoized functions keep their entries, and under which budget.

    ``store``: a directory (a :class:`~reckon.core.LocalStore` is opened there), a store URL
    (``redis://...``, ``s3://...``: see :func:`~reckon.core.open_store`) or a Store;
    ``None`` with no ``size`` uses the process-wide default engine (``$RECKON_CACHE_DIR`` or the
    per-user cache dir); ``None`` with a ``size`` gets its own directory under it.
    ``size``: the store's byte budget (``"10 GiB"``); ``policy``: ``"gds"`` or ``"lru"``;
    ``level``: the default caching level of the group's functions; ``memory_budget``: bytes of
    the in-memory tier; ``verbose``: one line on stderr per call of its functions (unless a
    function says otherwise).
    """

    def __init__(
        self,
        name: str = "default",
        *,
        store: str | os.PathLike[str] | Store | None = None,
        size: int | str | None = None,
        policy: Policy = "gds",
        level: CachingLevel = CachingLevel.FULL,
        memory_budget: int | str | None = None,
        verbose: bool | None = None,
    ) -> None:
        if not isinstance(name, str) or not name:
            raise ConfigurationError(f"a group name must be a non-empty str, got {name!r}")
        if policy not in ("lru", "gds"):
            raise ConfigurationError(f"policy must be 'lru' or 'gds', got {policy!r}")
        level = as_level(level)
        self.name = name
        self.store_spec: str | Store | None = (
            os.fspath(store) if isinstance(store, str | os.PathLike) else store
        )
        spec = self.store_spec
        if spec is not None and not isinstance(spec, str) and not isinstance(spec, Store):
            raise ConfigurationError(
                f"store must be a directory path or a reckon Store, got {type(store).__name__}"
            )
        self.size = parse_size(size, "size")
        self.policy: Policy = policy
        self.level = level
        self.memory_budget = parse_size(memory_budget, "memory_budget")
        #: One line on stderr per call of the group's functions (see ``memoize(verbose=...)``).
        self.verbose = verbose
        self._backend: _Backend | None = None
        self._lock = threading.Lock()
        _all_groups.add(self)
        if name not in _groups:
            _groups[name] = self

    # -- backend ----------------------------------------------------------------------------

    @property
    def path(self) -> Path | None:
        """The directory of the group's store (None for a non-directory store)."""
        if isinstance(self.store_spec, str):
            path = local_path(self.store_spec)
            return Path(path) if path is not None else None
        if self.store_spec is not None:
            return store_path(self.store_spec)
        if self.size is not None or self.memory_budget is not None:
            return default_cache_dir() / "groups" / self.name
        return None

    def _make_backend(self) -> _Backend:
        spec = self.store_spec
        if spec is None and self.size is None and self.memory_budget is None:
            engine = default_engine()
            path = local_dir_of(engine.store)
            if path is None and engine.store is not None:
                path = default_cache_dir()
            key: tuple[Any, ...] = ("default", id(engine))
            with _backends_lock:
                backend = _backends.get(key)
                if backend is None:
                    backend = _Backend(engine, path, owned=False)
                    _backends[key] = backend
            return backend
        if isinstance(spec, str) and local_path(spec) is None:
            spec = open_store(spec)  # a URL of a shared store: one per process, like a Store
        if isinstance(spec, str) or spec is None:
            path = self.path
            assert path is not None
            key = ("dir", str(path.resolve()))
            with _backends_lock:
                backend = _backends.get(key)
                if backend is None:
                    backend_ref: list[_Backend] = []
                    local = LocalStore(
                        path,
                        budget=self.size if self.size is not None else 10 << 30,
                        policy=self.policy,
                        on_evict=_on_evict_for(backend_ref),
                    )
                    backend = _Backend(self._engine_for(local), path, owned=True)
                    backend_ref.append(backend)
                    _backends[key] = backend
            return backend
        assert not isinstance(spec, str)
        key = ("store", id(spec))
        with _backends_lock:
            backend = _backends.get(key)
            if backend is None:
                backend = _Backend(self._engine_for(spec), local_dir_of(spec), owned=True)
                _backends[key] = backend
        return backend

    def _engine_for(self, store: Store) -> Engine:
        if self.memory_budget is not None:
            return Engine(store=store, memory_budget=self.memory_budget, name=f"memo:{self.name}")
        return Engine(store=store, name=f"memo:{self.name}")

    @property
    def backend(self) -> _Backend:
        backend = self._backend
        if backend is None:
            with self._lock:
                backend = self._backend
                if backend is None:
                    backend = self._backend = self._make_backend()
        return backend

    @property
    def engine(self) -> Engine:
        """The engine the group's functions resolve through."""
        return self.backend.engine

    def _after_fork(self) -> None:
        self._backend = None
        self._lock = threading.Lock()

    # -- operations -------------------------------------------------------------------------

    def flush(self) -> list[str]:
        """Wait for background store writes (and memo's notes); returns the keys whose values
        could not be stored (see ``Engine.flush``)."""
        backend = self._backend
        failed: list[str] = []
        if backend is not None:
            failed = backend.engine.flush()
        background.flush()
        return failed

    def usage(self) -> dict[str, Any]:
        """Store usage of the group (entries, bytes, budget), or None without a store."""
        engine = self.engine
        store = engine.store
        return {
            "group": self.name,
            "path": str(self.path) if self.path else None,
            "store": store.usage().to_dict() if store is not None else None,
        }

    def __repr__(self) -> str:
        where = self.store_spec if isinstance(self.store_spec, str) else type(self.store_spec)
        return (
            f"MemoizedGroup({self.name!r}, store={where!r}, size={self.size}, "
            f"policy={self.policy!r})"
        )

    # -- pickling: configuration only ------------------------------------------------------

    def __reduce__(self) -> tuple[Any, ...]:
        spec: str | Store | None = self.store_spec
        if spec is not None and not isinstance(spec, str):
            path = store_path(spec)
            spec = os.fspath(path) if path is not None else spec
        return (
            _restore_group,
            (self.name, spec, self.size, self.policy, int(self.level), self.memory_budget),
        )


def _restore_group(
    name: str,
    store: str | Store | None,
    size: int | None,
    policy: Policy,
    level: int,
    memory_budget: int | None,
) -> MemoizedGroup:
    for group in list(_all_groups):
        if (
            group.name == name
            and group.store_spec == store
            and group.size == size
            and group.policy == policy
            and int(group.level) == level
            and group.memory_budget == memory_budget
        ):
            return group
    return MemoizedGroup(
        name,
        store=store,
        size=size,
        policy=policy,
        level=CachingLevel(level),
        memory_budget=memory_budget,
    )


def get_group(name: str) -> MemoizedGroup:
    """The group registered under ``name`` (the first group created with it), created if new."""
    group = _groups.get(name)
    if group is None:
        group = MemoizedGroup(name)
    return group


def group_for_store(
    store: str | os.PathLike[str] | Store | None, size: int | str | None, policy: Policy | None
) -> MemoizedGroup:
    """The anonymous group of one store/budget/policy, shared by functions that name it."""
    spec = os.fspath(store) if isinstance(store, str | os.PathLike) else store
    nbytes = parse_size(size)
    pol: Policy = policy or "gds"
    for group in list(_all_groups):
        if group.store_spec == spec and group.size == nbytes and group.policy == pol:
            return group
    if spec is None:
        name = f"budget-{nbytes}-{pol}"  # its own directory under the default cache dir
    elif isinstance(spec, str):
        name = f"store:{spec}"
    else:
        name = f"store:{id(spec):x}"
    return MemoizedGroup(name, store=store, size=nbytes, policy=pol)


def flush_all() -> None:
    """Wait for every background store write of this process (see ``commit()``)."""
    with _backends_lock:
        backends = list(_backends.values())
    for backend in backends:
        backend.engine.flush()
    background.flush()


def _reset_after_fork() -> None:
    global _backends_lock
    _backends_lock = threading.RLock()
    _backends.clear()
    for group in list(_all_groups):
        group._after_fork()


os.register_at_fork(after_in_child=_reset_after_fork)
