"""Choosing a handler for a type met for the first time, and hashing objects by their state.

Order of precedence: a hasher registered for the type (or a base), ``__reckon_hash__``, code
(functions, classes, modules: by fingerprint), refused resources, numpy and pandas, enums,
namedtuples, dataclasses, plain subclasses of value types, and finally any object by its type's
name and pickled state (``__reduce_ex__``: ``__getstate__``, ``__dict__``, ``__slots__``).
"""

from __future__ import annotations

import dataclasses
import enum
import io
import types
from collections.abc import Callable
from typing import Any

from reckon.memo import _keys_arrays
from reckon.memo._keys_state import h_object
from reckon.memo._keys_stream import (
    ABSENT,
    BASE,
    REGISTERED,
    SUBCLASSABLE,
    T_DATACLASS,
    T_ENUM,
    T_NAMEDTUPLE,
    T_STANDIN,
    TAG_LEN,
    Handler,
    Hasher,
    Unhashable,
    h_code_ref,
    h_str,
    h_tuple,
    put_typename,
    type_name,
)

__all__ = ["choose"]


def _standin_handler(tp: type, fn: Callable[[Any], object], label: str) -> Handler:
    def handler(h: Hasher, obj: Any) -> None:
        if not h._enter(obj):
            return
        try:
            try:
                standin = fn(obj)
            except Unhashable:
                raise
            except Exception as exc:
                raise Unhashable(type_name(tp), f"{label} raised {exc!r}") from exc
            h._buf.append(T_STANDIN)
            put_typename(h, tp)
            try:
                h._feed(standin)
            except Unhashable as exc:
                exc.parts.append(f"<{label}>")
                raise
        finally:
            h._leave(obj)

    return handler


def _call_reckon_hash(obj: Any) -> object:
    return obj.__reckon_hash__()


def _enum_handler(h: Hasher, obj: enum.Enum) -> None:
    h._buf.append(T_ENUM)
    put_typename(h, type(obj))
    name = obj._name_
    if name is None:  # pragma: no cover - composite flags have names since 3.11
        h._feed(obj._value_)
    else:
        h_str(h, name)


def _namedtuple_handler(h: Hasher, obj: tuple[Any, ...]) -> None:
    h._buf.append(T_NAMEDTUPLE)
    put_typename(h, type(obj))
    h_tuple(h, obj)


def _dataclass_handler(tp: type) -> Handler:
    names = tuple(f.name for f in dataclasses.fields(tp) if f.compare)

    def handler(h: Hasher, obj: Any) -> None:
        if not h._enter(obj):
            return
        name = ""
        try:
            h._buf += TAG_LEN(T_DATACLASS, len(names))
            put_typename(h, tp)
            for name in names:
                h._feed(getattr(obj, name, ABSENT))
        except Unhashable as exc:
            exc.parts.append(f".{name}")
            raise
        finally:
            h._leave(obj)

    return handler


def _refuse(reason: str) -> Handler:
    def handler(h: Hasher, obj: Any) -> None:
        raise Unhashable(type_name(type(obj)), reason)

    return handler


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


def choose(tp: type) -> Handler:
    """The handler for ``tp`` (called once per type; ``hashing`` caches the answer)."""
    builtin = BASE.get(tp)  # the table may be momentarily empty while a hasher is registered
    if builtin is not None and not REGISTERED:
        return builtin
    for base in tp.__mro__:
        fn = REGISTERED.get(base)
        if fn is not None:
            return _standin_handler(tp, fn, f"the hasher registered for {type_name(base)}")
    if getattr(tp, "__reckon_hash__", None) is not None:
        return _standin_handler(tp, _call_reckon_hash, "__reckon_hash__()")
    if issubclass(tp, type) or issubclass(tp, _CODE_TYPES):
        return h_code_ref
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
        if base in SUBCLASSABLE:
            inherited = SUBCLASSABLE[base]
            if base in (dict, list, set, tuple, str, bytes, int, float) and _has_extra_state(tp):
                break  # a builtin subclass with attributes: hash the whole state
            return _subclass_handler(tp, inherited)
    reason = _resource_reason(tp)
    if reason is not None:
        return _refuse(reason)
    if any("__call__" in vars(base) for base in tp.__mro__ if base is not object):
        return _h_maybe_wrapper
    return h_object


def _h_maybe_wrapper(h: Hasher, obj: Any) -> None:
    """A callable object: a decorator's wrapper (lru_cache, a memoized function) is code."""
    try:
        wrapped = getattr(obj, "__wrapped__", None)
    except Exception:  # a proxy whose __getattr__ raises something else
        wrapped = None
    if wrapped is not None:
        h_code_ref(h, obj)
    else:
        h_object(h, obj)


def _has_extra_state(tp: type) -> bool:
    return "__dict__" in dir(tp) or bool(getattr(tp, "__slots__", ()))


def _subclass_handler(tp: type, inherited: Handler) -> Handler:
    """A subclass of a value type without extra state: its name, then the value."""

    def handler(h: Hasher, obj: Any) -> None:
        put_typename(h, tp)
        inherited(h, obj)

    return handler


def _scientific_handler(tp: type, top: str) -> Handler | None:
    if top == "numpy":
        return _keys_arrays.numpy_handler(tp)
    return _keys_arrays.pandas_handler(tp)
