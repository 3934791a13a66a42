"""reckon: expensive computations, done once.

The public face. Everything a user needs for everyday work is importable from here; the layers
(``reckon.core``, ``reckon.memo``, ``reckon.observe``, ``reckon.pva``, ``reckon.service``) hold
the rest. Names are loaded on first use, so ``import reckon`` stays cheap and a layer's
dependencies are imported only by code that uses that layer.
"""

from __future__ import annotations

import importlib
import os
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if os.environ.get("RECKON_OBSERVE", "").strip():
    # Serve the first engine this process creates (memoize's, the default one, or the program's
    # own) on the address in $RECKON_OBSERVE. The core knows nothing of observe: it only calls
    # the hook; observe is imported when the first engine exists, not before.
    def _observe_first_engine(engine: Engine) -> None:
        from reckon.observe import autostart

        autostart(engine)

    from reckon.core.engine import on_engine_created as _on_engine_created

    _on_engine_created(_observe_first_engine)

if TYPE_CHECKING:
    from reckon.core import CachingLevel, Engine, LocalStore, RequestId, open_store
    from reckon.memo.group import MemoizedGroup
    from reckon.memo.helpers import TTL, FileContents
    from reckon.memo.memoize import Memoized, memoize

_EXPORTS = {
    "memoize": "reckon.memo",
    "Memoized": "reckon.memo",
    "MemoizedGroup": "reckon.memo",
    "FileContents": "reckon.memo",
    "TTL": "reckon.memo",
    "CachingLevel": "reckon.core",
    "Engine": "reckon.core",
    "RequestId": "reckon.core",
    "LocalStore": "reckon.core",
    "open_store": "reckon.core",
}

__all__ = [
    "TTL",
    "CachingLevel",
    "Engine",
    "FileContents",
    "LocalStore",
    "Memoized",
    "MemoizedGroup",
    "RequestId",
    "__version__",
    "memoize",
    "open_store",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'reckon' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
