"""Stores: where the engine keeps encoded values beyond the memory tier.

Every store implements :class:`Store` (bytes in, bytes out, never a corrupt or unauthenticated
value). The engine and the layers above use stores only through that protocol, and name them by
URL through :func:`open_store`.
"""

from reckon.core.stores.base import Store, StoreUsage
from reckon.core.stores.local import LocalStore, default_directory
from reckon.core.stores.objectstore import ObjectStore
from reckon.core.stores.urls import open_store

__all__ = [
    "LocalStore",
    "ObjectStore",
    "RedisStore",
    "Store",
    "StoreUsage",
    "default_directory",
    "open_store",
]


def __getattr__(name: str) -> object:
    # RedisStore needs redis-py, which is not a core dependency: import it on first use only.
    if name == "RedisStore":
        from reckon.core.stores.redis import RedisStore

        return RedisStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
