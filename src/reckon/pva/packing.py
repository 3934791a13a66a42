"""pvData types and values as msgpack: how shared PVs are stored in Redis.

A type description becomes nested lists (``["S", id, [[name, type], ...]]`` for a structure,
``["s", kind]`` for a scalar...); a value is packed *by its type*, so numeric arrays travel as
little-endian bytes and a structure as the list of its field values in order. Everything read
back is checked against what a type allows: a store is not trusted to hold only what reckon
wrote (nothing is ever executed; msgpack carries data only).
"""

from __future__ import annotations

from typing import Any

import msgpack
import numpy as np

from reckon.errors import PvaShareError
from reckon.pva.protocol import (
    BoundedString,
    FieldDesc,
    Scalar,
    ScalarArray,
    Structure,
    StructureArray,
    Union,
    UnionArray,
    UnionValue,
    Variant,
    VariantArray,
    VariantValue,
)

#: deepest type description accepted from a store (pvxs refuses deeper ones on the wire too)
MAX_DEPTH = 64

_LE = {
    "?": "?",
    "b": "i1",
    "B": "u1",
    "h": "<i2",
    "H": "<u2",
    "i": "<i4",
    "I": "<u4",
    "l": "<i8",
    "L": "<u8",
    "f": "<f4",
    "d": "<f8",
}


# ------------------------------------------------------------------------------------------
# types
# ------------------------------------------------------------------------------------------


def type_to_obj(t: FieldDesc) -> Any:
    """A type description as nested lists msgpack can carry."""
    if isinstance(t, Scalar):
        return ["s", t.kind]
    if isinstance(t, BoundedString):
        return ["b", t.bound]
    if isinstance(t, ScalarArray):
        return ["a", t.kind, t.size, t.fixed]
    if isinstance(t, Structure):
        return ["S", t.id, [[n, type_to_obj(f)] for n, f in t.fields]]
    if isinstance(t, Union):
        return ["U", t.id, [[n, type_to_obj(f)] for n, f in t.fields]]
    if isinstance(t, Variant):
        return ["V"]
    if isinstance(t, StructureArray):
        return ["SA", type_to_obj(t.element)]
    if isinstance(t, UnionArray):
        return ["UA", type_to_obj(t.element)]
    if isinstance(t, VariantArray):
        return ["VA"]
    raise PvaShareError(f"cannot share a field of type {t!r}")


def type_from_obj(obj: Any, depth: int = 0) -> FieldDesc:
    """The inverse of :func:`type_to_obj`; anything malformed raises PvaShareError."""
    if depth > MAX_DEPTH:
        raise PvaShareError(f"a stored type nests deeper than {MAX_DEPTH} levels")
    try:
        tag = obj[0]
        if tag == "s":
            return Scalar(obj[1])
        if tag == "b":
            return BoundedString(obj[1])
        if tag == "a":
            return ScalarArray(obj[1], obj[2], bool(obj[3]))
        if tag in ("S", "U"):
            fields = [(str(n), type_from_obj(f, depth + 1)) for n, f in obj[2]]
            return Structure(fields, id=obj[1]) if tag == "S" else Union(fields, id=obj[1])
        if tag == "V":
            return Variant()
        if tag == "SA":
            element = type_from_obj(obj[1], depth + 1)
            assert isinstance(element, Structure)
            return StructureArray(element)
        if tag == "UA":
            element = type_from_obj(obj[1], depth + 1)
            assert isinstance(element, Union)
            return UnionArray(element)
        if tag == "VA":
            return VariantArray()
    except PvaShareError:
        raise
    except Exception as exc:
        raise PvaShareError(f"a stored type description is malformed ({exc!r:.80})") from None
    raise PvaShareError(f"a stored type description has an unknown tag {tag!r:.20}")


# ------------------------------------------------------------------------------------------
# values
# ------------------------------------------------------------------------------------------


def value_to_obj(t: FieldDesc, v: Any) -> Any:
    """A value of type ``t`` as msgpack-able data (arrays as little-endian bytes)."""
    if isinstance(t, (Scalar, BoundedString)):
        return v
    if isinstance(t, ScalarArray):
        if t.kind == "s":
            return [str(s) for s in v]
        return np.ascontiguousarray(v, dtype=_LE[t.kind]).tobytes()
    if isinstance(t, Structure):
        return [value_to_obj(f, v[n] if n in v else f.default()) for n, f in t.fields]
    if isinstance(t, StructureArray):
        return [None if e is None else value_to_obj(t.element, e) for e in v]
    if isinstance(t, Union):
        if v is None:
            return None
        return [v.field, value_to_obj(t[v.field], v.value)]
    if isinstance(t, UnionArray):
        return [value_to_obj(t.element, e) for e in v]
    if isinstance(t, Variant):
        if v is None:
            return None
        vv = VariantValue.of(v)
        return [type_to_obj(vv.type), value_to_obj(vv.type, vv.value)]
    if isinstance(t, VariantArray):
        return [value_to_obj(Variant(), e) for e in v]
    raise PvaShareError(f"cannot share a value of type {t!r}")


def value_from_obj(t: FieldDesc, obj: Any) -> Any:
    """The inverse of :func:`value_to_obj`, checked against ``t``."""
    try:
        return _from_obj(t, obj)
    except PvaShareError:
        raise
    except Exception as exc:
        raise PvaShareError(f"a stored value does not fit {t!r:.80} ({exc!r:.80})") from None


def _from_obj(t: FieldDesc, obj: Any) -> Any:
    if isinstance(t, Scalar):
        k = t.kind
        if k == "s":
            if not isinstance(obj, str):
                raise PvaShareError(f"expected a string, found {obj!r:.40}")
            return obj
        if k == "?":
            return bool(obj)
        if k in "fd":
            if not isinstance(obj, (int, float)):
                raise PvaShareError(f"expected a number, found {obj!r:.40}")
            return float(obj)
        if not isinstance(obj, int) or isinstance(obj, bool):
            raise PvaShareError(f"expected an integer, found {obj!r:.40}")
        return obj
    if isinstance(t, BoundedString):
        return str(obj)
    if isinstance(t, ScalarArray):
        if t.kind == "s":
            return [str(s) for s in obj]
        le = np.frombuffer(obj, dtype=_LE[t.kind])
        return le.astype(le.dtype.newbyteorder("="))
    if isinstance(t, Structure):
        if len(obj) != len(t.fields):
            raise PvaShareError(f"expected {len(t.fields)} fields, found {len(obj)}")
        return {n: _from_obj(f, o) for (n, f), o in zip(t.fields, obj, strict=True)}
    if isinstance(t, StructureArray):
        return [None if e is None else _from_obj(t.element, e) for e in obj]
    if isinstance(t, Union):
        if obj is None:
            return None
        name, member = obj
        return UnionValue(name, _from_obj(t[name], member))
    if isinstance(t, UnionArray):
        return [_from_obj(t.element, e) for e in obj]
    if isinstance(t, Variant):
        if obj is None:
            return None
        vt = type_from_obj(obj[0])
        return VariantValue(vt, _from_obj(vt, obj[1]))
    if isinstance(t, VariantArray):
        return [_from_obj(Variant(), e) for e in obj]
    raise PvaShareError(f"cannot read a value of type {t!r}")


# ------------------------------------------------------------------------------------------
# bytes
# ------------------------------------------------------------------------------------------


def pack(obj: Any) -> bytes:
    return msgpack.packb(obj, use_bin_type=True)


def unpack(data: bytes, max_bytes: int = 64 * 1024 * 1024) -> Any:
    """msgpack bytes to data; refuses anything larger than ``max_bytes``."""
    if len(data) > max_bytes:
        raise PvaShareError(f"a stored entry of {len(data)} bytes is above {max_bytes}")
    try:
        return msgpack.unpackb(data, raw=False, strict_map_key=True)
    except Exception as exc:
        raise PvaShareError(f"a stored entry is not valid msgpack ({exc!r:.80})") from None


def pack_type(t: FieldDesc) -> bytes:
    return pack(type_to_obj(t))


def unpack_type(data: bytes) -> FieldDesc:
    return type_from_obj(unpack(data))


def pack_value(t: FieldDesc, v: Any) -> bytes:
    return pack(value_to_obj(t, v))


def unpack_value(t: FieldDesc, data: bytes) -> Any:
    return value_from_obj(t, unpack(data))
