"""Field descriptions (pvData introspection): immutable, hashable, validated on creation.

A type is built once and reused: encoders and decoders are compiled per type and cached, so
equal types share them. Scalar kinds use the letters p4p uses: ``? b B h H i I l L f d s``
(``l``/``L`` are 64-bit). :func:`parse_type` turns ``"d"`` into ``Scalar("d")``, ``"ad"`` into
``ScalarArray("d")``, ``"v"`` into ``Variant()`` and ``"av"`` into ``VariantArray()``.

Offsets (the numbering bitsets use): the structure itself is 0, then every field in depth-first
order; a sub-structure takes one offset for itself followed by its fields. Unions, variants
and arrays of structures are leaves (one offset each).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, ClassVar

from ._arrays import empty_array
from ._errors import LocalProtocolError
from ._wire import KINDS

#: kind letter -> wire type code
SCALAR_CODES: dict[str, int] = {k: row[0] for k, row in KINDS.items()}
#: wire type code -> kind letter
SCALAR_KINDS: dict[int, str] = {code: k for k, code in SCALAR_CODES.items()}
#: kind letter -> struct module format character (strings have none)
STRUCT_CHARS: dict[str, str] = {k: row[1] for k, row in KINDS.items() if row[1]}
#: kind letter -> the names pvData uses (for messages and docs)
KIND_NAMES: dict[str, str] = {k: row[2] for k, row in KINDS.items()}


class FieldDesc:
    """Base of every field description. Instances are immutable and compare by value."""

    __slots__ = ("_hash", "_k", "bit_count", "code", "depth")
    code: int
    #: how deeply this type nests (a scalar is 1)
    depth: int
    #: how many bitset offsets the field occupies (1 except for structures)
    bit_count: int
    _hash: int
    #: the values of ``_args``, kept: equal types made apart (two PVs' ``NTScalar("d")``) are
    #: compared on every cache lookup of a post, which built these tuples each time
    _k: tuple[object, ...]
    #: the attributes the constructor takes, in its order: they compare, hash, pickle and show
    _args: ClassVar[tuple[str, ...]] = ()

    def _init(self, code: int, depth: int, bit_count: int = 1, **args: object) -> None:
        for name, value in args.items():
            object.__setattr__(self, name, value)
        object.__setattr__(self, "code", code)
        object.__setattr__(self, "depth", depth)
        object.__setattr__(self, "bit_count", bit_count)
        object.__setattr__(self, "_k", tuple(getattr(self, name) for name in self._args))
        object.__setattr__(self, "_hash", hash((type(self).__name__, *self._k)))

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable")

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other: object) -> bool:
        if self is other:
            return True
        if type(other) is not type(self):
            return NotImplemented
        assert isinstance(other, FieldDesc)
        return self._hash == other._hash and self._k == other._k

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), self._k)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(map(repr, self._k))})"

    def __copy__(self) -> FieldDesc:
        return self

    def __deepcopy__(self, memo: dict[int, object]) -> FieldDesc:
        return self

    def default(self) -> object:
        """The value a field of this type has before anything is assigned (unions and variants:
        None, no member and no value)."""
        return None


def _check_kind(kind: str) -> None:
    if kind not in SCALAR_CODES:
        raise LocalProtocolError(
            f"unknown scalar kind {kind!r}; use one of {''.join(SCALAR_CODES)}"
        )


class Scalar(FieldDesc):
    """A single boolean, integer, float or string."""

    __slots__ = ("kind",)
    kind: str
    _args = ("kind",)

    def __init__(self, kind: str) -> None:
        _check_kind(kind)
        self._init(SCALAR_CODES[kind], 1, kind=kind)

    def default(self) -> object:
        return KINDS[self.kind][3]


class BoundedString(FieldDesc):
    """A string of at most ``bound`` bytes (pvDataCPP only; pvxs refuses this type)."""

    __slots__ = ("bound",)
    bound: int
    _args = ("bound",)

    def __init__(self, bound: int) -> None:
        if not isinstance(bound, int) or bound < 0 or bound > 0xFFFFFFFF:
            raise LocalProtocolError(f"bounded string bound must be 0..2**32-1, not {bound!r}")
        self._init(0x83, 1, bound=bound)

    def default(self) -> object:
        return ""


class ScalarArray(FieldDesc):
    """An array of scalars: variable length, or bounded/fixed (``size``) like pvDataCPP.

    pvxs (and so p4p) only accepts variable-length arrays; bounded and fixed arrays exist for
    older peers and are refused by pvxs.
    """

    __slots__ = ("fixed", "kind", "size")
    kind: str
    size: int | None
    fixed: bool
    _args = ("kind", "size", "fixed")

    def __init__(self, kind: str, size: int | None = None, fixed: bool = False) -> None:
        _check_kind(kind)
        if size is not None and (not isinstance(size, int) or size < 0 or size > 0xFFFFFFFF):
            raise LocalProtocolError(f"array size must be 0..2**32-1, not {size!r}")
        if fixed and size is None:
            raise LocalProtocolError("a fixed array needs a size")
        arr = 0x08 if size is None else (0x18 if fixed else 0x10)
        self._init(SCALAR_CODES[kind] | arr, 1, kind=kind, size=size, fixed=bool(fixed))

    def __repr__(self) -> str:
        if self.size is None:
            return f"ScalarArray({self.kind!r})"
        return f"ScalarArray({self.kind!r}, size={self.size}, fixed={self.fixed})"

    def default(self) -> object:
        return empty_array(self.kind)


FieldSpec = FieldDesc | str
#: the fields of a structure or union: (name, type) pairs, or a mapping of names to types
_Fields = Iterable[tuple[str, FieldSpec]] | Mapping[str, FieldSpec]


def parse_type(spec: FieldSpec) -> FieldDesc:
    """``"d"`` -> Scalar, ``"ad"`` -> ScalarArray, ``"v"`` -> Variant, ``"av"`` -> VariantArray."""
    if isinstance(spec, FieldDesc):
        return spec
    if not isinstance(spec, str):
        raise LocalProtocolError(f"a field type is a FieldDesc or a code string, not {spec!r}")
    if spec == "v":
        return Variant()
    if spec == "av":
        return VariantArray()
    if len(spec) == 1 and spec in SCALAR_CODES:
        return Scalar(spec)
    if len(spec) == 2 and spec[0] == "a" and spec[1] in SCALAR_CODES:
        return ScalarArray(spec[1])
    raise LocalProtocolError(
        f"unknown type code {spec!r}: use a scalar letter ({''.join(SCALAR_CODES)}), "
        "'a' + letter for arrays, 'v' for variant or 'av' for variant arrays"
    )


class _Compound(FieldDesc):
    __slots__ = ("_index", "fields", "id")
    fields: tuple[tuple[str, FieldDesc], ...]
    id: str
    _index: dict[str, int]
    _args = ("fields", "id")
    _what: ClassVar[str]  # "structure" or "union", for messages
    _code: ClassVar[int]

    def __init__(self, fields: _Fields = (), id: str = "") -> None:
        what = self._what
        if not isinstance(id, str):
            raise LocalProtocolError(f"{what} id must be a string, not {id!r}")
        index: dict[str, int] = {}
        flds: list[tuple[str, FieldDesc]] = []
        for item in fields.items() if isinstance(fields, Mapping) else fields:
            try:
                name, spec = item
            except (TypeError, ValueError):
                raise LocalProtocolError(
                    f"{what} fields are (name, type) pairs, not {item!r}"
                ) from None
            if not isinstance(name, str) or not name or "." in name:
                raise LocalProtocolError(
                    f"{what} field name {name!r} must be a non-empty string without '.'"
                )
            if name in index:
                raise LocalProtocolError(f"{what} field name {name!r} appears twice")
            index[name] = len(flds)
            flds.append((name, parse_type(spec)))
        object.__setattr__(self, "_index", index)
        depth = 1 + max((t.depth for _, t in flds), default=0)
        # a structure's fields have offsets of their own; a union is one leaf
        bits = 1 + sum(t.bit_count for _, t in flds) if self._code == 0x80 else 1
        self._init(self._code, depth, bits, fields=tuple(flds), id=id)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({list(self.fields)!r}, id={self.id!r})"

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(n for n, _ in self.fields)

    def __contains__(self, name: object) -> bool:
        return name in self._index

    def __iter__(self) -> Iterator[tuple[str, FieldDesc]]:
        return iter(self.fields)

    def __len__(self) -> int:
        return len(self.fields)

    def index(self, name: str) -> int:
        """Position of a member (the union selector for unions)."""
        try:
            return self._index[name]
        except KeyError:
            raise LocalProtocolError(
                f"no field {name!r} in {type(self).__name__} {self.id!r}; "
                f"it has {list(self._index)}"
            ) from None

    def __getitem__(self, path: str) -> FieldDesc:
        cur: FieldDesc = self
        for part in path.split("."):
            if not isinstance(cur, _Compound):
                raise LocalProtocolError(f"{path!r}: {part!r} is below a non-structure field")
            cur = cur.fields[cur.index(part)][1]
        return cur


_MAX_GENERATED_DEFAULT = 2000


def _default_factory(t: Structure) -> Callable[[], dict[str, object]]:
    env: dict[str, Any] = {}

    def display(st: Structure) -> str:
        parts = []
        for name, ft in st.fields:
            if isinstance(ft, Structure):
                expr = display(ft)
            elif isinstance(ft, Scalar):
                expr = repr(ft.default())  # immutable: 0, 0.0, "", False
            else:
                key = f"_d{len(env)}"
                env[key] = ft.default
                expr = f"{key}()"
            parts.append(f"{name!r}: {expr}")
        return "{" + ", ".join(parts) + "}"

    exec(f"def make():\n    return {display(t)}\n", env)  # names are repr()'d strings
    make: Callable[[], dict[str, object]] = env["make"]
    return make


class Structure(_Compound):
    """An ordered set of named fields with an optional type id (``epics:nt/NTScalar:1.0``).

    ``Structure([("value", "d"), ("alarm", alarm_t)], id="...")`` or a mapping of names to types.
    Values are plain ``dict`` objects keyed by field name.
    """

    __slots__ = ("_layout", "_make_default")
    #: (offsets by dotted path, (path, type) by offset), built when first asked for
    _layout: tuple[dict[str, int], tuple[tuple[str, FieldDesc], ...]] | None
    _make_default: Callable[[], dict[str, object]] | None
    _what, _code = "structure", 0x80

    def __init__(self, fields: _Fields = (), id: str = "") -> None:
        object.__setattr__(self, "_layout", None)
        object.__setattr__(self, "_make_default", None)
        super().__init__(fields, id)

    def default(self) -> dict[str, object]:
        # a fresh value every time (callers may change it), built by a function generated
        # once per type: one nested dict display instead of a call per field (the base of
        # every partial put a server decodes)
        make = self._make_default
        if make is None:
            if self.bit_count > _MAX_GENERATED_DEFAULT:
                return {n: t.default() for n, t in self.fields}
            make = _default_factory(self)
            object.__setattr__(self, "_make_default", make)
        return make()

    def _laid_out(self) -> tuple[dict[str, int], tuple[tuple[str, FieldDesc], ...]]:
        if self._layout is None:
            paths: list[tuple[str, FieldDesc]] = [("", self)]

            def walk(s: Structure, prefix: str) -> None:
                for name, t in s.fields:
                    paths.append((prefix + name, t))
                    if isinstance(t, Structure):
                        walk(t, prefix + name + ".")

            walk(self, "")
            offsets = {path: i for i, (path, _) in enumerate(paths) if i}
            object.__setattr__(self, "_layout", (offsets, tuple(paths)))
        assert self._layout is not None
        return self._layout

    @property
    def offsets(self) -> dict[str, int]:
        """Dotted path -> bit offset, for every field below this structure."""
        return self._laid_out()[0]

    def offset_of(self, path: str) -> int:
        """Bit offset of a dotted field path (``""`` is the structure itself, offset 0)."""
        if path == "":
            return 0
        try:
            return self.offsets[path]
        except KeyError:
            raise LocalProtocolError(f"no field {path!r} in structure {self.id!r}") from None

    def field_at(self, offset: int) -> tuple[str, FieldDesc]:
        """(dotted path, type) of the field at a bit offset."""
        paths = self._laid_out()[1]
        if not 0 <= offset < len(paths):
            raise LocalProtocolError(f"offset {offset} is outside structure {self.id!r}")
        return paths[offset]


class Union(_Compound):
    """One of several named members (or nothing). Values are :class:`UnionValue` or None."""

    __slots__ = ()
    _what, _code = "union", 0x81


class Variant(FieldDesc):
    """The "any" type: each value carries its own type. Values are VariantValue or None."""

    __slots__ = ()

    def __init__(self) -> None:
        self._init(0x82, 1)


class _ElementArray(FieldDesc):
    """An array of structures or of unions: the element type follows the type code."""

    __slots__ = ("element",)
    element: _Compound
    _args = ("element",)
    _of: ClassVar[type[_Compound]]
    _code: ClassVar[int]

    def __init__(self, element: _Compound) -> None:
        if not isinstance(element, self._of):
            name = self._of.__name__
            raise LocalProtocolError(f"{type(self).__name__} needs a {name}, not {element!r}")
        self._init(self._code, element.depth + 1, element=element)

    def default(self) -> object:
        return []


class StructureArray(_ElementArray):
    """Array of structures; values are lists of dicts (or None for null elements)."""

    __slots__ = ()
    element: Structure
    _of, _code = Structure, 0x88


class UnionArray(_ElementArray):
    """Array of unions; values are lists of UnionValue (or None)."""

    __slots__ = ()
    element: Union
    _of, _code = Union, 0x89


class VariantArray(FieldDesc):
    """Array of variants; values are lists of VariantValue (or None)."""

    __slots__ = ()

    def __init__(self) -> None:
        self._init(0x8A, 2)

    def default(self) -> object:
        return []
