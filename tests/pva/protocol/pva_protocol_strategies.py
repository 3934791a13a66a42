"""Hypothesis strategies: random type descriptions and matching values."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

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

KINDS = list("?bBhHiIlLfds")
names = st.text(alphabet="abcdefghijklmnopqrstuvwxyzXYZ_", min_size=1, max_size=6)
ids = st.sampled_from(["", "epics:nt/NTScalar:1.0", "alarm_t", "x" * 300])


def _fields(
    children: st.SearchStrategy[FieldDesc],
) -> st.SearchStrategy[list[tuple[str, FieldDesc]]]:
    return st.lists(st.tuples(names, children), max_size=4, unique_by=lambda p: p[0])


leaf_types: st.SearchStrategy[FieldDesc] = st.one_of(
    st.sampled_from(KINDS).map(Scalar),
    st.sampled_from(KINDS).map(ScalarArray),
    st.builds(Variant),
    st.builds(VariantArray),
)
legacy_leaf_types: st.SearchStrategy[FieldDesc] = st.one_of(
    st.integers(0, 300).map(BoundedString),
    st.builds(ScalarArray, st.sampled_from(KINDS), st.integers(0, 5), st.booleans()),
)


def _extend(children: st.SearchStrategy[FieldDesc]) -> st.SearchStrategy[FieldDesc]:
    structs = st.builds(Structure, _fields(children), ids)
    unions = st.builds(Union, _fields(children), ids)
    return st.one_of(structs, unions, structs.map(StructureArray), unions.map(UnionArray))


def types(legacy: bool = False) -> st.SearchStrategy[FieldDesc]:
    base = st.one_of(leaf_types, legacy_leaf_types) if legacy else leaf_types
    return st.recursive(base, _extend, max_leaves=8)


def structures(legacy: bool = False) -> st.SearchStrategy[Structure]:
    return st.builds(Structure, _fields(types(legacy)), ids)


text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=20)
_INT_RANGES = {
    "b": (-(2**7), 2**7 - 1),
    "B": (0, 2**8 - 1),
    "h": (-(2**15), 2**15 - 1),
    "H": (0, 2**16 - 1),
    "i": (-(2**31), 2**31 - 1),
    "I": (0, 2**32 - 1),
    "l": (-(2**63), 2**63 - 1),
    "L": (0, 2**64 - 1),
}


def scalar_values(kind: str) -> st.SearchStrategy[Any]:
    if kind == "?":
        return st.booleans()
    if kind == "s":
        return text
    if kind == "f":
        return st.floats(width=32)
    if kind == "d":
        return st.floats()
    lo, hi = _INT_RANGES[kind]
    return st.integers(lo, hi)


small_variant_types = st.one_of(
    st.sampled_from(KINDS).map(Scalar),
    st.sampled_from(KINDS).map(ScalarArray),
    st.builds(
        Structure,
        st.lists(
            st.tuples(names, st.sampled_from(KINDS).map(Scalar)),
            max_size=3,
            unique_by=lambda p: p[0],
        ),
    ),
)


def values(t: FieldDesc) -> st.SearchStrategy[Any]:
    if isinstance(t, Scalar):
        return scalar_values(t.kind)
    if isinstance(t, BoundedString):
        return st.text(alphabet="abc", max_size=min(t.bound, 20))
    if isinstance(t, ScalarArray):
        el = scalar_values(t.kind)
        if t.size is None:
            return st.lists(el, max_size=6)
        if t.fixed:
            return st.lists(el, min_size=t.size, max_size=t.size)
        return st.lists(el, max_size=t.size)
    if isinstance(t, Structure):
        return st.fixed_dictionaries({n: values(ft) for n, ft in t.fields})
    if isinstance(t, Union):
        if not t.fields:
            return st.none()
        return st.one_of(
            st.none(),
            st.sampled_from(t.fields).flatmap(
                lambda f: values(f[1]).map(lambda v, name=f[0]: UnionValue(name, v))
            ),
        )
    if isinstance(t, Variant):
        return st.one_of(
            st.none(),
            small_variant_types.flatmap(lambda vt: values(vt).map(lambda v: VariantValue(vt, v))),
        )
    if isinstance(t, StructureArray):
        return st.lists(st.one_of(st.none(), values(t.element)), max_size=3)
    if isinstance(t, UnionArray):
        return st.lists(
            st.one_of(st.none(), values(t.element).filter(lambda v: v is not None)), max_size=3
        )
    if isinstance(t, VariantArray):
        return st.lists(values(Variant()), max_size=3)
    raise AssertionError(t)


# --- bytes near a valid message, for the shortcuts' agreement with the general path -----------

Damage = tuple[list[tuple[int, int]], int]


def damage(reach: int, cut: tuple[int, int] = (-3, 3)) -> st.SearchStrategy[Damage]:
    """Up to three bytes overwritten within the first ``reach``, then the message shortened
    (a negative length change) or lengthened with zeros by up to the bounds of ``cut``."""
    return st.tuples(
        st.lists(st.tuples(st.integers(0, reach), st.integers(0, 255)), max_size=3),
        st.integers(*cut),
    )


def damaged(data: bytes | bytearray, how: Damage) -> bytes:
    """``data`` with ``how`` applied (edits past the end are ignored)."""
    edits, cut = how
    out = bytearray(data)
    for pos, value in edits:
        if pos < len(out):
            out[pos] = value
    return bytes(out[: len(out) + cut] if cut < 0 else out + bytes(cut))
