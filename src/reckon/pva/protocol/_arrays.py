"""Scalar arrays: numpy when it is installed (zero-copy views of the received bytes), lists
otherwise. Every decoder checks the element count against the bytes left before allocating."""

from __future__ import annotations

import functools
import struct
from collections.abc import Callable
from typing import Any

from ._errors import DecodeError, LimitExceededError, LocalProtocolError
from ._wire import KINDS, READ_STRING, SMALL, read_size, size_bytes, string_bytes

try:  # numpy is optional: the protocol library works with lists alone
    import numpy as np

    HAVE_NUMPY = True
except ImportError:  # pragma: no cover - exercised only without numpy
    np = None  # type: ignore[assignment]
    HAVE_NUMPY = False

#: kind -> numpy dtype letter (a struct one) of the wire's item size
_ARRAY_CODES: dict[str, str] = {k: r[1].replace("?", "B") for k, r in KINDS.items() if r[1]}
#: kind -> item size in bytes (strings have none)
ITEM_SIZE: dict[str, int] = {k: struct.calcsize("<" + ch) for k, ch in _ARRAY_CODES.items()}


@functools.cache
def dtype_for(kind: str, big_endian: bool) -> Any:
    """The numpy dtype of wire elements of ``kind`` in the given byte order."""
    assert np is not None
    return np.dtype((">" if big_endian else "<") + _ARRAY_CODES[kind])


def native_dtype(kind: str) -> Any:
    """The numpy dtype users see for ``kind`` (bool for booleans)."""
    assert np is not None
    return np.dtype(bool if kind == "?" else _ARRAY_CODES[kind])


def kind_of_dtype(dt: Any) -> str | None:
    """The kind of a numpy array's elements, whatever their byte order (None: no kind fits)."""
    for kind in ITEM_SIZE:
        if native_dtype(kind).kind == dt.kind and ITEM_SIZE[kind] == dt.itemsize:
            return kind
    return None


def empty_array(kind: str) -> object:
    if kind != "s" and np is not None:
        return np.zeros(0, dtype=native_dtype(kind))
    return []


def decode_numeric(
    kind: str, data: bytes, pos: int, count: int, big_endian: bool, use_numpy: bool
) -> tuple[object, int]:
    """Decode ``count`` elements at ``pos``; the caller has checked the count is not negative."""
    size = ITEM_SIZE[kind]
    nbytes = count * size
    end = pos + nbytes
    if end > len(data):
        raise DecodeError(
            f"array of {count} {kind!r} elements needs {nbytes} bytes, only {len(data) - pos} left"
        )
    if use_numpy and np is not None:
        if kind == "?":
            arr = np.frombuffer(data, dtype=np.uint8, count=count, offset=pos) != 0
        else:
            arr = np.frombuffer(data, dtype=dtype_for(kind, big_endian), count=count, offset=pos)
        return arr, end
    fmt = f"{'>' if big_endian else '<'}{count}{KINDS[kind][1]}"
    return list(struct.unpack_from(fmt, data, pos)), end


def encode_numeric(kind: str, value: object, big_endian: bool) -> tuple[int, bytes | memoryview]:
    """(element count, element bytes) of a numeric array value (numpy array or sequence).
    A contiguous array already in the wire dtype is returned as a view (no copy)."""
    if HAVE_NUMPY:  # (not "np is not None": mypy would then skip the code below)
        assert np is not None
        dt = dtype_for(kind, big_endian)
        if kind != "?" and isinstance(value, np.ndarray) and value.dtype == dt and value.ndim == 1:
            arr = value  # the usual case, and the quickest
        else:
            try:
                if kind == "?":
                    value = np.asarray(value, dtype=bool)
                elif not isinstance(value, np.ndarray):
                    # straight to the wire dtype: large uint64 values must not detour via float
                    value = np.array(value, dtype=dt)
                # astype casts unsafely: float -> integer truncates like C (numpy would refuse)
                arr = value.reshape(-1).astype(dt, copy=False)
            except (TypeError, ValueError, OverflowError) as exc:
                raise LocalProtocolError(
                    f"cannot encode {value!r:.80} as a {kind!r} array: {exc}"
                ) from None
        if arr.flags.c_contiguous:
            return int(arr.size), arr.data.cast("B")
        return int(arr.size), arr.tobytes()
    try:
        seq = list(value)  # type: ignore[call-overload]
        fmt = f"{'>' if big_endian else '<'}{len(seq)}{KINDS[kind][1]}"
        return len(seq), struct.pack(fmt, *seq)
    except (TypeError, ValueError, OverflowError, struct.error) as exc:
        raise LocalProtocolError(
            f"cannot encode {value!r:.80} as a {kind!r} array: {exc}"
        ) from None


#: arrays at least this big are sent from their own buffer when the codec spills (see spill)
SPILL_MIN = 64 * 1024


def array_encoder(
    kind: str, size: int | None, fixed: bool, be: bool
) -> Callable[[Any, bytearray, Any], None]:
    """The encoder of a scalar array type (numeric from numpy buffers, or strings)."""

    def count(n: int, out: bytearray) -> None:
        """Check ``n`` elements against the size; write the count (a fixed array has none)."""
        if size is not None:
            if fixed and n != size:
                raise LocalProtocolError(f"fixed array needs exactly {size} elements, not {n}")
            if n > size:
                raise LocalProtocolError(f"bounded array holds at most {size} elements, not {n}")
        if not fixed:
            out += SMALL[n] if n < 254 else size_bytes(n, be)

    if kind == "s":

        def enc_as(v: Any, out: bytearray, c: Any) -> None:
            if isinstance(v, str):
                raise LocalProtocolError("a string array value is a list of str, not a str")
            items = list(v)
            count(len(items), out)
            for s in items:
                out += string_bytes(s, be)

        return enc_as

    def enc_arr(v: Any, out: bytearray, c: Any) -> None:
        n, b = encode_numeric(kind, v, be)
        count(n, out)
        spill = c.spill
        if spill is not None and len(b) >= SPILL_MIN:
            spill.append((len(out), b))
        else:
            out += b

    return enc_arr


def array_decoder(
    kind: str, size: int | None, fixed: bool, be: bool
) -> Callable[[bytes, int, Any], tuple[Any, int]]:
    """The decoder of a scalar array type; counts are checked before allocating."""

    def count(data: bytes, pos: int) -> tuple[int, int]:
        if fixed:
            assert size is not None
            return size, pos
        n = data[pos]
        n, pos = (n, pos + 1) if n < 254 else read_size(data, pos, be)
        if size is not None and n > size:
            raise DecodeError(f"bounded array of {n} elements is over its bound {size}")
        return n, pos

    if kind == "s":
        rs = READ_STRING[be]

        def dec_as(data: bytes, pos: int, c: Any) -> tuple[Any, int]:
            n, pos = count(data, pos)
            if n > len(data) - pos:
                raise DecodeError(f"string array of {n} elements is longer than the message")
            if n > c.max_elements:
                raise LimitExceededError(f"string array of {n} elements (max_elements)")
            items: list[str] = []
            for _ in range(n):
                s, pos = rs(data, pos)
                items.append(s)
            return items, pos

        return dec_as

    def dec_arr(data: bytes, pos: int, c: Any) -> tuple[Any, int]:
        n, pos = count(data, pos)
        return decode_numeric(kind, data, pos, n, be, c.use_numpy)

    return dec_arr


__all__ = [
    "HAVE_NUMPY",
    "ITEM_SIZE",
    "SPILL_MIN",
    "array_decoder",
    "array_encoder",
    "decode_numeric",
    "dtype_for",
    "empty_array",
    "encode_numeric",
    "kind_of_dtype",
    "native_dtype",
    "np",
]
