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

Decisions a user may trip over (documented in ``docs/memo-keys.md``): type is part of the value
(``1``, ``1.0``, ``True`` and ``np.int64(1)`` are four keys), ``-0.0`` and ``0.0`` are different
keys (``math.copysign`` and ``atan2`` tell them apart) while every NaN is one key; ``Decimal``
hashes its representation (``1.0`` and ``1.00`` differ); datetimes hash their wall time and zone
(the same instant in two zones is two keys).
"""

from __future__ import annotations

import copyreg
import dataclasses
import datetime as _dt
import decimal
import enum
import fractions
import io
import pathlib
import struct
import types
import uuid
from collections import Counter, OrderedDict, defaultdict, deque
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
        if all(type(k) is str for k in items):
            h._buf += _TAG_LEN(tag_str, n)
            for k in sorted(items.keys()):
                _h_str(h, k)
                h._feed(items[k])
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
    if not h._enter(obj):
        return
    try:
        _feed_items_unordered(h, T_DICT, T_DICT_STR, obj, len(obj))
    finally:
        h._leave(obj)


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


def _h_path(h: Hasher, obj: pathlib.PurePath) -> None:
    h._buf.append(T_PATH)
    _put_typename(h, type(obj))
    _h_str(h, str(obj))


def _h_tzinfo(h: Hasher, tz: _dt.tzinfo | None) -> None:
    if tz is None:
        h._buf.append(T_NONE)
    else:
        h._feed(tz)


def _h_datetime(h: Hasher, obj: _dt.datetime) -> None:
    h._buf += struct.pack(
        "<BHBBBBBIB",
        T_DATETIME,
        obj.year,
        obj.month,
        obj.day,
        obj.hour,
        obj.minute,
        obj.second,
        obj.microsecond,
        obj.fold,
    )
    _h_tzinfo(h, obj.tzinfo)


def _h_date(h: Hasher, obj: _dt.date) -> None:
    h._buf += struct.pack("<BHBB", T_DATE, obj.year, obj.month, obj.day)


def _h_time(h: Hasher, obj: _dt.time) -> None:
    h._buf += struct.pack(
        "<BBBBIB", T_TIME, obj.hour, obj.minute, obj.second, obj.microsecond, obj.fold
    )
    _h_tzinfo(h, obj.tzinfo)


def _h_timedelta(h: Hasher, obj: _dt.timedelta) -> None:
    h._buf += struct.pack("<BqqI", T_TIMEDELTA, obj.days, obj.seconds, obj.microseconds)


def _h_timezone(h: Hasher, obj: _dt.timezone) -> None:
    off = obj.utcoffset(None)
    h._buf += struct.pack("<Bqq", T_TIMEZONE, off.days * 86400 + off.seconds, off.microseconds)
    _h_str(h, obj.tzname(None) or "")


def _h_zoneinfo(h: Hasher, obj: Any) -> None:
    key = getattr(obj, "key", None)
    if key is None:  # a zone built from a file: fall back to its pickled state
        _h_object(h, obj)
        return
    h._buf.append(T_ZONEINFO)
    _h_str(h, key)


def _h_decimal(h: Hasher, obj: decimal.Decimal) -> None:
    text = str(obj).encode()
    h._buf += _TAG_LEN(T_DECIMAL, len(text))
    h._buf += text


def _h_fraction(h: Hasher, obj: fractions.Fraction) -> None:
    h._buf.append(T_FRACTION)
    _h_int(h, obj.numerator)
    _h_int(h, obj.denominator)


def _h_uuid(h: Hasher, obj: uuid.UUID) -> None:
    h._buf.append(T_UUID)
    h._buf += obj.bytes


def _h_range(h: Hasher, obj: range) -> None:
    h._buf.append(T_RANGE)
    _h_int(h, obj.start)
    _h_int(h, obj.stop)
    _h_int(h, obj.step)


def _h_slice(h: Hasher, obj: slice) -> None:
    h._buf.append(T_SLICE)
    try:
        h._feed(obj.start)
        h._feed(obj.stop)
        h._feed(obj.step)
    except _Unhashable as exc:
        exc.parts.append("<slice>")
        raise


def _h_ordereddict(h: Hasher, obj: OrderedDict[Any, Any]) -> None:
    # OrderedDicts compare with order, so the order is part of the value.
    if not h._enter(obj):
        return
    k: Any = None
    try:
        h._buf += _TAG_LEN(T_ORDEREDDICT, len(obj))
        for k, v in obj.items():
            h._feed(k)
            h._feed(v)
    except _Unhashable as exc:
        exc.parts.append(f"[{_short_repr(k)}]")
        raise
    finally:
        h._leave(obj)


def _h_defaultdict(h: Hasher, obj: defaultdict[Any, Any]) -> None:
    if not h._enter(obj):
        return
    try:
        h._buf.append(T_DEFAULTDICT)
        try:
            h._feed(obj.default_factory)
        except _Unhashable as exc:
            exc.parts.append(".default_factory")
            raise
        _feed_items_unordered(h, T_DICT, T_DICT_STR, obj, len(obj))
    finally:
        h._leave(obj)


def _h_counter(h: Hasher, obj: Counter[Any]) -> None:
    if not h._enter(obj):
        return
    try:
        h._buf.append(T_COUNTER)
        _feed_items_unordered(h, T_DICT, T_DICT_STR, obj, len(obj))
    finally:
        h._leave(obj)


def _h_deque(h: Hasher, obj: deque[Any]) -> None:
    if not h._enter(obj):
        return
    try:
        h._buf.append(T_DEQUE)
        h._feed(obj.maxlen)
        _h_list(h, list(obj))
    finally:
        h._leave(obj)


def _h_mappingproxy(h: Hasher, obj: types.MappingProxyType[Any, Any]) -> None:
    h._buf.append(T_MAPPINGPROXY)
    _feed_items_unordered(h, T_DICT, T_DICT_STR, obj, len(obj))


def _h_bytesio(h: Hasher, obj: io.BytesIO) -> None:
    h._buf.append(T_BYTESIO)
    _h_bytes(h, obj.getvalue())
    _h_int(h, obj.tell())


def _h_stringio(h: Hasher, obj: io.StringIO) -> None:
    h._buf.append(T_STRINGIO)
    _h_str(h, obj.getvalue())
    _h_int(h, obj.tell())


def _h_array(h: Hasher, obj: Any) -> None:
    h._buf.append(T_ARRAY)
    _h_str(h, obj.typecode)
    _h_memoryview(h, memoryview(obj))


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


# -- handlers chosen once per type ---------------------------------------------------------------


def _standin_handler(tp: type, fn: Callable[[Any], object], label: str) -> Handler:
    def handler(h: Hasher, obj: Any) -> None:
        if not h._enter(obj):
            return
        try:
            try:
                standin = fn(obj)
            except _Unhashable:
                raise
            except Exception as exc:
                raise _Unhashable(type_name(tp), f"{label} raised {exc!r}") from exc
            h._buf.append(T_STANDIN)
            _put_typename(h, tp)
            try:
                h._feed(standin)
            except _Unhashable as exc:
                exc.parts.append(f"<{label}>")
                raise
        finally:
            h._leave(obj)

    return handler


def _call_reckon_hash(obj: Any) -> object:
    return obj.__reckon_hash__()


def _enum_handler(h: Hasher, obj: enum.Enum) -> None:
    h._buf.append(T_ENUM)
    _put_typename(h, type(obj))
    name = obj._name_
    if name is None:  # pragma: no cover - composite flags have names since 3.11
        h._feed(obj._value_)
    else:
        _h_str(h, name)


def _namedtuple_handler(h: Hasher, obj: tuple[Any, ...]) -> None:
    h._buf.append(T_NAMEDTUPLE)
    _put_typename(h, type(obj))
    _h_tuple(h, obj)


def _dataclass_handler(tp: type) -> Handler:
    names = tuple(f.name for f in dataclasses.fields(tp) if f.compare)

    def handler(h: Hasher, obj: Any) -> None:
        if not h._enter(obj):
            return
        name = ""
        try:
            h._buf += _TAG_LEN(T_DATACLASS, len(names))
            _put_typename(h, tp)
            for name in names:
                h._feed(getattr(obj, name, _ABSENT))
        except _Unhashable as exc:
            exc.parts.append(f".{name}")
            raise
        finally:
            h._leave(obj)

    return handler


class _Absent:
    """Marker for a declared field or slot that has no value."""


_ABSENT = _Absent()


def _h_absent(h: Hasher, obj: object) -> None:
    h._buf.append(T_ABSENT)


def _refuse(reason: str) -> Handler:
    def handler(h: Hasher, obj: Any) -> None:
        raise _Unhashable(type_name(type(obj)), reason)

    return handler


def _h_object(h: Hasher, obj: Any) -> None:
    """Any other object: its type's name and its pickled state (``__reduce_ex__``)."""
    tp = type(obj)
    try:
        reducer = copyreg.dispatch_table.get(tp)  # as pickle does: re.Pattern, ...
        rv = reducer(obj) if reducer is not None else obj.__reduce_ex__(4)
    except Exception as exc:
        raise _Unhashable(type_name(tp), f"it has no state to hash by value: {exc}") from exc
    if isinstance(rv, str):  # a global singleton, pickled by name
        h._buf.append(T_REDUCE_STR)
        _put_typename(h, tp)
        _h_str(h, rv)
        return
    if not isinstance(rv, tuple) or not 2 <= len(rv) <= 6:
        raise _Unhashable(type_name(tp), "its __reduce_ex__ returned an unusable value")
    if not h._enter(obj):
        return
    try:
        h._buf += _TAG_LEN(T_OBJECT, len(rv))
        _put_typename(h, tp)
        func, args = rv[0], rv[1]
        if (func is _NEWOBJ or func is _NEWOBJ_EX) and args and args[0] is tp:
            func, args = None, args[1:]  # the class itself is already written as the type name
        try:
            if func is not None:
                h._feed(func)
            h._feed(tuple(args))
        except _Unhashable as exc:
            exc.parts.append("<constructor args>")
            raise
        state = rv[2] if len(rv) > 2 else None
        _feed_state(h, state)
        if len(rv) > 3 and rv[3] is not None:
            items = list(rv[3])
            try:
                _h_list(h, items)
            except _Unhashable as exc:
                exc.parts.append("<items>")
                raise
        else:
            h._buf.append(T_NONE)
        if len(rv) > 4 and rv[4] is not None:
            pairs = dict(rv[4])
            _feed_items_unordered(h, T_DICT, T_DICT_STR, pairs, len(pairs))
        else:
            h._buf.append(T_NONE)
    finally:
        h._leave(obj)


_NEWOBJ = getattr(copyreg, "__newobj__", None)
_NEWOBJ_EX = getattr(copyreg, "__newobj_ex__", None)


def _feed_state(h: Hasher, state: Any) -> None:
    """Object state: a dict of attributes, or (dict, slots dict) with None parts allowed."""
    if (
        type(state) is tuple
        and len(state) == 2
        and (state[0] is None or type(state[0]) is dict)
        and type(state[1]) is dict
    ):
        h._buf += _TAG_LEN(T_TUPLE, 2)
        _feed_attrs(h, state[0])
        _feed_attrs(h, state[1])
    elif type(state) is dict:
        _feed_attrs(h, state)
    else:
        try:
            h._feed(state)
        except _Unhashable as exc:
            exc.parts.append("<state>")
            raise


def _feed_attrs(h: Hasher, attrs: dict[Any, Any] | None) -> None:
    if attrs is None:
        h._buf.append(T_NONE)
        return
    if all(type(k) is str for k in attrs):
        name = ""
        try:
            h._buf += _TAG_LEN(T_DICT_STR, len(attrs))
            for name in sorted(attrs):
                _h_str(h, name)
                h._feed(attrs[name])
        except _Unhashable as exc:
            exc.parts.append(f".{name}")
            raise
    else:
        _h_dict(h, attrs)


# Module names whose objects are resources (files, sockets, locks, threads, processes, event
# loops), never values. Checked on the type's module, so private submodules are covered too.
_RESOURCE_MODULES = (
    "_io",
    "io",
    "_thread",
    "threading",
    "socket",
    "_socket",
    "ssl",
    "_ssl",
    "select",
    "selectors",
    "subprocess",
    "multiprocessing",
    "concurrent.futures",
    "asyncio",
    "sqlite3",
    "_sqlite3",
    "mmap",
    "queue",
    "_queue",
    "tempfile",
)

_REFUSED_TYPES: dict[type, str] = {
    types.GeneratorType: "a generator is consumed by hashing it; pass a list or tuple",
    types.CoroutineType: "a coroutine is not a value; await it and pass the result",
    types.AsyncGeneratorType: "an async generator is not a value; collect it into a list",
    types.FrameType: "a frame is interpreter state, not a value",
    types.TracebackType: "a traceback is interpreter state, not a value",
}


def _resource_reason(tp: type) -> str | None:
    module = getattr(tp, "__module__", "") or ""
    top = module.split(".", 1)[0]
    if module in _RESOURCE_MODULES or top in _RESOURCE_MODULES:
        if issubclass(tp, io.IOBase):
            return "open files and streams are not values; pass the path or the contents"
        return "locks, threads, sockets, files and processes are resources, not values"
    if issubclass(tp, io.IOBase):
        return "open files and streams are not values; pass the path or the contents"
    return None


_CODE_TYPES: tuple[type, ...] = (
    types.FunctionType,
    types.BuiltinFunctionType,
    types.MethodType,
    types.ModuleType,
    types.MethodWrapperType,
    types.WrapperDescriptorType,
    types.MethodDescriptorType,
    types.ClassMethodDescriptorType,
    staticmethod,
    classmethod,
)


def _resolve(tp: type) -> Handler:
    """Choose the handler for a type not in the table yet, and remember it."""
    handler = _choose(tp)
    _DISPATCH[tp] = handler
    return handler


def _choose(tp: type) -> Handler:
    builtin = _BASE.get(tp)  # the table may be momentarily empty while a hasher is registered
    if builtin is not None and not _REGISTERED:
        return builtin
    for base in tp.__mro__:
        fn = _REGISTERED.get(base)
        if fn is not None:
            return _standin_handler(tp, fn, f"the hasher registered for {type_name(base)}")
    if getattr(tp, "__reckon_hash__", None) is not None:
        return _standin_handler(tp, _call_reckon_hash, "__reckon_hash__()")
    if issubclass(tp, type) or issubclass(tp, _CODE_TYPES):
        return _h_code_ref
    reason = _REFUSED_TYPES.get(tp)
    if reason is not None:
        return _refuse(reason)
    module = getattr(tp, "__module__", "") or ""
    top = module.split(".", 1)[0]
    if top in ("numpy", "pandas"):
        special = _scientific_handler(tp, top)
        if special is not None:
            return special
    if issubclass(tp, enum.Enum):
        return _enum_handler
    if issubclass(tp, tuple) and hasattr(tp, "_fields"):
        return _namedtuple_handler
    if dataclasses.is_dataclass(tp):
        return _dataclass_handler(tp)
    for base in tp.__mro__[1:]:
        if base in _SUBCLASSABLE:
            inherited = _SUBCLASSABLE[base]
            if base in (dict, list, set, tuple, str, bytes, int, float) and _has_extra_state(tp):
                break  # a builtin subclass with attributes: hash the whole state
            return _subclass_handler(tp, inherited)
    reason = _resource_reason(tp)
    if reason is not None:
        return _refuse(reason)
    if any("__call__" in vars(base) for base in tp.__mro__ if base is not object):
        return _h_maybe_wrapper
    return _h_object


def _h_maybe_wrapper(h: Hasher, obj: Any) -> None:
    """A callable object: a decorator's wrapper (lru_cache, a memoized function) is code."""
    try:
        wrapped = getattr(obj, "__wrapped__", None)
    except Exception:  # a proxy whose __getattr__ raises something else
        wrapped = None
    if wrapped is not None:
        _h_code_ref(h, obj)
    else:
        _h_object(h, obj)


def _has_extra_state(tp: type) -> bool:
    return "__dict__" in dir(tp) or bool(getattr(tp, "__slots__", ()))


def _subclass_handler(tp: type, inherited: Handler) -> Handler:
    """A subclass of a value type without extra state: its name, then the value."""

    def handler(h: Hasher, obj: Any) -> None:
        _put_typename(h, tp)
        inherited(h, obj)

    return handler


def _scientific_handler(tp: type, top: str) -> Handler | None:
    from reckon.memo import _keys_arrays

    if top == "numpy":
        return _keys_arrays.numpy_handler(tp)
    return _keys_arrays.pandas_handler(tp)


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
    range: _h_range,
    slice: _h_slice,
    _dt.datetime: _h_datetime,
    _dt.date: _h_date,
    _dt.time: _h_time,
    _dt.timedelta: _h_timedelta,
    _dt.timezone: _h_timezone,
    decimal.Decimal: _h_decimal,
    fractions.Fraction: _h_fraction,
    uuid.UUID: _h_uuid,
    OrderedDict: _h_ordereddict,
    defaultdict: _h_defaultdict,
    Counter: _h_counter,
    deque: _h_deque,
    types.MappingProxyType: _h_mappingproxy,
    io.BytesIO: _h_bytesio,
    io.StringIO: _h_stringio,
    _Absent: _h_absent,
    types.FunctionType: _h_code_ref,
    types.BuiltinFunctionType: _h_code_ref,
    types.MethodType: _h_code_ref,
    types.ModuleType: _h_code_ref,
    type: _h_code_ref,
}
for _path_type in (
    pathlib.PurePath,
    pathlib.PurePosixPath,
    pathlib.PureWindowsPath,
    pathlib.Path,
    pathlib.PosixPath,
    pathlib.WindowsPath,
):
    _BASE[_path_type] = _h_path

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
    OrderedDict: _h_ordereddict,
    defaultdict: _h_defaultdict,
    Counter: _h_counter,
    pathlib.PurePath: _h_path,
    _dt.datetime: _h_datetime,
    _dt.date: _h_date,
    _dt.timedelta: _h_timedelta,
    decimal.Decimal: _h_decimal,
    fractions.Fraction: _h_fraction,
}


def _zoneinfo_types() -> None:
    try:
        import zoneinfo
    except ImportError:  # pragma: no cover - always present on 3.9+
        return
    _BASE[zoneinfo.ZoneInfo] = _h_zoneinfo


def _array_types() -> None:
    import array

    _BASE[array.array] = _h_array


_zoneinfo_types()
_array_types()

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
