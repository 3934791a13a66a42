"""Any object without a handler of its own, hashed by its type and its pickled state.

``__reduce_ex__`` says what an object is made of (``__getstate__``, ``__dict__``, ``__slots__``),
the way pickle sees it; that is hashed by value. Kept apart from the choice of handlers
(``_keys_objects``) because numpy and pandas (``_keys_arrays``) fall back to it too.
"""

from __future__ import annotations

import copyreg
from typing import Any

from reckon.memo._keys_stream import (
    T_DICT,
    T_DICT_STR,
    T_NONE,
    T_OBJECT,
    T_REDUCE_STR,
    T_TUPLE,
    TAG_LEN,
    Hasher,
    Unhashable,
    feed_items_unordered,
    h_dict,
    h_list,
    h_str,
    put_typename,
    type_name,
)

__all__ = ["h_object"]


def h_object(h: Hasher, obj: Any) -> None:
    """Any other object: its type's name and its pickled state (``__reduce_ex__``)."""
    tp = type(obj)
    try:
        reducer = copyreg.dispatch_table.get(tp)  # as pickle does: re.Pattern, ...
        rv = reducer(obj) if reducer is not None else obj.__reduce_ex__(4)
    except Exception as exc:
        raise Unhashable(type_name(tp), f"it has no state to hash by value: {exc}") from exc
    if isinstance(rv, str):  # a global singleton, pickled by name
        h._buf.append(T_REDUCE_STR)
        put_typename(h, tp)
        h_str(h, rv)
        return
    if not isinstance(rv, tuple) or not 2 <= len(rv) <= 6:
        raise Unhashable(type_name(tp), "its __reduce_ex__ returned an unusable value")
    if not h._enter(obj):
        return
    try:
        h._buf += TAG_LEN(T_OBJECT, len(rv))
        put_typename(h, tp)
        func, args = rv[0], rv[1]
        if (func is _NEWOBJ or func is _NEWOBJ_EX) and args and args[0] is tp:
            func, args = None, args[1:]  # the class itself is already written as the type name
        try:
            if func is not None:
                h._feed(func)
            h._feed(tuple(args))
        except Unhashable as exc:
            exc.parts.append("<constructor args>")
            raise
        state = rv[2] if len(rv) > 2 else None
        _feed_state(h, state)
        if len(rv) > 3 and rv[3] is not None:
            items = list(rv[3])
            try:
                h_list(h, items)
            except Unhashable as exc:
                exc.parts.append("<items>")
                raise
        else:
            h._buf.append(T_NONE)
        if len(rv) > 4 and rv[4] is not None:
            pairs = dict(rv[4])
            feed_items_unordered(h, T_DICT, T_DICT_STR, pairs, len(pairs))
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
        h._buf += TAG_LEN(T_TUPLE, 2)
        _feed_attrs(h, state[0])
        _feed_attrs(h, state[1])
    elif type(state) is dict:
        _feed_attrs(h, state)
    else:
        try:
            h._feed(state)
        except Unhashable as exc:
            exc.parts.append("<state>")
            raise


def _feed_attrs(h: Hasher, attrs: dict[Any, Any] | None) -> None:
    if attrs is None:
        h._buf.append(T_NONE)
        return
    if all(type(k) is str for k in attrs):
        name = ""
        try:
            h._buf += TAG_LEN(T_DICT_STR, len(attrs))
            for name in sorted(attrs):
                h_str(h, name)
                h._feed(attrs[name])
        except Unhashable as exc:
            exc.parts.append(f".{name}")
            raise
    else:
        h_dict(h, attrs)
