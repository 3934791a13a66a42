"""Primitive wire encodings shared by every codec: Size, strings, fixed-width integers,
the scalar kinds.

Decoders work on ``(data, pos)`` and return ``(value, new_pos)``; they may raise IndexError or
struct.error on truncated input, which the message boundary turns into DecodeError.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

from ._errors import DecodeError, LocalProtocolError

U16 = {False: struct.Struct("<H"), True: struct.Struct(">H")}
U32 = {False: struct.Struct("<I"), True: struct.Struct(">I")}
I64 = {False: struct.Struct("<q"), True: struct.Struct(">q")}

#: scalar kind letter (as p4p spells them) -> (wire type code, struct format character, the
#: name pvData uses, the value a field holds before anything is assigned); in the order of the
#: codes, which NTNDArray's union members follow
KINDS: dict[str, tuple[int, str, str, bool | int | float | str]] = {
    "?": (0x00, "?", "boolean", False),
    "b": (0x20, "b", "byte", 0),
    "h": (0x21, "h", "short", 0),
    "i": (0x22, "i", "int", 0),
    "l": (0x23, "q", "long", 0),
    "B": (0x24, "B", "ubyte", 0),
    "H": (0x25, "H", "ushort", 0),
    "I": (0x26, "I", "uint", 0),
    "L": (0x27, "Q", "ulong", 0),
    "f": (0x42, "f", "float", 0.0),
    "d": (0x43, "d", "double", 0.0),
    "s": (0x60, "", "string", ""),
}

#: single-byte Size encodings 0..253
SMALL = [bytes((i,)) for i in range(254)]
_BIG_SIZE = 0x7FFFFFFF


def size_bytes(n: int, big_endian: bool) -> bytes:
    """Size: one byte below 254, else 254 + uint32, else 254 + 0x7fffffff + int64."""
    if n < 254:
        if n < 0:
            raise LocalProtocolError(f"a size cannot be negative ({n})")
        return SMALL[n]
    if n < _BIG_SIZE:
        return b"\xfe" + U32[big_endian].pack(n)
    if n >= 1 << 63:
        raise LocalProtocolError(f"size {n} is over 2**63-1")
    return b"\xfe" + U32[big_endian].pack(_BIG_SIZE) + I64[big_endian].pack(n)


def read_size(data: bytes, pos: int, big_endian: bool) -> tuple[int, int]:
    b = data[pos]
    if b < 254:
        return b, pos + 1
    if b == 254:
        n = U32[big_endian].unpack_from(data, pos + 1)[0]
        if n == _BIG_SIZE:
            n = I64[big_endian].unpack_from(data, pos + 5)[0]
            if n < 0:
                raise DecodeError(f"negative 64-bit size {n}")
            return n, pos + 13
        return n, pos + 5
    raise DecodeError("null size (0xff) where a count is required")


def read_selector(data: bytes, pos: int, big_endian: bool) -> tuple[int, int]:
    """Like read_size, but 0xff is -1 (the empty union)."""
    if data[pos] == 255:
        return -1, pos + 1
    return read_size(data, pos, big_endian)


def string_bytes(s: str, big_endian: bool) -> bytes:
    b = s.encode()
    return size_bytes(len(b), big_endian) + b


def _make_read_string(big_endian: bool) -> Callable[[bytes, int], tuple[str, int]]:
    def rs(data: bytes, pos: int) -> tuple[str, int]:
        n = data[pos]
        if n < 254:
            pos += 1
        elif n == 255:  # pvAccessJava's null string
            return "", pos + 1
        else:
            n, pos = read_size(data, pos, big_endian)
        end = pos + n
        if end > len(data):
            raise DecodeError(f"string of {n} bytes runs past the end of the message")
        return data[pos:end].decode("utf-8", "replace"), end

    return rs


#: the string reader of each byte order (the code generators bind one, not passing the order)
READ_STRING = {False: _make_read_string(False), True: _make_read_string(True)}
