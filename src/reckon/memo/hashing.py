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

import struct
import types
from collections.abc import Callable, Iterable
from typing import Any

import xxhash

from reckon.errors import UnhashableArgumentError

__all__ = ["DIGEST_SIZE", "Hasher", "hash_value", "register_hasher", "unregister_hasher"]

DIGEST_SIZE = 16

#: Bump when the byte stream changes for any value: every stored key changes with it.
FORMAT_VERSION = 1

# Buffers at least this large are fed to the xxh3 state directly instead of being copied into the
# staging bytearray.
_DIRECT = 4096

_xxh3 = xxhash.xxh3_128
_xxh3_digest = xxhash.xxh3_128_digest

_TAG_LEN = struct.Struct("<BQ").pack  # tag + unsigned length / count
_TAG_I64 = struct.Struct("<Bq").pack
_TAG_F64 = struct.Struct("<Bd").pack
_TAG_C128 = struct.Struct("<Bdd").pack
_I64_MIN = -(1 << 63)
_I64_MAX = (1 << 63) - 1

# One byte per kind of value. Never reuse or renumber a tag: stored keys depend on them.
T_NONE = 0x01
T_TRUE = 0x02
T_FALSE = 0x03
T_INT = 0x04
T_BIGINT = 0x05
T_FLOAT = 0x06
T_NAN = 0x07
T_COMPLEX = 0x08
T_STR = 0x09
T_BYTES = 0x0A
T_BYTEARRAY = 0x0B
T_MEMORYVIEW = 0x0C
T_TUPLE = 0x0D
T_LIST = 0x0E
T_DICT = 0x0F
T_DICT_STR = 0x10
T_SET = 0x11
T_FROZENSET = 0x12
T_SET_SORTED = 0x13
T_FROZENSET_SORTED = 0x14
T_CYCLE = 0x15
T_ELLIPSIS = 0x16
T_NOTIMPLEMENTED = 0x17
T_TYPENAME = 0x18
T_STANDIN = 0x19
T_ENUM = 0x1A
T_NAMEDTUPLE = 0x1B
T_DATACLASS = 0x1C
T_OBJECT = 0x1D
T_REDUCE_STR = 0x1E
T_PATH = 0x1F
T_DATETIME = 0x20
T_DATE = 0x21
T_TIME = 0x22
T_TIMEDELTA = 0x23
T_TIMEZONE = 0x24
T_ZONEINFO = 0x25
T_DECIMAL = 0x26
T_FRACTION = 0x27
T_UUID = 0x28
T_RANGE = 0x29
T_CODE = 0x2A
T_NDARRAY = 0x2B
T_NDARRAY_OBJECT = 0x2C
T_NDARRAY_STRUCT = 0x2D
T_NPSCALAR = 0x2E
T_PANDAS = 0x2F
T_ORDEREDDICT = 0x30
T_DEFAULTDICT = 0x31
T_COUNTER = 0x32
T_DEQUE = 0x33
T_MAPPINGPROXY = 0x34
T_BYTESIO = 0x35
T_STRINGIO = 0x36
T_SLICE = 0x37
T_ARRAY = 0x38
T_ABSENT = 0x39
T_BUFFER = 0x3A


class _Unhashable(Exception):
    """Internal: raised at the failing value, collects the path while unwinding."""

    def __init__(self, type_name: str, reason: str) -> None:
        super().__init__(type_name, reason)
        self.type_name = type_name
        self.reason = reason
        self.parts: list[str] = []  # innermost first


Handler = Callable[["Hasher", Any], None]

_TYPE_NAMES: dict[type, str] = {}


def type_name(tp: type) -> str:
    """``module.qualname`` of a type, cached (the name identifies the type inside keys).

    A class of the main script is ``__main__.X`` in the parent and ``__mp_main__.X`` in
    multiprocessing workers: both are written as ``__main__.X`` so their keys agree.
    """
    name = _TYPE_NAMES.get(tp)
    if name is None:
        module = getattr(tp, "__module__", None) or "?"
        if module == "__mp_main__":
            module = "__main__"
        name = f"{module}.{getattr(tp, '__qualname__', tp.__name__)}"
        _TYPE_NAMES[tp] = name
    return name


class Hasher:
    """Incremental hasher: ``update(value)`` any number of times, then ``digest()``.

    A Hasher is reusable after ``reset()`` but not thread-safe; ``hash_value`` keeps a small pool.
    ``code_hook``, when given, decides how functions, classes and modules are written (it returns
    the bytes to write); the fingerprinting code uses it to turn code references into graph edges.
    """

    __slots__ = ("_buf", "_stack", "_state", "code_hook")

    def __init__(self, code_hook: Callable[[object], bytes] | None = None) -> None:
        self._buf = bytearray()
        self._state: Any = None
        self._stack: dict[int, int] = {}
        self.code_hook = code_hook

    # -- public ------------------------------------------------------------------------------

    def update(self, obj: object, *, path: str = "value") -> None:
        """Append one value to the stream (raises UnhashableArgumentError naming ``path``)."""
        try:
            self._feed(obj)
        except _Unhashable as exc:
            self._stack.clear()
            raise _public_error(exc, path) from None
        except RecursionError:
            self._stack.clear()
            raise UnhashableArgumentError(
                f"argument {path}: nested too deeply to hash (recursion limit). Fix: leave it out "
                f"of the key with @memoize(ignore=({_root_name(path)!r},)), give a key function "
                "with @memoize(key=...), or define __reckon_hash__ returning a flatter stand-in."
            ) from None

    def digest(self) -> bytes:
        """The 16-byte xxh3-128 digest of everything fed since the last reset."""
        if self._state is None:
            return _xxh3_digest(self._buf)
        state = self._state.copy()
        state.update(self._buf)
        return state.digest()  # type: ignore[no-any-return, unused-ignore]

    def hexdigest(self) -> str:
        return self.digest().hex()

    def reset(self) -> None:
        self._buf.clear()
        self._state = None
        self._stack.clear()

    # -- internals ---------------------------------------------------------------------------

    def _feed(self, obj: object) -> None:
        tp = type(obj)
        fn = _DISPATCH.get(tp)
        if fn is None:
            fn = _resolve(tp)
        fn(self, obj)

    def _finish(self) -> bytes:
        if self._state is None:
            return _xxh3_digest(self._buf)
        self._state.update(self._buf)
        return self._state.digest()  # type: ignore[no-any-return, unused-ignore]

    def _put_buffer(self, data: Any, nbytes: int) -> None:
        """Write a buffer without copying it when it is large."""
        if nbytes < _DIRECT:
            self._buf += data
            return
        if self._state is None:
            self._state = _xxh3()
        self._state.update(self._buf)
        self._buf.clear()
        self._state.update(data)

    def _sub_digest(self, *objs: object) -> bytes:
        """Digest of ``objs`` alone (for entries of unordered containers), path stack shared."""
        saved_buf, saved_state = self._buf, self._state
        self._buf = bytearray()
        self._state = None
        try:
            for obj in objs:
                self._feed(obj)
            return self._finish()
        finally:
            self._buf, self._state = saved_buf, saved_state

    def _enter(self, obj: object) -> bool:
        """Push ``obj`` on the path; False (and a cycle marker written) if already on it."""
        oid = id(obj)
        stack = self._stack
        depth = stack.get(oid)
        if depth is not None:
            self._buf += _TAG_LEN(T_CYCLE, len(stack) - depth)
            return False
        stack[oid] = len(stack)
        return True

    def _leave(self, obj: object) -> None:
        del self._stack[id(obj)]


# -- error text ------------------------------------------------------------------------------


def _root_name(path: str) -> str:
    for i, ch in enumerate(path):
        if ch in "[.{<":
            return path[:i]
    return path


def _public_error(exc: _Unhashable, path: str) -> UnhashableArgumentError:
    full = path + "".join(reversed(exc.parts))
    root = _root_name(path)
    return UnhashableArgumentError(
        f"argument {full}: cannot hash a {exc.type_name} ({exc.reason}). Fix: leave the argument "
        f"out of the key with @memoize(ignore=({root!r},)), compute the key yourself with "
        f"@memoize(key=...), or give {exc.type_name.rsplit('.', 1)[-1]} a __reckon_hash__(self) "
        "method (or call reckon.memo.hashing.register_hasher) returning a stand-in hashed by value."
    )


def _short_repr(obj: object) -> str:
    try:
        text = repr(obj)
    except Exception:  # a broken __repr__ must not hide the real error
        text = f"<{type_name(type(obj))}>"
    return text if len(text) <= 40 else text[:37] + "..."


# -- handlers for exact built-in types -----------------------------------------------------------


def _h_none(h: Hasher, obj: None) -> None:
    h._buf.append(T_NONE)


def _h_bool(h: Hasher, obj: bool) -> None:
    h._buf.append(T_TRUE if obj else T_FALSE)


def _h_int(h: Hasher, obj: int) -> None:
    if _I64_MIN <= obj <= _I64_MAX:
        h._buf += _TAG_I64(T_INT, obj)
    else:
        data = obj.to_bytes((obj.bit_length() + 8) // 8, "little", signed=True)
        h._buf += _TAG_LEN(T_BIGINT, len(data))
        h._buf += data


def _h_float(h: Hasher, obj: float) -> None:
    if obj != obj:  # every NaN (any sign or payload) is one key
        h._buf.append(T_NAN)
    else:
        h._buf += _TAG_F64(T_FLOAT, obj)


def _h_complex(h: Hasher, obj: complex) -> None:
    re_, im = obj.real, obj.imag
    h._buf += _TAG_C128(T_COMPLEX, 0.0 if re_ != re_ else re_, 0.0 if im != im else im)
    # NaN parts need their own marker so nan+0j differs from 0j.
    h._buf.append((re_ != re_) | ((im != im) << 1))


def _h_str(h: Hasher, obj: str) -> None:
    data = obj.encode("utf-8", "surrogatepass")
    h._buf += _TAG_LEN(T_STR, len(data))
    h._put_buffer(data, len(data))


def _h_bytes(h: Hasher, obj: bytes) -> None:
    h._buf += _TAG_LEN(T_BYTES, len(obj))
    h._put_buffer(obj, len(obj))


def _h_bytearray(h: Hasher, obj: bytearray) -> None:
    h._buf += _TAG_LEN(T_BYTEARRAY, len(obj))
    h._put_buffer(obj, len(obj))


def _h_memoryview(h: Hasher, obj: memoryview) -> None:
    h._buf += _TAG_LEN(T_MEMORYVIEW, obj.ndim)
    _h_str(h, obj.format)
    for dim in obj.shape or ():
        h._buf += _TAG_LEN(T_INT, dim)
    if obj.c_contiguous:
        flat = obj.cast("B") if obj.ndim != 0 or obj.format != "B" else obj
        h._buf += _TAG_LEN(T_BUFFER, obj.nbytes)
        h._put_buffer(flat, obj.nbytes)
    else:
        data = obj.tobytes()
        h._buf += _TAG_LEN(T_BUFFER, len(data))
        h._put_buffer(data, len(data))


def _index_of(seq: Iterable[object], item: object) -> int:
    for i, x in enumerate(seq):
        if x is item:
            return i
    return -1


def _h_tuple(h: Hasher, obj: tuple[Any, ...]) -> None:
    h._buf += _TAG_LEN(T_TUPLE, len(obj))
    get = _DISPATCH.get
    x: Any = None
    try:
        for x in obj:
            tp = type(x)
            (get(tp) or _resolve(tp))(h, x)
    except _Unhashable as exc:
        exc.parts.append(f"[{_index_of(obj, x)}]")
        raise


def _h_list(h: Hasher, obj: list[Any]) -> None:
    if not h._enter(obj):
        return
    h._buf += _TAG_LEN(T_LIST, len(obj))
    get = _DISPATCH.get
    x: Any = None
    try:
        for x in obj:
            tp = type(x)
            (get(tp) or _resolve(tp))(h, x)
    except _Unhashable as exc:
        exc.parts.append(f"[{_index_of(obj, x)}]")
        raise
    finally:
        h._leave(obj)


def _feed_items_unordered(h: Hasher, tag: int, tag_str: int, items: Any, n: int) -> None:
    """Dict-like entries, independent of insertion order."""
    k: Any = None
    try:
        for k in items:
            if type(k) is not str:
                break
        else:  # every key is a str: sort the keys themselves (cheaper than digests)
            buf = h._buf  # stable: _buf is cleared in place, and _sub_digest restores it
            buf += _TAG_LEN(tag_str, n)
            get = _DISPATCH.get
            for k in sorted(items):
                data = k.encode("utf-8", "surrogatepass")
                if len(data) < _DIRECT:
                    buf += _TAG_LEN(T_STR, len(data))
                    buf += data
                else:
                    _h_str(h, k)
                v = items[k]
                tp = type(v)
                (get(tp) or _resolve(tp))(h, v)
            return
        digests = []
        for k, v in items.items():
            digests.append(h._sub_digest(k, v))
    except _Unhashable as exc:
        exc.parts.append(f"[{_short_repr(k)}]")
        raise
    digests.sort()
    h._buf += _TAG_LEN(tag, n)
    h._buf += b"".join(digests)


def _h_dict(h: Hasher, obj: dict[Any, Any]) -> None:
    stack = h._stack
    oid = id(obj)
    depth = stack.get(oid)
    if depth is not None:  # a cycle: as Hasher._enter, inlined on this hot path
        h._buf += _TAG_LEN(T_CYCLE, len(stack) - depth)
        return
    stack[oid] = len(stack)
    try:
        _feed_items_unordered(h, T_DICT, T_DICT_STR, obj, len(obj))
    finally:
        del stack[oid]


def _feed_set(h: Hasher, obj: Any, tag: int, tag_sorted: int) -> None:
    n = len(obj)
    x: Any = None
    try:
        if n and (all(type(x) is str for x in obj) or all(type(x) is int for x in obj)):
            h._buf += _TAG_LEN(tag_sorted, n)
            for x in sorted(obj):
                h._feed(x)
            return
        digests = sorted([h._sub_digest(x) for x in obj])
    except _Unhashable as exc:
        exc.parts.append("{" + _short_repr(x) + "}")
        raise
    h._buf += _TAG_LEN(tag, n)
    h._buf += b"".join(digests)


def _h_set(h: Hasher, obj: set[Any]) -> None:
    if not h._enter(obj):
        return
    try:
        _feed_set(h, obj, T_SET, T_SET_SORTED)
    finally:
        h._leave(obj)


def _h_frozenset(h: Hasher, obj: frozenset[Any]) -> None:
    _feed_set(h, obj, T_FROZENSET, T_FROZENSET_SORTED)


def _h_ellipsis(h: Hasher, obj: object) -> None:
    h._buf.append(T_ELLIPSIS)


def _h_notimplemented(h: Hasher, obj: object) -> None:
    h._buf.append(T_NOTIMPLEMENTED)


def _put_typename(h: Hasher, tp: type) -> None:
    data = type_name(tp).encode("utf-8", "surrogatepass")
    h._buf += _TAG_LEN(T_TYPENAME, len(data))
    h._buf += data


def _h_code_ref(h: Hasher, obj: object) -> None:
    """Functions, classes, modules, methods: written as their fingerprint."""
    hook = h.code_hook
    if hook is None:
        from reckon.memo.fingerprint import fingerprint

        data = fingerprint(obj)
    else:
        data = hook(obj)
    h._buf += _TAG_LEN(T_CODE, len(data))
    h._buf += data


class _Absent:
    """Marker for a declared field or slot that has no value."""


_ABSENT = _Absent()


def _h_absent(h: Hasher, obj: object) -> None:
    h._buf.append(T_ABSENT)


def _resolve(tp: type) -> Handler:
    """Choose the handler for a type not in the table yet, and remember it."""
    from reckon.memo._keys_objects import choose

    handler = choose(tp)
    _DISPATCH[tp] = handler
    return handler


# Exact-type dispatch table. _BASE holds the built-in handlers; _DISPATCH adds handlers resolved
# on first sight and is rebuilt from _BASE when a hasher is registered.
_BASE: dict[type, Handler] = {
    type(None): _h_none,
    bool: _h_bool,
    int: _h_int,
    float: _h_float,
    complex: _h_complex,
    str: _h_str,
    bytes: _h_bytes,
    bytearray: _h_bytearray,
    memoryview: _h_memoryview,
    tuple: _h_tuple,
    list: _h_list,
    dict: _h_dict,
    set: _h_set,
    frozenset: _h_frozenset,
    type(...): _h_ellipsis,
    type(NotImplemented): _h_notimplemented,
    _Absent: _h_absent,
    types.FunctionType: _h_code_ref,
    types.BuiltinFunctionType: _h_code_ref,
    types.MethodType: _h_code_ref,
    types.ModuleType: _h_code_ref,
    type: _h_code_ref,
}

# Subclasses of these (without extra attributes) hash as their base, prefixed by their name.
_SUBCLASSABLE: dict[type, Handler] = {
    str: _h_str,
    bytes: _h_bytes,
    int: _h_int,
    float: _h_float,
    tuple: _h_tuple,
    list: _h_list,
    dict: _h_dict,
    set: _h_set,
    frozenset: _h_frozenset,
}

# The standard library's value types (datetime, decimal, collections, pathlib, ...) live in their
# own module, which needs the primitives above: imported here, once they exist.
from reckon.memo import _keys_stdlib  # noqa: E402

_BASE.update(_keys_stdlib.HANDLERS)
_SUBCLASSABLE.update(_keys_stdlib.SUBCLASSABLE)
_REGISTERED: dict[type, Callable[[Any], object]] = {}
_DISPATCH: dict[type, Handler] = dict(_BASE)


def register_hasher(tp: type, fn: Callable[[Any], object]) -> None:
    """Hash instances of ``tp`` (and its subclasses) as ``fn(obj)``, a stand-in hashed by value.

    The type's qualified name is hashed too, so two types with equal stand-ins stay distinct.
    """
    if not isinstance(tp, type):
        raise TypeError(f"register_hasher needs a type, got {tp!r}")
    if not callable(fn):
        raise TypeError(f"register_hasher needs a callable, got {fn!r}")
    _REGISTERED[tp] = fn
    _DISPATCH.clear()
    _DISPATCH.update(_BASE)


def unregister_hasher(tp: type) -> None:
    """Undo ``register_hasher(tp, ...)``."""
    _REGISTERED.pop(tp, None)
    _DISPATCH.clear()
    _DISPATCH.update(_BASE)


_POOL: list[Hasher] = []


def _flat(obj: tuple[Any, ...]) -> bytearray | None:
    """The stream of a tuple of small scalars, written inline (the common argument tuple).

    Writes exactly what the handlers would; returns None as soon as an element needs them.
    """
    buf = bytearray(_TAG_LEN(T_TUPLE, len(obj)))
    for x in obj:
        tp = type(x)
        if tp is int:
            if not _I64_MIN <= x <= _I64_MAX:
                return None
            buf += _TAG_I64(T_INT, x)
        elif tp is str:
            data = x.encode("utf-8", "surrogatepass")
            if len(data) >= _DIRECT:
                return None
            buf += _TAG_LEN(T_STR, len(data))
            buf += data
        elif tp is float:
            if x != x:
                buf.append(T_NAN)
            else:
                buf += _TAG_F64(T_FLOAT, x)
        elif x is None:
            buf.append(T_NONE)
        elif x is True:
            buf.append(T_TRUE)
        elif x is False:
            buf.append(T_FALSE)
        elif tp is bytes and len(x) < _DIRECT:
            buf += _TAG_LEN(T_BYTES, len(x))
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
            return _xxh3_digest(flat)
    try:
        h = _POOL.pop()
    except IndexError:
        h = Hasher()
    try:
        tp = type(obj)
        fn = _DISPATCH.get(tp)
        if fn is None:
            fn = _resolve(tp)
        fn(h, obj)
        return h._finish()
    except _Unhashable as exc:
        raise _public_error(exc, path) from None
    except RecursionError:
        raise UnhashableArgumentError(
            f"argument {path}: nested too deeply to hash (recursion limit). Fix: leave it out of "
            f"the key with @memoize(ignore=({_root_name(path)!r},)), give a key function with "
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
