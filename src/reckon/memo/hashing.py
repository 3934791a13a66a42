"""Deterministic hash of Python values by value (xxh3-128), the argument half of a memo key.

Why not ``hash()`` or pickle: ``hash(str)`` changes with PYTHONHASHSEED, pickles of equal dicts or
sets differ with insertion order, and pickles embed memo ids. Here every value is written as a
canonical, type-tagged byte stream that is fed to one xxh3-128 state:

- The stream is built in a ``bytearray``; buffers of 4 KiB or more (bytes, numpy data) go straight
  to the xxh3 state without being copied, so a 10 MB array costs what xxh3 costs.
- Type dispatch is by exact type in a dict; a type seen for the first time is classified once and
  its handler cached, so small arguments hash in about a microsecond.
- Unordered containers (dict, set) hash each entry on its own and sort the entry digests; dicts
  whose keys are all ``str`` (and sets of str or int) are sorted directly, which is cheaper.
- Containers and objects on the current path are remembered by id; meeting one again writes a
  cycle marker with its distance up the path, so cyclic structures hash deterministically.
- Functions, classes and modules hash by their fingerprint (``reckon.memo.fingerprint``), so an
  argument that is code changes the key when the code changes.

This module holds the stream, the built-in scalars and containers, and the dispatch table;
``_keys_stdlib`` the standard library's value types, ``_keys_objects`` the choice of a handler for a
new type and objects hashed by their state, ``_keys_arrays`` numpy and pandas.

Decisions a user may trip over (documented in ``docs/memo-keys.md``): type is part of the value
(``1``, ``1.0``, ``True`` and ``np.int64(1)`` are four keys), ``-0.0`` and ``0.0`` are different
keys (``math.copysign`` and ``atan2`` tell them apart) while every NaN is one key; ``Decimal``
hashes its representation (``1.0`` and ``1.00`` differ); datetimes hash their wall time and zone
(the same instant in two zones is two keys).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from reckon.errors import UnhashableArgumentError
from reckon.memo import _keys_stdlib
from reckon.memo._keys_objects import choose
from reckon.memo._keys_stream import (
    BASE,
    CHOOSER,
    CODE_WRITER,
    DIRECT,
    DISPATCH,
    I64_MAX,
    I64_MIN,
    REGISTERED,
    SUBCLASSABLE,
    T_BYTES,
    T_FALSE,
    T_FLOAT,
    T_INT,
    T_NAN,
    T_NONE,
    T_STR,
    T_TRUE,
    T_TUPLE,
    TAG_F64,
    TAG_I64,
    TAG_LEN,
    Hasher,
    Unhashable,
    public_error,
    resolve,
    root_name,
    type_name,
    xxh3_digest,
)

__all__ = [
    "DIGEST_SIZE",
    "FORMAT_VERSION",
    "Hasher",
    "hash_value",
    "register_hasher",
    "set_code_writer",
    "type_name",
    "unregister_hasher",
]

DIGEST_SIZE = 16

#: Bump when the byte stream changes for any value: every stored key changes with it.
FORMAT_VERSION = 2

# The standard library's value types (datetime, decimal, collections, pathlib, ...) and the choice
# of a handler for other types come from their own modules.
BASE.update(_keys_stdlib.HANDLERS)
SUBCLASSABLE.update(_keys_stdlib.SUBCLASSABLE)
DISPATCH.update(BASE)
CHOOSER[0] = choose


def set_code_writer(writer: Callable[[object], bytes]) -> None:
    """How functions, classes and modules met inside values are written into a key.

    ``reckon.memo.fingerprint`` installs its fingerprint here when imported (this module cannot
    import it: the fingerprint is built from this module's Hasher).
    """
    CODE_WRITER[0] = writer


def register_hasher(tp: type, fn: Callable[[Any], object]) -> None:
    """Hash instances of ``tp`` (and its subclasses) as ``fn(obj)``, a stand-in hashed by value.

    The type's qualified name is hashed too, so two types with equal stand-ins stay distinct.
    """
    if not isinstance(tp, type):
        raise TypeError(f"register_hasher needs a type, got {tp!r}")
    if not callable(fn):
        raise TypeError(f"register_hasher needs a callable, got {fn!r}")
    REGISTERED[tp] = fn
    DISPATCH.clear()
    DISPATCH.update(BASE)


def unregister_hasher(tp: type) -> None:
    """Undo ``register_hasher(tp, ...)``."""
    REGISTERED.pop(tp, None)
    DISPATCH.clear()
    DISPATCH.update(BASE)


_POOL: list[Hasher] = []


def _flat(obj: tuple[Any, ...]) -> bytearray | None:
    """The stream of a tuple of small scalars, written inline (the common argument tuple).

    Writes exactly what the handlers would; returns None as soon as an element needs them.
    """
    buf = bytearray(TAG_LEN(T_TUPLE, len(obj)))
    for x in obj:
        tp = type(x)
        if tp is int:
            if not I64_MIN <= x <= I64_MAX:
                return None
            buf += TAG_I64(T_INT, x)
        elif tp is str:
            data = x.encode("utf-8", "surrogatepass")
            if len(data) >= DIRECT:
                return None
            buf += TAG_LEN(T_STR, len(data))
            buf += data
        elif tp is float:
            if x != x:
                buf.append(T_NAN)
            else:
                buf += TAG_F64(T_FLOAT, x)
        elif x is None:
            buf.append(T_NONE)
        elif x is True:
            buf.append(T_TRUE)
        elif x is False:
            buf.append(T_FALSE)
        elif tp is bytes and len(x) < DIRECT:
            buf += TAG_LEN(T_BYTES, len(x))
            buf += x
        else:
            return None
    return buf


def hash_value(obj: object, *, path: str = "value") -> bytes:
    """16-byte xxh3-128 digest of ``obj`` by value, equal across processes and hash seeds.

    ``path`` names the value in error messages (the decorator passes the argument's name).
    """
    if type(obj) is tuple:
        flat = _flat(obj)
        if flat is not None:
            return xxh3_digest(flat)
    try:
        h = _POOL.pop()
    except IndexError:
        h = Hasher()
    try:
        tp = type(obj)
        fn = DISPATCH.get(tp)
        if fn is None:
            fn = resolve(tp)
        fn(h, obj)
        return h._finish()
    except Unhashable as exc:
        raise public_error(exc, path) from None
    except RecursionError:
        raise UnhashableArgumentError(
            f"argument {path}: nested too deeply to hash (recursion limit). Fix: leave it out of "
            f"the key with @memoize(ignore=({root_name(path)!r},)), give a key function with "
            "@memoize(key=...), or define __reckon_hash__ returning a flatter stand-in."
        ) from None
    finally:
        h._buf.clear()
        h._state = None
        if h._stack:
            h._stack.clear()
        h.code_hook = None
        if len(_POOL) < 8:
            _POOL.append(h)
