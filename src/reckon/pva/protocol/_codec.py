"""Values on the wire: full and partial (bitset) serialization, compiled per type.

For every (type, byte order) :mod:`._structgen` generates one function that encodes (and one
that decodes) a whole structure. Partial forms (only the fields in a bitset) are compiled per
mask and cached, since a monitor usually posts the same set of fields again and again.

Decoders check every count against the bytes left before allocating, and track the nesting of
variant values (whose types come from the wire) against ``max_depth``.

Compiling is worth it only for types that come back: a structure (or a partial-update mask)
seen for the first time is decoded by walking it, and compiled when it is seen again, so a
peer sending a new type or mask with every message costs walks, never a compile each.
"""

from __future__ import annotations

import contextlib
import functools
import struct
from collections.abc import Callable, Mapping
from typing import Any

from ._arrays import HAVE_NUMPY, array_decoder, array_encoder
from ._bitset import BitSet, encode_bitset, read_bitset
from ._errors import LOW_LEVEL_ERRORS, DecodeError, LimitExceededError, LocalProtocolError
from ._structgen import normalize, selected, struct_decoder, struct_encoder
from ._typecodec import TypeRecvCache, TypeSendCache, encode_type, read_type
from ._types import (
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
from ._values import UnionValue, VariantValue
from ._wire import READ_STRING, read_selector, read_size, size_bytes

Encoder = Callable[[Any, bytearray, "Codec"], None]
Decoder = Callable[[bytes, int, "Codec"], tuple[Any, int]]
PartialDecoder = Callable[[bytes, int, "Codec", Any], tuple[Any, int]]


# recently decoded type descriptions by their bytes (no type-cache references), per
# (max_fields, byte order)
_RECENT: dict[tuple[int, bool], list[tuple[bytes, FieldDesc]]] = {}


class Codec:
    """Per-connection (per-direction) coding state: byte order, type caches, limits.

    ``big_endian`` is the byte order of what is being encoded or decoded right now; a
    connection sets it per message on receive.
    """

    __slots__ = (
        "big_endian",
        "depth",
        "max_depth",
        "max_elements",
        "max_fields",
        "recent_types",
        "recv_cache",
        "requests",
        "send_cache",
        "spill",
        "use_numpy",
    )

    def __init__(
        self,
        *,
        big_endian: bool = False,
        max_depth: int = 32,
        use_numpy: bool = True,
        send_cache: TypeSendCache | None = None,
        recv_cache: TypeRecvCache | None = None,
        max_fields: int = 20_000,
        max_elements: int = 1_000_000,
    ) -> None:
        if not 1 <= max_depth <= 200:
            raise LocalProtocolError("max_depth must be 1..200")
        self.big_endian = big_endian
        self.max_depth = max_depth
        self.use_numpy = use_numpy and HAVE_NUMPY
        self.send_cache = send_cache
        self.recv_cache = recv_cache
        self.depth = 0
        #: when a list: numeric arrays of SPILL_MIN bytes or more are not copied into the output
        #: but listed here as (offset in the output, buffer), holes to fill at write time (a
        #: vectored write sends an image straight from its numpy buffer)
        self.spill: list[tuple[int, Any]] | None = None
        #: pvRequests read on this connection by their bytes (a client sends the same one with
        #: every get and put): see ``_generate.read_request``
        self.requests: dict[bytes, tuple[Any, int]] = {}
        #: fields one received type description may declare (bounds decode and codegen work)
        self.max_fields = max_fields
        #: elements of one received array of strings/structures/unions/variants (each becomes
        #: a Python object, so this bounds the memory a message can expand into)
        self.max_elements = max_elements
        # shared by every codec with the same field limit: a new connection recognises the
        # descriptions earlier ones received (p4p's pvRequest, the "ca" credentials)
        # (per byte order: a Size of 254 or more reads differently in the other one)
        self.recent_types: tuple[list[tuple[bytes, FieldDesc]], ...] = (
            _RECENT.setdefault((max_fields, False), []),
            _RECENT.setdefault((max_fields, True), []),
        )

    # -- types -------------------------------------------------------------------------------
    def encode_type(self, t: FieldDesc | None) -> bytes:
        return encode_type(t, self.big_endian, self.send_cache)

    def decode_type(self, data: bytes, pos: int) -> tuple[FieldDesc | None, int]:
        """A type at ``pos``. Peers send the same descriptions again and again (p4p's
        pvRequest on every get), so the last few are recognised by their bytes: a type
        encoding is self-delimiting, so equal bytes at ``pos`` mean the same type."""
        room = self.max_depth - self.depth
        recent = self.recent_types[self.big_endian]
        for raw, known in recent:
            if data.startswith(raw, pos) and known.depth <= room:
                return known, pos + len(raw)
        t, end = read_type(data, pos, self.big_endian, self.recv_cache, room, 0, [self.max_fields])
        if t is not None and end - pos <= 4096:
            raw = bytes(data[pos:end])
            if b"\xfd" not in raw and b"\xfe" not in raw:  # no cache references: stable
                recent.insert(0, (raw, t))
                del recent[16:]
        return t, end

    # -- values ------------------------------------------------------------------------------
    def encode_value(self, t: FieldDesc, value: Any, out: bytearray) -> None:
        self._encode(t, encoder(t, self.big_endian), value, out)

    def _encode(self, t: FieldDesc, enc: Encoder, value: Any, out: bytearray) -> None:
        """``enc(value)``; when that fails, a structure value with missing fields is encoded
        again completed with their defaults (what ``enc`` wrote before failing is dropped)."""
        start = len(out)
        try:
            enc(value, out, self)
            return
        except _MISFIT as exc:
            error = exc
        if isinstance(t, Structure):
            del out[start:]
            try:
                enc(complete(t, value), out, self)
                return
            except _MISFIT as exc:
                error = exc
        raise LocalProtocolError(f"value does not fit type {t!r:.120}: {error!r}") from None

    def decode_value(self, t: FieldDesc, data: bytes, pos: int) -> tuple[Any, int]:
        return decoder(t, self.big_endian)(data, pos, self)

    def encode_partial(self, t: Structure, value: Any, mask: int, out: bytearray) -> None:
        """Bitset then the selected fields (bit 0 = everything)."""
        if mask & 1:
            out += b"\x01\x01"
            self.encode_value(t, value, out)
            return
        mask &= (1 << t.bit_count) - 1
        if mask == 0:
            out += b"\x00"
            return
        enc, wire_mask = _partial_encoder(t, self.big_endian, mask)
        out += encode_bitset(wire_mask, self.big_endian)
        self._encode(t, enc, value, out)

    def decode_partial(
        self, t: Structure, data: bytes, pos: int, base: Any = None
    ) -> tuple[int, Any, int]:
        """(mask, merged value, new pos): reads a bitset and the fields it selects, merging
        them into ``base`` (a full value of ``t``; defaults when None) without mutating it."""
        mask, pos = read_bitset(data, pos, self.big_endian)
        mask &= (1 << t.bit_count) - 1
        if mask & 1:
            value, pos = decoder(t, self.big_endian)(data, pos, self)
            return mask, value, pos
        if base is None:
            base = t.default()
        if mask == 0:
            return 0, base, pos
        value, pos = _partial_decoder(t, self.big_endian, mask)(data, pos, self, base)
        return mask, value, pos


def complete(t: Structure, value: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``value`` with missing fields set to their defaults (recursively)."""
    if not isinstance(value, Mapping):
        raise LocalProtocolError(f"structure {t.id!r} value must be a dict, not {value!r:.60}")
    out: dict[str, Any] = {}
    for name, ft in t.fields:
        if name in value:
            v = value[name]
            if isinstance(ft, Structure) and isinstance(v, Mapping):
                v = complete(ft, v)
            out[name] = v
        else:
            out[name] = ft.default()
    return out


# ------------------------------------------------------------------------------ caches
_CACHE_LIMIT = 2048
_DEC: dict[tuple[FieldDesc, bool], Decoder] = {}
_PDEC: dict[tuple[FieldDesc, bool, int], PartialDecoder] = {}
# structures (type, byte order) and partial masks (type, byte order, mask) seen once
_SEEN: dict[tuple[Any, ...], bool] = {}


def _keep(cache: dict[Any, Any], key: Any, value: Any) -> Any:
    """Store ``value``, forgetting the oldest entry beyond ``_CACHE_LIMIT``.

    The caches are shared by every connection, whatever thread it runs on, and take no lock:
    each step is one dict operation that cannot fail when another thread got there first."""
    cache[key] = value
    if len(cache) > _CACHE_LIMIT:
        # (StopIteration, RuntimeError: emptied, or changed, by another thread meanwhile)
        with contextlib.suppress(StopIteration, RuntimeError):
            cache.pop(next(iter(cache)), None)
    return value


def _first_sight(key: tuple[Any, ...]) -> bool:
    """True the first time ``key`` comes, False the second (and it is forgotten then)."""
    if _SEEN.pop(key, False):
        return False
    _keep(_SEEN, key, True)
    return True


def decoder(t: FieldDesc, be: bool) -> Decoder:
    """The decoder of a type. A structure seen for the first time is walked field by field;
    it is compiled when it comes back, so types that arrive once (inside variants of a
    hostile peer, say) cost a walk, not a compile."""
    f = _DEC.get((t, be))
    if f is None:
        if isinstance(t, Structure) and _first_sight((t, be)):
            return lambda data, pos, c: _walk_partial(t, None, 0, data, pos, c, {})
        f = _keep(_DEC, (t, be), _make_decoder(t, be))
    return f


def _late(t: FieldDesc, be: bool) -> Decoder:
    """The compiled decoder if there is one, else one that looks it up at each call (so a
    structure inside an array or union gets compiled once it has been seen twice)."""
    return _DEC.get((t, be)) or (lambda data, pos, c: decoder(t, be)(data, pos, c))


@functools.lru_cache(maxsize=_CACHE_LIMIT)
def _partial_encoder(t: Structure, be: bool, mask: int) -> tuple[Encoder, int]:
    """(encoder, the mask as sent: bits below a whole-structure bit dropped, as pvxs does)."""
    return struct_encoder(t, be, mask, encoder), normalize(t, mask)


def _partial_decoder(t: Structure, be: bool, mask: int) -> PartialDecoder:
    """Compiled decoder for a mask seen before; the first time a mask arrives it is decoded
    by walking the type, so a peer cycling through masks cannot make us compile for each
    message (compiling costs far more than one walk)."""
    key = (t, be, mask)
    f = _PDEC.get(key)
    if f is None:
        if _first_sight(key):
            return lambda data, pos, c, base: _walk_partial(t, mask, 0, data, pos, c, base)
        f = _keep(_PDEC, key, struct_decoder(t, be, mask, decoder))
    return f


def _walk_partial(
    t: Structure, mask: int | None, base_off: int, data: bytes, pos: int, c: Codec, base: Any
) -> tuple[Any, int]:
    """The fields of ``t`` that ``mask`` selects (None: all), merged into a copy of ``base``."""
    out = dict(base)
    for name, ft, off, how in selected(t, base_off, mask):
        if how == "all":
            out[name], pos = decoder(ft, c.big_endian)(data, pos, c)
        else:
            assert isinstance(ft, Structure)
            out[name], pos = _walk_partial(ft, mask, off, data, pos, c, base[name])
    return out, pos


# ------------------------------------------------------------------ encoders and decoders
@functools.lru_cache(maxsize=_CACHE_LIMIT)
def encoder(t: FieldDesc, be: bool) -> Encoder:
    """The encoder of a type, compiled (structures, scalars) or put together once."""
    if isinstance(t, (Structure, Scalar)):
        return struct_encoder(t, be, None, encoder)
    if isinstance(t, BoundedString):
        bound = t.bound

        def enc_bs(v: Any, out: bytearray, c: Codec) -> None:
            b = v.encode()
            if len(b) > bound:
                raise LocalProtocolError(f"string of {len(b)} bytes is over its bound {bound}")
            out += size_bytes(len(b), be)
            out += b

        return enc_bs
    if isinstance(t, ScalarArray):
        return array_encoder(t.kind, t.size, t.fixed, be)
    if isinstance(t, Union):
        return _union_encoder(t, be)
    if isinstance(t, Variant):
        return _enc_variant
    if isinstance(t, StructureArray):
        el, element_type = encoder(t.element, be), t.element

        def enc_element(item: Any, out: bytearray, c: Codec) -> None:
            if isinstance(item, dict):
                el(item, out, c)
            else:  # a typed value or another mapping: the general path converts it
                c.encode_value(element_type, item, out)

        return _nullable_array_encoder(enc_element, be)
    if isinstance(t, UnionArray):
        return _nullable_array_encoder(_union_encoder(t.element, be), be)
    if isinstance(t, VariantArray):
        return _nullable_array_encoder(_enc_variant, be)
    raise LocalProtocolError(f"no encoder for {t!r}")  # pragma: no cover


def _nullable_array_encoder(element: Encoder, be: bool) -> Encoder:
    """Structure, union and variant arrays: a Size, then per element a presence byte and, for
    an element that is not None, the element."""

    def enc(v: Any, out: bytearray, c: Codec) -> None:
        items = list(v)
        out += size_bytes(len(items), be)
        for item in items:
            if item is None:
                out.append(0)
            else:
                out.append(1)
                element(item, out, c)

    return enc


def _enc_variant(v: Any, out: bytearray, c: Codec) -> None:
    if v is None:
        out.append(0xFF)
        return
    v = VariantValue.of(v)
    out += c.encode_type(v.type)
    encoder(v.type, c.big_endian)(v.value, out, c)


def _union_encoder(t: Union, be: bool) -> Encoder:
    members = [encoder(ft, be) for _, ft in t.fields]
    index = {name: i for i, (name, _) in enumerate(t.fields)}

    def enc_union(v: Any, out: bytearray, c: Codec) -> None:
        if v is None:
            out.append(0xFF)
            return
        name, val = (v.field, v.value) if isinstance(v, UnionValue) else v
        i = index.get(name)
        if i is None:
            raise LocalProtocolError(f"union {t.id!r} has no member {name!r}; it has {list(index)}")
        out += size_bytes(i, be)
        members[i](val, out, c)

    return enc_union


def _make_decoder(t: FieldDesc, be: bool) -> Decoder:
    if isinstance(t, (Structure, Scalar)):
        return struct_decoder(t, be, None, decoder)
    if isinstance(t, BoundedString):
        rs = READ_STRING[be]

        def dec_bs(data: bytes, pos: int, c: Codec) -> tuple[Any, int]:
            s, p = rs(data, pos)
            if len(s.encode()) > t.bound:
                raise DecodeError(f"bounded string longer than its bound {t.bound}")
            return s, p

        return dec_bs
    if isinstance(t, ScalarArray):
        return array_decoder(t.kind, t.size, t.fixed, be)
    if isinstance(t, Union):
        return _union_decoder(t, be)
    if isinstance(t, Variant):
        return _dec_variant
    if isinstance(t, StructureArray):
        return _nullable_array_decoder("structure", _late(t.element, be), be)
    if isinstance(t, UnionArray):
        return _nullable_array_decoder("union", _union_decoder(t.element, be), be)
    if isinstance(t, VariantArray):
        return _nullable_array_decoder("variant", _dec_variant, be)
    raise LocalProtocolError(f"no decoder for {t!r}")  # pragma: no cover


def _nullable_array_decoder(what: str, element: Decoder, be: bool) -> Decoder:
    """Structure, union and variant arrays share one layout: a Size, then per element a
    presence byte and, when it is set, the element."""

    def dec(data: bytes, pos: int, c: Codec) -> tuple[Any, int]:
        n, pos = read_size(data, pos, be)
        if n > len(data) - pos:
            raise DecodeError(f"{what} array of {n} elements is longer than the message")
        if n > c.max_elements:
            raise LimitExceededError(f"{what} array of {n} elements (max_elements)")
        items: list[Any] = []
        for _ in range(n):
            pos += 1
            item = None
            if data[pos - 1]:  # present
                item, pos = element(data, pos, c)
            items.append(item)
        return items, pos

    return dec


def _dec_variant(data: bytes, pos: int, c: Codec) -> tuple[Any, int]:
    t, pos = c.decode_type(data, pos)
    if t is None:
        return None, pos
    saved = c.depth
    if saved + t.depth > c.max_depth:
        raise LimitExceededError(f"variant values nested more than {c.max_depth} deep")
    c.depth = saved + t.depth
    try:
        value, pos = decoder(t, c.big_endian)(data, pos, c)
    finally:
        c.depth = saved
    return VariantValue(t, value), pos


def _union_decoder(t: Union, be: bool) -> Decoder:
    members = [(name, _late(ft, be)) for name, ft in t.fields]
    count = len(members)

    def dec_union(data: bytes, pos: int, c: Codec) -> tuple[Any, int]:
        sel, pos = read_selector(data, pos, be)
        if sel < 0:
            return None, pos
        if sel >= count:
            raise DecodeError(f"union selector {sel} out of range (union has {count} members)")
        name, dec = members[sel]
        value, pos = dec(data, pos, c)
        return UnionValue(name, value), pos

    return dec_union


# ------------------------------------------------------------------ public helpers
def encode_value(
    t: FieldDesc, value: Any, *, big_endian: bool = False, codec: Codec | None = None
) -> bytes:
    """Full serialization of ``value`` as type ``t``."""
    c = codec or Codec(big_endian=big_endian)
    out = bytearray()
    c.encode_value(t, value, out)
    return bytes(out)


_MISFIT = (KeyError, TypeError, struct.error, ValueError, OverflowError, AttributeError)


def _whole(data: bytes, decode: Callable[[bytes], tuple[Any, int]]) -> Any:
    """What ``decode`` reads from ``data``, which it must use up; truncated or malformed
    input (an index or struct error deep in a decoder) becomes DecodeError."""
    try:
        result, pos = decode(data)
    except LOW_LEVEL_ERRORS as exc:
        raise DecodeError(f"truncated or malformed value: {exc}") from None
    if pos != len(data):
        raise DecodeError(f"{len(data) - pos} bytes left after the value")
    return result


def decode_value(
    t: FieldDesc,
    data: bytes,
    *,
    big_endian: bool = False,
    codec: Codec | None = None,
    use_numpy: bool = True,
) -> Any:
    """Decode one full value of type ``t`` that fills ``data`` exactly."""
    c = codec or Codec(big_endian=big_endian, use_numpy=use_numpy)
    return _whole(bytes(data), lambda d: c.decode_value(t, d, 0))


def decode_partial(
    t: Structure,
    data: bytes,
    *,
    big_endian: bool = False,
    base: Any = None,
    codec: Codec | None = None,
) -> tuple[Any, Any]:
    """(changed BitSet, merged value) from a bitset followed by the fields it selects."""
    c = codec or Codec(big_endian=big_endian)

    def read(d: bytes) -> tuple[tuple[BitSet, Any], int]:
        mask, value, pos = c.decode_partial(t, d, 0, base)
        return (BitSet.from_mask(mask), value), pos

    changed, value = _whole(bytes(data), read)
    return changed, value


def encode_partial(
    t: Structure, value: Any, changed: Any, *, big_endian: bool = False, codec: Codec | None = None
) -> bytes:
    """Bitset ``changed`` followed by the fields it selects."""
    c = codec or Codec(big_endian=big_endian)
    out = bytearray()
    c.encode_partial(t, value, changed.mask, out)
    return bytes(out)
