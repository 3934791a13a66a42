"""Value containers for the two pvData kinds plain Python has no word for: unions and variants.

Everything else is plain Python: structures are dicts, scalars are bool/int/float/str, scalar
arrays are numpy arrays (lists without numpy; lists of str for string arrays), arrays of
structures/unions/variants are lists with None for null elements.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from ._arrays import kind_of_dtype, np
from ._errors import LocalProtocolError
from ._types import (
    FieldDesc,
    Scalar,
    ScalarArray,
    Structure,
    StructureArray,
    Variant,
    VariantArray,
)


class _Pair:
    """Equal when the first halves are and the values are (deeply, see :func:`values_equal`)."""

    __slots__ = ()

    def _halves(self) -> tuple[Any, Any]:
        names: tuple[str, ...] = self.__slots__  # (the dataclass's two fields, in order)
        first, value = (getattr(self, name) for name in names)
        return first, value

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, type(self)):
            return False
        (a, x), (b, y) = self._halves(), other._halves()
        return bool(a == b) and values_equal(x, y)

    __hash__ = None  # type: ignore[assignment]


@dataclasses.dataclass(frozen=True, slots=True, eq=False)
class UnionValue(_Pair):
    """The selected member of a union: its name and its value."""

    field: str
    value: Any

    def __post_init__(self) -> None:
        if not isinstance(self.field, str):
            raise LocalProtocolError(f"a union member is named by a string, not {self.field!r}")


@dataclasses.dataclass(frozen=True, slots=True, eq=False)
class VariantValue(_Pair):
    """A value of a "variant" (any) field: a type description and a value of that type.

    ``VariantValue.of(1.5)`` infers the type (float -> double, int -> long, str -> string,
    list/ndarray -> arrays, dict -> structure).
    """

    type: FieldDesc
    value: Any

    def __post_init__(self) -> None:
        if not isinstance(self.type, FieldDesc):
            raise LocalProtocolError(f"VariantValue needs a FieldDesc, not {self.type!r}")

    @classmethod
    def of(cls, value: Any) -> VariantValue:
        if isinstance(value, VariantValue):
            return value
        return cls(infer_type(value), value)


def infer_type(value: Any) -> FieldDesc:
    """The type a plain Python value gets when put in a variant."""
    if isinstance(value, VariantValue):
        return Variant()
    if isinstance(value, bool):
        return Scalar("?")
    if isinstance(value, int):
        return Scalar("l" if -(2**63) <= value < 2**63 else "L")
    if isinstance(value, float):
        return Scalar("d")
    if isinstance(value, str):
        return Scalar("s")
    if isinstance(value, (bytes, bytearray, memoryview)):
        return ScalarArray("B")
    if np is not None:
        if isinstance(value, np.generic):
            return infer_type(value.item())
        if isinstance(value, np.ndarray):
            if value.dtype.kind in "US":
                return ScalarArray("s")
            kind = kind_of_dtype(value.dtype)
            if kind is None:
                raise LocalProtocolError(f"no pvData array type for numpy dtype {value.dtype}")
            return ScalarArray(kind)
    if isinstance(value, Mapping):
        return Structure([(str(k), infer_type(v)) for k, v in value.items()])
    if isinstance(value, Sequence):
        items = list(value)
        if all(isinstance(x, str) for x in items):
            return ScalarArray("s")
        if all(isinstance(x, bool) for x in items) and items:
            return ScalarArray("?")
        if all(isinstance(x, int) and not isinstance(x, bool) for x in items):
            return ScalarArray("l")
        if all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in items):
            return ScalarArray("d")
        if all(isinstance(x, Mapping) for x in items):
            first = infer_type(items[0])
            assert isinstance(first, Structure)
            return StructureArray(first)
        return VariantArray()
    raise LocalProtocolError(
        f"cannot infer a pvData type for {type(value).__name__} {value!r:.60}; wrap it in "
        "VariantValue(type, value)"
    )


def values_equal(a: Any, b: Any) -> bool:
    """Deep equality that treats numpy arrays and lists of the same elements as equal."""
    if a is b:
        return True
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return a.keys() == b.keys() and all(values_equal(a[k], b[k]) for k in a)
    if np is not None and (isinstance(a, np.ndarray) or isinstance(b, np.ndarray)):
        try:
            aa, bb = np.asarray(a), np.asarray(b)
            if aa.shape != bb.shape:
                return False
            if aa.size == 0:
                return True
            return bool(np.array_equal(aa, bb, equal_nan=aa.dtype.kind == "f"))
        except (TypeError, ValueError):
            return False
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(values_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and isinstance(b, float) and a != a and b != b:
        return True
    return bool(a == b)
