"""BitSet: which fields of a structure a message carries (get/put/monitor deltas).

Bit numbers are the structure's offsets (see :class:`Structure.offset_of`). On the wire a bitset
is a Size byte count followed by whole 64-bit words in the message byte order, then the last
partial word's bytes least significant first (pvxs bitmask.cpp); trailing zero bytes are not
sent.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from ._errors import DecodeError
from ._wire import read_size, size_bytes


@dataclass(frozen=True, slots=True, init=False, repr=False)
class BitSet:
    """An immutable set of small non-negative integers, stored as one Python int."""

    mask: int

    def __init__(self, bits: Iterable[int] = ()) -> None:
        m = 0
        for b in bits:
            if not isinstance(b, int) or b < 0:
                raise ValueError(f"bit numbers are non-negative ints, not {b!r}")
            m |= 1 << b
        object.__setattr__(self, "mask", m)

    @classmethod
    def from_mask(cls, mask: int) -> BitSet:
        bs = cls.__new__(cls)
        object.__setattr__(bs, "mask", mask)
        return bs

    def __contains__(self, bit: object) -> bool:
        return isinstance(bit, int) and bit >= 0 and (self.mask >> bit) & 1 == 1

    def __iter__(self) -> Iterator[int]:
        m = self.mask
        while m:
            low = m & -m
            yield low.bit_length() - 1
            m ^= low

    def __len__(self) -> int:
        return self.mask.bit_count()

    def __bool__(self) -> bool:
        return self.mask != 0

    def __or__(self, other: BitSet) -> BitSet:
        return BitSet.from_mask(self.mask | other.mask)

    def __and__(self, other: BitSet) -> BitSet:
        return BitSet.from_mask(self.mask & other.mask)

    def __repr__(self) -> str:
        return f"BitSet({list(self)})"

    def encode(self, big_endian: bool = False) -> bytes:
        """Wire form (Size byte count, words, tail bytes)."""
        return encode_bitset(self.mask, big_endian)


def encode_bitset(mask: int, big_endian: bool) -> bytes:
    nbytes = (mask.bit_length() + 7) // 8
    if nbytes < 8:
        # no whole word (or none at all): bytes least significant first, whatever the byte order
        return bytes((nbytes,)) + mask.to_bytes(nbytes, "little")
    nwords, extra = divmod(nbytes, 8)
    out = bytearray(size_bytes(nbytes, big_endian))
    for i in range(nwords):
        word = (mask >> (64 * i)) & 0xFFFFFFFFFFFFFFFF
        out += word.to_bytes(8, "big" if big_endian else "little")
    if extra:
        out += (mask >> (64 * nwords)).to_bytes(extra, "little")
    return bytes(out)


def read_bitset(data: bytes, pos: int, big_endian: bool) -> tuple[int, int]:
    n = data[pos]
    if n < 8:  # the usual case: no whole 64-bit word, bytes least significant first
        end = pos + 1 + n
        if end > len(data):
            raise DecodeError(f"bitset of {n} bytes runs past the end of the message")
        return int.from_bytes(data[pos + 1 : end], "little"), end
    nbytes, pos = read_size(data, pos, big_endian)
    end = pos + nbytes
    if end > len(data):
        raise DecodeError(f"bitset of {nbytes} bytes runs past the end of the message")
    nwords, extra = divmod(nbytes, 8)
    mask = 0
    for i in range(nwords):
        chunk = data[pos + 8 * i : pos + 8 * i + 8]
        mask |= int.from_bytes(chunk, "big" if big_endian else "little") << (64 * i)
    if extra:
        mask |= int.from_bytes(data[pos + 8 * nwords : end], "little") << (64 * nwords)
    return mask, end
