"""Fingerprint of a function's code closure: the half of a memo key that says *which code* ran.

``fingerprint(f)`` hashes the walk of ``f``'s code graph (:mod:`reckon.memo.codegraph`): the local
digests of the nodes in visiting order, with a back-reference for a node seen before. That
serialisation is canonical, so mutual recursion is handled and a node's digest does not depend on
which function was fingerprinted first. Fingerprints are cached per object (weakly): the first
call costs a walk over the reachable code (bytecode scans are cached per code object), later calls
a lookup. Local digests are recomputed for every new root, so a helper's global read afresh when
the function that reaches it is redefined (a re-run Jupyter cell) sees the helper's current values.

Values of globals are read once, when the fingerprint is first computed: mutate a global the
function reads afterwards and the key does not follow.
"""

from __future__ import annotations

import contextlib
import struct
import threading
import types
import weakref
from collections.abc import Callable
from typing import Any

import xxhash

from reckon.errors import FingerprintError
from reckon.memo import _keys_modules
from reckon.memo._keys_modules import count_by_version, python_token
from reckon.memo.codegraph import Leaf, classify, node_label, qualname, walk
from reckon.memo.hashing import FORMAT_VERSION, set_code_writer

__all__ = ["count_by_version", "explain", "fingerprint"]

_U32 = struct.Struct("<I").pack
_SALT = f"reckon-fingerprint/{FORMAT_VERSION}/{python_token()}".encode()

_fingerprints: weakref.WeakKeyDictionary[Any, bytes] = weakref.WeakKeyDictionary()
_lock = threading.RLock()


def _cache_get(cache: weakref.WeakKeyDictionary[Any, Any], obj: object) -> Any:
    try:
        return cache.get(obj)
    except TypeError:  # not weak-referenceable (or unhashable): not cached
        return None


def _cache_put(cache: weakref.WeakKeyDictionary[Any, Any], obj: object, value: object) -> None:
    with _lock, contextlib.suppress(TypeError):
        cache[obj] = value


# -- public API --------------------------------------------------------------------------------


def fingerprint(func: Callable[..., object] | type | types.ModuleType | object) -> bytes:
    """16-byte digest of the code ``func`` can reach (cached per function object)."""
    cached = _cache_get(_fingerprints, func)
    if cached is not None:
        return cached  # type: ignore[no-any-return,unused-ignore]
    try:
        target = classify(func)
        if isinstance(target, Leaf):
            result = xxhash.xxh3_128_digest(_SALT + b"L" + target.digest)
        else:
            h = xxhash.xxh3_128(_SALT)
            for _depth, _node, local, seen in walk(target):
                if local is None:
                    h.update(b"R" + _U32(seen or 0))
                else:
                    h.update(b"N" + _U32(len(local.edges)) + local.digest)
            result = h.digest()
    except RecursionError as exc:
        raise FingerprintError(
            f"cannot fingerprint {qualname(func)}: a value it reads is nested too deeply. "
            "Fix: give the function an explicit version with @memoize(version=...)."
        ) from exc
    except FingerprintError:
        raise
    except Exception as exc:  # a value or module that misbehaves while being read
        raise FingerprintError(
            f"cannot fingerprint {qualname(func)}: {type(exc).__name__}: {exc}. Fix: give the "
            "function an explicit version with @memoize(version=...), or make the value it "
            "reads hashable (__reckon_hash__)."
        ) from exc
    _cache_put(_fingerprints, func, result)
    return result


def explain(func: Callable[..., object] | type | types.ModuleType | object) -> list[str]:
    """What went into ``fingerprint(func)``, one line per item, indented by call depth."""
    target = classify(func)
    if isinstance(target, Leaf):
        return [target.label]
    lines: list[str] = []
    for depth, node, local, _seen in walk(target):
        pad = "  " * depth
        if local is None:
            lines.append(f"{pad}{node_label(node)} (seen above)")
            continue
        lines.append(f"{pad}{local.label}")
        lines.extend(f"{pad}  {note}" for note in local.notes if not note.startswith("refers to"))
    return lines


def forget() -> None:
    """Drop every cached fingerprint and classification (for tests and reloads)."""
    with _lock:
        _fingerprints.clear()
    _keys_modules.forget()


set_code_writer(fingerprint)
