"""The base of every event: field checks on creation, unchecked constructors generated once
per class for events decoded from bytes (valid by construction), equality of values."""

from __future__ import annotations

import dataclasses
import ipaddress
from typing import Any

from ._bitset import BitSet
from ._errors import LocalProtocolError
from ._status import Status
from ._values import VariantValue, values_equal

ALL_CHANGED = BitSet.from_mask(1)
"""Bit 0 alone: the whole structure."""
NO_BITS = BitSet.from_mask(0)


def check_u(name: str, v: object, bits: int) -> None:
    if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v < (1 << bits):
        raise LocalProtocolError(f"{name} must be an unsigned {bits}-bit int, not {v!r}")


def check_str(name: str, v: object) -> None:
    if not isinstance(v, str):
        raise LocalProtocolError(f"{name} must be a str, not {v!r}")


def check_addr(name: str, v: object) -> None:
    try:
        ipaddress.ip_address(v)  # type: ignore[arg-type]
    except ValueError:
        raise LocalProtocolError(f"{name} must be an IPv4 or IPv6 address, not {v!r}") from None


def check_u32(name: str, v: object) -> None:
    if v.__class__ is not int or not 0 <= v <= 0xFFFFFFFF:
        check_u(name, v, 32)


def _check_status(name: str, v: object) -> None:
    if not isinstance(v, Status):
        raise LocalProtocolError(f"status must be a Status, not {v!r}")


def _check_bitset(name: str, v: object) -> None:
    if not isinstance(v, BitSet):
        raise LocalProtocolError(f"{name} must be a BitSet, not {v!r}")


def _check_request(name: str, v: object) -> None:
    if v is not None and not isinstance(v, VariantValue):
        raise LocalProtocolError("pv_request must be a VariantValue (see pv_request()) or None")


def _check_u16(name: str, v: object) -> None:
    check_u(name, v, 16)


def _check_guid(name: str, v: object) -> None:
    if not isinstance(v, bytes) or len(v) != 12:
        raise LocalProtocolError(f"{name} must be 12 bytes, not {v!r:.60}")


#: the checks of the written (not generated) events' fields, by name
_FIELD_CHECKS: dict[str, Any] = {
    **dict.fromkeys(("sid", "cid", "ioid", "sequence", "total", "value"), check_u32),
    **dict.fromkeys(("buffer_size",), check_u32),
    **dict.fromkeys(("port", "response_port", "change_count", "registry_size", "qos"), _check_u16),
    **dict.fromkeys(("address", "response_address"), check_addr),
    **dict.fromkeys(("protocol", "auth_method", "text"), check_str),
    "guid": _check_guid,
}
_CHECKS: dict[type, tuple[tuple[str, Any], ...]] = {}


def _check_u32_or_none(name: str, v: object) -> None:
    if v is not None:
        check_u32(name, v)


def _check_bytes(name: str, v: object) -> None:
    if not isinstance(v, bytes):
        raise LocalProtocolError(f"{name} must be bytes, not {v!r:.60}")


def _check_name(name: str, v: object) -> None:
    check_str(name, v)
    if not v:
        raise LocalProtocolError("channel name must not be empty")


def _check_part(name: str, v: object) -> None:
    if v not in ("get", "put"):
        raise LocalProtocolError(f"{name} must be 'get' or 'put', not {v!r}")


#: what a field of a message table row is checked with on creation, by its kind (a partial
#: value's ``changed`` as a ``bitset?``); kinds not here are not checked
_KIND_CHECKS: dict[str, Any] = {
    "u32": check_u32,
    "size": check_u32,
    "size32": check_u32,
    "u32if": _check_u32_or_none,
    "status": _check_status,
    "request": _check_request,
    "bitset?": _check_bitset,
    "part": _check_part,
    "addr": check_addr,
    "rest": _check_bytes,
    "name": _check_name,
}
#: a field's default, by its name, else by its kind; a field with neither is required (one
#: that only a success carries, after the status, defaults to None)
_NAME_DEFAULTS: dict[str, Any] = {"offset": 0, "count": 0, "stride": 1, "changed": ALL_CHANGED}
_KIND_DEFAULTS: dict[str, Any] = {
    "request": None,
    "status": Status.OK,
    "stype": None,
    "type": None,
    "u32if": None,
    "part": "get",
    "variant": None,
    "str": "",
    "bitset?": NO_BITS,
    "size32": 0,
    "flag": False,
    "addr": "0.0.0.0",
    "rest": b"",
}


#: a field's type, by its kind (a partial value's ``changed`` as a ``bitset?``), as the
#: generated classes annotate it and their stubs (:func:`._table.stubs`) declare it
_KIND_TYPES: dict[str, str] = {
    **dict.fromkeys(("u32", "size", "size32"), "int"),
    **dict.fromkeys(("str", "name", "addr"), "str"),
    **dict.fromkeys(("request", "variant"), "VariantValue | None"),
    "u32if": "int | None",
    "status": "Status",
    "stype": "Structure | None",
    "type": "FieldDesc | None",
    "bitset?": "BitSet",
    "part": 'Literal["get", "put"]',
    "flag": "bool",
    "rest": "bytes",
    "array": "Any",
    "partial": "dict[str, Any]",
}


def event_class(name: str, fields: list[tuple[str, str, bool]], doc: str, module: str) -> type:
    """The event class of a message table row, generated from its ``(name, kind, only on
    success)`` fields in wire order: a frozen dataclass whose required fields come first,
    each field typed and checked by its kind (what a hand-written class for the row would
    be)."""
    required: list[tuple[str, str]] = []
    optional: list[tuple[str, str, Any]] = []
    flags: list[tuple[str, str, Any]] = []  # (last: a request's destroy flag)
    checks: list[tuple[str, Any]] = []
    for field, kind, on_success in fields:
        kind = "bitset?" if field == "changed" else kind
        typ = _KIND_TYPES[kind.partition("@")[0]]
        if field in _NAME_DEFAULTS or kind in _KIND_DEFAULTS or on_success:
            default = _NAME_DEFAULTS.get(field, _KIND_DEFAULTS.get(kind))
            if default is None and "None" not in typ and typ != "Any":
                typ += " | None"
            to = flags if kind == "flag" else optional
            to.append((field, typ, dataclasses.field(default=default)))
        else:
            required.append((field, typ))
        check = _KIND_CHECKS.get(kind)
        if check is not None:
            checks.append((field, check))
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
    _CHECKS[cls] = tuple(checks)
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
        cls = type(self)
        checks = _CHECKS.get(cls)
        if checks is None:
            checks = _CHECKS[cls] = tuple(
                (f.name, _FIELD_CHECKS[f.name])
                for f in dataclasses.fields(self)  # type: ignore[arg-type]
                if f.name in _FIELD_CHECKS
            )
        for name, check in checks:
            check(name, getattr(self, name))

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


__all__ = [
    "ALL_CHANGED",
    "NO_BITS",
    "Event",
    "check_addr",
    "check_str",
    "check_u",
    "event_class",
    "maker",
]
