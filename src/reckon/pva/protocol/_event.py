"""The base of every event: field checks on creation, unchecked constructors generated once
per class for events decoded from bytes (valid by construction), equality of values."""

from __future__ import annotations

import dataclasses
import ipaddress
from typing import Any

from ._bitset import BitSet
from ._constants import MessageSeverity
from ._errors import LocalProtocolError
from ._status import Status
from ._values import VariantValue, values_equal

ALL_CHANGED = BitSet.from_mask(1)
"""Bit 0 alone: the whole structure."""
NO_BITS = BitSet.from_mask(0)


def _unsigned(bits: int) -> Any:
    top = 1 << bits
    return lambda v: (
        (v.__class__ is int or (isinstance(v, int) and type(v) is not bool)) and 0 <= v < top
    )


def _address(v: object) -> bool:
    try:
        ipaddress.ip_address(v)  # type: ignore[arg-type]
    except ValueError:
        return False
    return True


_U32 = _unsigned(32)
_VARIANT = (lambda v: v is None or isinstance(v, VariantValue), "a VariantValue or None")
#: what a field must be, by its kind in the message table: (test, what the error says it must
#: be); kinds not here are not checked
_KIND_CHECKS: dict[str, tuple[Any, str]] = {
    "u8": (_unsigned(8), "an unsigned 8-bit int"),
    "u16": (_unsigned(16), "an unsigned 16-bit int"),
    **dict.fromkeys(("u32", "size", "size32"), (_U32, "an unsigned 32-bit int")),
    "u32if": (lambda v: v is None or _U32(v), "an unsigned 32-bit int or None"),
    "str": (lambda v: isinstance(v, str), "a str"),
    "name": (lambda v: isinstance(v, str) and v != "", "a channel name (a non-empty str)"),
    **dict.fromkeys(("addr", "addr0"), (_address, "an IPv4 or IPv6 address")),
    "guid": (lambda v: isinstance(v, bytes) and len(v) == 12, "12 bytes"),
    "rest": (lambda v: isinstance(v, bytes), "bytes"),
    "status": (lambda v: isinstance(v, Status), "a Status"),
    "bitset?": (lambda v: isinstance(v, BitSet), "a BitSet"),
    "part": (lambda v: v in ("get", "put"), "'get' or 'put'"),
    "severity": (lambda v: v in (0, 1, 2, 3), "a message severity, 0..3"),
    "request": (_VARIANT[0], "a VariantValue (see pv_request()) or None"),
    "variant": _VARIANT,
    "variant?": _VARIANT,
    "strings": (lambda v: all(isinstance(s, str) for s in v), "strings"),
    "pairs16": (
        lambda v: len(v) <= 0xFFFF and all(_U32(c) and isinstance(n, str) for c, n in v),
        "at most 65535 (cid: unsigned 32-bit int, name: str) pairs",
    ),
    "u32s16": (
        lambda v: len(v) <= 0xFFFF and all(_U32(c) for c in v),
        "at most 65535 unsigned 32-bit ints",
    ),
}
#: what an event keeps of a value of these kinds, whatever (checked) value it was given
_KEPT_AS: dict[str, Any] = {
    "strings": tuple,
    "u32s16": tuple,
    "pairs16": lambda v: tuple(map(tuple, v)),
    "severity": MessageSeverity,
}
#: the kinds of the fields of the events outside the message table (control messages and
#: MessageTooBig), by name
_NAME_KINDS = {"total": "u32", "value": "u32", "sid": "u32", "ioid": "u32"}
_CHECKS: dict[type, tuple[tuple[str, Any, str, Any], ...]] = {}


def check_fields(cls: type, fields: list[tuple[str, str]]) -> None:
    """Check the ``(name, kind)`` fields of ``cls`` by kind when an event is made (the message
    table's rows say their kinds; a partial value's ``changed`` is a ``bitset?``)."""
    _CHECKS[cls] = tuple(
        (name, *_KIND_CHECKS[kind], _KEPT_AS.get(kind))
        for name, kind in fields
        if kind in _KIND_CHECKS
    )


#: a field's default by its name, before its kind's
_NAME_DEFAULTS: dict[str, Any] = {"offset": 0, "count": 0, "stride": 1, "changed": ALL_CHANGED}
_REQUIRED = object()
#: a field's type and default by its kind (a partial value's ``changed`` is a ``bitset?``), as
#: the generated classes declare them and their stubs (:func:`._table.stubs`) do; a field with
#: no default (_REQUIRED) is required, unless only a success carries it (after the status):
#: then it defaults to None
_KINDS: dict[str, tuple[str, Any]] = {
    "u32": ("int", _REQUIRED),
    "size": ("int", _REQUIRED),
    "size32": ("int", 0),
    "str": ("str", ""),
    "name": ("str", _REQUIRED),
    "addr": ("str", "0.0.0.0"),
    "request": ("VariantValue | None", None),
    "variant": ("VariantValue | None", None),
    "u32if": ("int | None", None),
    "status": ("Status", Status.OK),
    "stype": ("Structure | None", None),
    "type": ("FieldDesc | None", None),
    "bitset?": ("BitSet", NO_BITS),
    "part": ('Literal["get", "put"]', "get"),
    "flag": ("bool", False),
    "rest": ("bytes", b""),
    "array": ("Any", _REQUIRED),
    "partial": ("dict[str, Any]", _REQUIRED),
    "datum": ("int", 0),
    "severity": ("MessageSeverity", _REQUIRED),
}


def event_class(name: str, fields: list[tuple[str, str, bool]], doc: str, module: str) -> type:
    """The event class of a message table row, generated from its ``(name, kind, only on
    success)`` fields in wire order: a frozen dataclass whose required fields come first,
    each field typed by its kind (what a hand-written class for the row would be)."""
    required: list[tuple[str, str]] = []
    optional: list[tuple[str, str, Any]] = []
    flags: list[tuple[str, str, Any]] = []  # (last: a request's destroy flag)
    for field, kind, on_success in fields:
        kind = "bitset?" if field == "changed" else kind
        typ, default = _KINDS[kind.partition("@")[0]]
        if on_success and default is _REQUIRED:
            default = None
        default = _NAME_DEFAULTS.get(field, default)
        if default is _REQUIRED:
            required.append((field, typ))
            continue
        if default is None and "None" not in typ and typ != "Any":
            typ += " | None"
        to = flags if kind == "flag" else optional
        to.append((field, typ, dataclasses.field(default=default)))
    cls = dataclasses.make_dataclass(
        name,
        [*required, *optional, *flags],
        bases=(Event,),
        namespace={"__doc__": doc or None},
        frozen=True,
        slots=True,
        eq=False,
    )
    cls.__module__ = module  # (after: the types are strings of a module not loaded yet)
    return cls


_NAMES: dict[type, tuple[str, ...]] = {}
_MAKERS: dict[type, Any] = {}


def maker(cls: type) -> Any:
    """The unchecked constructor of an event class: it stores each field through its slot
    descriptor (frozen dataclasses refuse ``setattr``), generated once per class and cached:
    about a third of the cost of a loop of ``object.__setattr__``."""
    if cls in _MAKERS:
        return _MAKERS[cls]
    names = tuple(f.name for f in dataclasses.fields(cls))
    env: dict[str, Any] = {"_new": object.__new__, "_cls": cls}
    lines = [f"def make({', '.join(f'a{i}' for i in range(len(names)))}):", "    ev = _new(_cls)"]
    for i, name in enumerate(names):
        env[f"_s{i}"] = cls.__dict__[name].__set__
        lines.append(f"    _s{i}(ev, a{i})")
    lines.append("    return ev")
    exec("\n".join(lines), env)  # field names come from our own dataclasses
    make = _MAKERS[cls] = env["make"]
    return make


class Event:
    """Base of every event."""

    __slots__ = ()

    def _validate(self) -> None:
        checks = _CHECKS.get(type(self))
        if checks is None:  # an event outside the message table
            fields = [(f.name, _NAME_KINDS.get(f.name, "")) for f in dataclasses.fields(self)]  # type: ignore[arg-type]
            check_fields(type(self), fields)
            checks = _CHECKS[type(self)]
        for name, test, what, kept_as in checks:
            v = getattr(self, name)
            if not test(v):
                raise LocalProtocolError(f"{name} must be {what}, not {v!r:.60}")
            if kept_as is not None:
                object.__setattr__(self, name, kept_as(v))

    def _replaced(self, **changes: Any) -> Any:
        """A copy with some fields changed, without validation (the caller vouches)."""
        names = _NAMES.get(type(self))
        if names is None:
            names = _NAMES[type(self)] = tuple(f.name for f in dataclasses.fields(self))  # type: ignore[arg-type]
        return maker(type(self))(*[changes.get(n, getattr(self, n)) for n in names])

    @classmethod
    def unchecked(cls, *args: Any) -> Any:
        """Build with every field given positionally and no validation: for a server's
        responses built from values it already holds (ids it received, types and values of
        its own PVs), on paths where checking each field would cost more than encoding it.
        Passing wrong types gives undefined results; use the normal constructor otherwise."""
        return maker(cls)(*args)

    def __post_init__(self) -> None:
        self._validate()

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return all(
            values_equal(getattr(self, f.name), getattr(other, f.name))
            for f in dataclasses.fields(self)  # type: ignore[arg-type]
        )

    __hash__ = None  # type: ignore[assignment]
