"""Field descriptions on the wire, with the per-connection type cache.

Type byte: bits 7-5 kind (bool, int, float, string, compound), bits 4-3 array kind (scalar,
variable, bounded, fixed), bits 2-0 size/sign or compound kind. Compound bodies: id string,
Size field count, then (name, type) pairs; arrays of structures/unions are followed by the
element type. Special leading bytes: 0xFF null, 0xFD key+type (define in cache), 0xFE key (reuse).

Each direction of a connection has its own cache: :class:`TypeSendCache` (what we defined for
the peer) and :class:`TypeRecvCache` (what the peer defined for us).
"""

from __future__ import annotations

import functools

from ._errors import LOW_LEVEL_ERRORS, DecodeError, LimitExceededError, LocalProtocolError
from ._types import (
    SCALAR_KINDS,
    BoundedString,
    FieldDesc,
    Scalar,
    ScalarArray,
    Structure,
    StructureArray,
    Union,
    UnionArray,
    Variant,
    VariantArray,
)
from ._wire import READ_STRING, U16, read_size, size_bytes, string_bytes


class TypeSendCache:
    """Keys we assigned to types sent with 0xFD; later sends use 0xFE + key."""

    def __init__(self, max_size: int = 0x7FFF) -> None:
        self.max_size = max_size
        self.keys: dict[FieldDesc, int] = {}

    def __len__(self) -> int:
        return len(self.keys)


class TypeRecvCache:
    """Types the peer defined with 0xFD, by key; bounded in entries and in wire bytes."""

    def __init__(self, max_size: int = 0x10000, max_bytes: int = 16 * 1024 * 1024) -> None:
        self.max_size = max_size
        self.max_bytes = max_bytes
        self.used_bytes = 0
        self.types: dict[int, FieldDesc] = {}
        self._sizes: dict[int, int] = {}


@functools.lru_cache(maxsize=4096)
def full_type_bytes(t: FieldDesc, be: bool) -> bytes:
    out = bytearray((t.code,))
    if isinstance(t, (Structure, Union)):
        out += string_bytes(t.id, be)
        out += size_bytes(len(t.fields), be)
        for name, ft in t.fields:
            out += string_bytes(name, be)
            out += full_type_bytes(ft, be)
    elif isinstance(t, (StructureArray, UnionArray)):
        out += full_type_bytes(t.element, be)
    elif isinstance(t, ScalarArray):
        if t.size is not None:
            out += size_bytes(t.size, be)
    elif isinstance(t, BoundedString):
        out += size_bytes(t.bound, be)
    return bytes(out)


def encode_type(
    t: FieldDesc | None, big_endian: bool = False, cache: TypeSendCache | None = None
) -> bytes:
    """Wire bytes of a type (0xFF for None). With a cache, structures and unions are sent
    as 0xFD key+type the first time and 0xFE key afterwards."""
    if t is None:
        return b"\xff"
    if cache is not None and isinstance(t, (Structure, Union)):
        key = cache.keys.get(t)
        if key is not None:
            return b"\xfe" + U16[big_endian].pack(key)
        if len(cache.keys) < cache.max_size:
            key = len(cache.keys)
            cache.keys[t] = key
            return b"\xfd" + U16[big_endian].pack(key) + full_type_bytes(t, big_endian)
    return full_type_bytes(t, big_endian)


def decode_type(
    data: bytes,
    pos: int = 0,
    big_endian: bool = False,
    cache: TypeRecvCache | None = None,
    max_depth: int = 32,
    max_fields: int = 20_000,
) -> tuple[FieldDesc | None, int]:
    """(type or None, position after it). Raises only DecodeError/LimitExceededError."""
    try:
        return read_type(bytes(data), pos, big_endian, cache, max_depth, 0, [max_fields])
    except LOW_LEVEL_ERRORS as exc:
        raise DecodeError(f"truncated or malformed type description: {exc!r}") from None


def read_type(
    data: bytes,
    pos: int,
    big_endian: bool,
    cache: TypeRecvCache | None,
    max_depth: int,
    depth: int,
    budget: list[int],
) -> tuple[FieldDesc | None, int]:
    """(type or None, new position). Depth is checked before recursing, so a type nested
    thousands deep costs at most ``max_depth`` frames; ``budget`` (a one-element list) is the
    number of fields the whole description may still declare."""
    if depth >= max_depth:
        raise LimitExceededError(f"type nested more than {max_depth} deep (max_depth)")
    code = data[pos]
    pos += 1
    if code == 0xFF:
        return None, pos
    if code == 0xFD or code == 0xFE:
        if cache is None:
            raise DecodeError("type cache reference where no cache is allowed")
        key = U16[big_endian].unpack_from(data, pos)[0]
        pos += 2
        if code == 0xFE:
            t = cache.types.get(key)
            if t is None:
                raise DecodeError(f"type cache reference to undefined key {key}")
            return t, pos
        start = pos
        t, pos = read_type(data, pos, big_endian, cache, max_depth, depth + 1, budget)
        if t is None:
            raise DecodeError(f"type cache definition of key {key} holds no type")
        if key not in cache.types and len(cache.types) >= cache.max_size:
            raise LimitExceededError(f"peer defined more than {cache.max_size} cached types")
        used = cache.used_bytes - cache._sizes.get(key, 0) + (pos - start)
        if used > cache.max_bytes:
            raise LimitExceededError(f"peer's cached types exceed {cache.max_bytes} bytes")
        cache.used_bytes = used
        cache._sizes[key] = pos - start
        cache.types[key] = t
        return t, pos
    try:
        if code & 0xE0 != 0x80:  # bool, integer, float, string
            kind = SCALAR_KINDS.get(code & 0xE7)
            if kind is None:
                raise DecodeError(f"unknown type code 0x{code:02x}")
            arr = code & 0x18
            if arr == 0:
                return Scalar(kind), pos
            if arr == 0x08:
                return ScalarArray(kind), pos
            n, pos = read_size(data, pos, big_endian)
            return ScalarArray(kind, n, fixed=arr == 0x18), pos
        if code in (0x80, 0x81):
            rs = READ_STRING[big_endian]
            tid, pos = rs(data, pos)
            n, pos = read_size(data, pos, big_endian)
            if n * 2 > len(data) - pos:
                raise DecodeError(f"compound type claims {n} fields, more than the message holds")
            budget[0] -= n
            if budget[0] < 0:
                raise LimitExceededError("type description declares too many fields (max_fields)")
            fields: list[tuple[str, FieldDesc]] = []
            for _ in range(n):
                name, pos = rs(data, pos)
                ft, pos = read_type(data, pos, big_endian, cache, max_depth, depth + 1, budget)
                if ft is None:
                    raise DecodeError(f"field {name!r} has a null type")
                fields.append((name, ft))
            return (Structure if code == 0x80 else Union)(fields, tid), pos
        if code == 0x82:
            return Variant(), pos
        if code == 0x83:
            n, pos = read_size(data, pos, big_endian)
            return BoundedString(n), pos
        if code in (0x88, 0x89):
            el, pos = read_type(data, pos, big_endian, cache, max_depth, depth + 1, budget)
            array = StructureArray if code == 0x88 else UnionArray
            return array(el), pos  # type: ignore[arg-type]  # the class checks its element's type
        if code == 0x8A:
            return VariantArray(), pos
        raise DecodeError(f"unknown type code 0x{code:02x}")
    except LocalProtocolError as exc:  # invalid type built from wire data
        raise DecodeError(f"invalid type description: {exc}") from None
