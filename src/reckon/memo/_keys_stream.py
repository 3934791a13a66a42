"""The byte stream behind value hashing: the Hasher, the type tags and the built-in handlers.

This is the bottom layer of the key code. It imports nothing else of reckon's memo code, so the
modules that add handlers (``_keys_stdlib``, ``_keys_objects``, ``_keys_arrays``) import it and
:mod:`reckon.memo.hashing` assembles them, without an import circle. Two things are filled in
from above at import time: the chooser of a handler for a type met for the first time
(:data:`CHOOSER`, set by ``hashing``) and the writer of code references when a Hasher has no
``code_hook`` of its own (:data:`CODE_WRITER`, set by ``fingerprint``).

Why the stream looks the way it does is told in :mod:`reckon.memo.hashing`.
"""

from __future__ import annotations

import struct
import types
from collections.abc import Callable, Iterable
from typing import Any

import xxhash

from reckon.errors import FingerprintError, UnhashableArgumentError
from reckon.memo._keys_modules import module_of, module_origin

__all__ = ["CHOOSER", "CODE_WRITER", "Hasher", "type_name"]


def _no_code_writer(obj: object) -> bytes:
    raise RuntimeError("reckon.memo.fingerprint was not imported: code cannot be hashed yet")


def _no_chooser(tp: type) -> Any:
    raise RuntimeError("reckon.memo.hashing was not imported: no handler for new types yet")


#: Writes a function, class or module into a key (its fingerprint): set by ``fingerprint``.
CODE_WRITER: list[Callable[[object], bytes]] = [_no_code_writer]
#: Chooses the handler of a type met for the first time: set by ``hashing``.
CHOOSER: list[Callable[[type], Any]] = [_no_chooser]

# Buffers at least this large are fed to the xxh3 state directly instead of being copied into the
# staging bytearray.
DIRECT = 4096

_xxh3 = xxhash.xxh3_128
xxh3_digest = xxhash.xxh3_128_digest

TAG_LEN = struct.Struct("<BQ").pack  # tag + unsigned length / count
TAG_I64 = struct.Struct("<Bq").pack
TAG_F64 = struct.Struct("<Bd").pack
_TAG_C128 = struct.Struct("<Bdd").pack
I64_MIN = -(1 << 63)
I64_MAX = (1 << 63) - 1

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


class Unhashable(Exception):
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
        module = module_of(tp) or "?"
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
        except Unhashable as exc:
            self._stack.clear()
            raise public_error(exc, path) from None
        except RecursionError:
            self._stack.clear()
            raise UnhashableArgumentError(
                f"argument {path}: nested too deeply to hash (recursion limit). Fix: leave it out "
                f"of the key with @memoize(ignore=({root_name(path)!r},)), give a key function "
                "with @memoize(key=...), or define __reckon_hash__ returning a flatter stand-in."
            ) from None

    def digest(self) -> bytes:
        """The 16-byte xxh3-128 digest of everything fed since the last reset."""
        if self._state is None:
            return xxh3_digest(self._buf)
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
        fn = DISPATCH.get(tp)
        if fn is None:
            fn = resolve(tp)
        fn(self, obj)

    def _finish(self) -> bytes:
        if self._state is None:
            return xxh3_digest(self._buf)
        self._state.update(self._buf)
        return self._state.digest()  # type: ignore[no-any-return, unused-ignore]

    def _put_buffer(self, data: Any, nbytes: int) -> None:
        """Write a buffer without copying it when it is large."""
        if nbytes < DIRECT:
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
            self._buf += TAG_LEN(T_CYCLE, len(stack) - depth)
            return False
        stack[oid] = len(stack)
        return True

    def _leave(self, obj: object) -> None:
        del self._stack[id(obj)]


# -- error text ------------------------------------------------------------------------------


def root_name(path: str) -> str:
    for i, ch in enumerate(path):
        if ch in "[.{<":
            return path[:i]
    return path


def public_error(exc: Unhashable, path: str) -> UnhashableArgumentError:
    full = path + "".join(reversed(exc.parts))
    root = root_name(path)
    return UnhashableArgumentError(
        f"argument {full}: cannot hash a {exc.type_name} ({exc.reason}). Fix: leave the argument "
        f"out of the key with @memoize(ignore=({root!r},)), compute the key yourself with "
        f"@memoize(key=...), or give {exc.type_name.rsplit('.', 1)[-1]} a __reckon_hash__(self) "
        "method (or call reckon.memo.hashing.register_hasher) returning a stand-in hashed by value."
    )


def short_repr(obj: object) -> str:
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


def h_int(h: Hasher, obj: int) -> None:
    if I64_MIN <= obj <= I64_MAX:
        h._buf += TAG_I64(T_INT, obj)
    else:
        data = obj.to_bytes((obj.bit_length() + 8) // 8, "little", signed=True)
        h._buf += TAG_LEN(T_BIGINT, len(data))
        h._buf += data


def _h_float(h: Hasher, obj: float) -> None:
    if obj != obj:  # every NaN (any sign or payload) is one key
        h._buf.append(T_NAN)
    else:
        h._buf += TAG_F64(T_FLOAT, obj)


def _h_complex(h: Hasher, obj: complex) -> None:
    re_, im = obj.real, obj.imag
    h._buf += _TAG_C128(T_COMPLEX, 0.0 if re_ != re_ else re_, 0.0 if im != im else im)
    # NaN parts need their own marker so nan+0j differs from 0j.
    h._buf.append((re_ != re_) | ((im != im) << 1))


def h_str(h: Hasher, obj: str) -> None:
    data = obj.encode("utf-8", "surrogatepass")
    h._buf += TAG_LEN(T_STR, len(data))
    h._put_buffer(data, len(data))


def h_bytes(h: Hasher, obj: bytes) -> None:
    h._buf += TAG_LEN(T_BYTES, len(obj))
    h._put_buffer(obj, len(obj))


def _h_bytearray(h: Hasher, obj: bytearray) -> None:
    h._buf += TAG_LEN(T_BYTEARRAY, len(obj))
    h._put_buffer(obj, len(obj))


def h_memoryview(h: Hasher, obj: memoryview) -> None:
    h._buf += TAG_LEN(T_MEMORYVIEW, obj.ndim)
    h_str(h, obj.format)
    for dim in obj.shape or ():
        h._buf += TAG_LEN(T_INT, dim)
    if obj.c_contiguous:
        flat = obj.cast("B") if obj.ndim != 0 or obj.format != "B" else obj
        h._buf += TAG_LEN(T_BUFFER, obj.nbytes)
        h._put_buffer(flat, obj.nbytes)
    else:
        data = obj.tobytes()
        h._buf += TAG_LEN(T_BUFFER, len(data))
        h._put_buffer(data, len(data))


def _index_of(seq: Iterable[object], item: object) -> int:
    for i, x in enumerate(seq):
        if x is item:
            return i
    return -1


def h_tuple(h: Hasher, obj: tuple[Any, ...]) -> None:
    h._buf += TAG_LEN(T_TUPLE, len(obj))
    get = DISPATCH.get
    x: Any = None
    try:
        for x in obj:
            tp = type(x)
            (get(tp) or resolve(tp))(h, x)
    except Unhashable as exc:
        exc.parts.append(f"[{_index_of(obj, x)}]")
        raise


def h_list(h: Hasher, obj: list[Any]) -> None:
    if not h._enter(obj):
        return
    h._buf += TAG_LEN(T_LIST, len(obj))
    get = DISPATCH.get
    x: Any = None
    try:
        for x in obj:
            tp = type(x)
            (get(tp) or resolve(tp))(h, x)
    except Unhashable as exc:
        exc.parts.append(f"[{_index_of(obj, x)}]")
        raise
    finally:
        h._leave(obj)


def feed_items_unordered(h: Hasher, tag: int, tag_str: int, items: Any, n: int) -> None:
    """Dict-like entries, independent of insertion order."""
    k: Any = None
    try:
        for k in items:
            if type(k) is not str:
                break
        else:  # every key is a str: sort the keys themselves (cheaper than digests)
            buf = h._buf  # stable: _buf is cleared in place, and _sub_digest restores it
            buf += TAG_LEN(tag_str, n)
            get = DISPATCH.get
            for k in sorted(items):
                data = k.encode("utf-8", "surrogatepass")
                if len(data) < DIRECT:
                    buf += TAG_LEN(T_STR, len(data))
                    buf += data
                else:
                    h_str(h, k)
                v = items[k]
                tp = type(v)
                (get(tp) or resolve(tp))(h, v)
            return
        digests = []
        for k, v in items.items():
            digests.append(h._sub_digest(k, v))
    except Unhashable as exc:
        exc.parts.append(f"[{short_repr(k)}]")
        raise
    digests.sort()
    h._buf += TAG_LEN(tag, n)
    h._buf += b"".join(digests)


def h_dict(h: Hasher, obj: dict[Any, Any]) -> None:
    stack = h._stack
    oid = id(obj)
    depth = stack.get(oid)
    if depth is not None:  # a cycle: as Hasher._enter, inlined on this hot path
        h._buf += TAG_LEN(T_CYCLE, len(stack) - depth)
        return
    stack[oid] = len(stack)
    try:
        feed_items_unordered(h, T_DICT, T_DICT_STR, obj, len(obj))
    finally:
        del stack[oid]


def _feed_set(h: Hasher, obj: Any, tag: int, tag_sorted: int) -> None:
    n = len(obj)
    x: Any = None
    try:
        if n and (all(type(x) is str for x in obj) or all(type(x) is int for x in obj)):
            h._buf += TAG_LEN(tag_sorted, n)
            for x in sorted(obj):
                h._feed(x)
            return
        digests = sorted([h._sub_digest(x) for x in obj])
    except Unhashable as exc:
        exc.parts.append("{" + short_repr(x) + "}")
        raise
    h._buf += TAG_LEN(tag, n)
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


def put_typename(h: Hasher, tp: type) -> None:
    """The type of a value hashed by its contents; for the user's own classes, their code too.

    An object hashed by its state behaves by its class's methods (``p.area()``), so a class
    defined in the user's code is written with its fingerprint, by the same rules as the code a
    function calls: editing the class changes the key of every value holding one of its objects,
    however deeply nested. Library classes are known by name (their version is in the
    function's fingerprint already, when the function uses them).
    """
    data = type_name(tp).encode("utf-8", "surrogatepass")
    h._buf += TAG_LEN(T_TYPENAME, len(data))
    h._buf += data
    user = _USER_CLASS.get(tp)
    if user is None:
        user = _USER_CLASS[tp] = not module_origin(module_of(tp)).external
    if user:
        try:
            h_code_ref(h, tp)
        except FingerprintError:  # a class that cannot be read: known by its name, as before
            h._buf.append(T_NONE)


#: Per type: whether it is defined in the user's code (cached; module origins do not change).
_USER_CLASS: dict[type, bool] = {}


def h_code_ref(h: Hasher, obj: object) -> None:
    """Functions, classes, modules, methods: written as their fingerprint."""
    hook = h.code_hook or CODE_WRITER[0]
    data = hook(obj)
    h._buf += TAG_LEN(T_CODE, len(data))
    h._buf += data


class _Absent:
    """Marker for a declared field or slot that has no value."""


ABSENT = _Absent()


def _h_absent(h: Hasher, obj: object) -> None:
    h._buf.append(T_ABSENT)


def resolve(tp: type) -> Handler:
    """Choose the handler for a type not in the table yet, and remember it."""
    handler = CHOOSER[0](tp)
    DISPATCH[tp] = handler
    return handler


# Exact-type dispatch table. BASE holds the built-in handlers; DISPATCH adds handlers resolved
# on first sight and is rebuilt from BASE when a hasher is registered.
BASE: dict[type, Handler] = {
    type(None): _h_none,
    bool: _h_bool,
    int: h_int,
    float: _h_float,
    complex: _h_complex,
    str: h_str,
    bytes: h_bytes,
    bytearray: _h_bytearray,
    memoryview: h_memoryview,
    tuple: h_tuple,
    list: h_list,
    dict: h_dict,
    set: _h_set,
    frozenset: _h_frozenset,
    type(...): _h_ellipsis,
    type(NotImplemented): _h_notimplemented,
    _Absent: _h_absent,
    types.FunctionType: h_code_ref,
    types.BuiltinFunctionType: h_code_ref,
    types.MethodType: h_code_ref,
    types.ModuleType: h_code_ref,
    type: h_code_ref,
}

# Subclasses of these (without extra attributes) hash as their base, prefixed by their name.
SUBCLASSABLE: dict[type, Handler] = {
    str: h_str,
    bytes: h_bytes,
    int: h_int,
    float: _h_float,
    tuple: h_tuple,
    list: h_list,
    dict: h_dict,
    set: _h_set,
    frozenset: _h_frozenset,
}
#: Hashers registered with ``hashing.register_hasher``, by type.
REGISTERED: dict[type, Callable[[Any], object]] = {}
DISPATCH: dict[type, Handler] = dict(BASE)
