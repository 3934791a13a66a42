"""Values to bytes and back, for stores; and how big a value is, for the memory budget.

:class:`PickleCodec` uses pickle protocol 5 with out-of-band buffers: the bytes of contiguous
numpy arrays (and other ``PickleBuffer`` producers) are not copied into the pickle stream but laid
out after it, each aligned to 64 bytes. :meth:`PickleCodec.encode_buffers` hands those buffers
out as they are (views of the value's memory, between the frame head and padding), and stores
write the pieces straight to disk, so the engine never copies them; :meth:`PickleCodec.encode`
joins them into one block (one copy). Decoding hands the buffers to pickle as slices of the
input, so when a store returns a memory-mapped file the arrays are views of the mapping: nothing
is copied and pages are read on first touch.

Frames (first byte is the kind):

- ``0x00`` + pickle stream: small values without out-of-band buffers (the common case).
- ``0x01`` + zstd(pickle stream): the same, compressed, above ``compress_threshold``.
- ``0x02`` + raw bytes (padded to 64): a top-level ``bytes``/``bytearray`` above
  ``buffer_threshold``, so big blobs skip pickle entirely.
- ``0x03`` framed: ``<B flags, 2x pad, I nbuf, Q stream_len, Q raw_stream_len, nbuf*Q lengths>``,
  the (possibly compressed) pickle stream, then the buffers, each starting on a 64-byte boundary.
"""

from __future__ import annotations

import itertools
import mmap
import pickle
import struct
import sys
import threading
from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

from reckon.errors import CodecError

__all__ = ["Codec", "PickleCodec", "estimate_size"]


@runtime_checkable
class Codec(Protocol):
    def encode(self, value: object) -> bytes | memoryview: ...

    def decode(self, data: bytes | memoryview) -> object: ...

    def estimate_size(self, value: object) -> int: ...


_PLAIN = 0
_ZSTD = 1
_RAW = 2
_FRAMED = 3
_ALIGN = 64
_FRAME_HEAD = struct.Struct("<BB2xIQQ")  # kind, flags, nbuf, stream_len, raw_stream_len
_FLAG_ZSTD = 1


def _pad(n: int) -> int:
    return (-n) % _ALIGN


_ZEROS = bytes(_ALIGN)


_POPULATE = getattr(mmap, "MAP_POPULATE", 0)
_BIG = 1 << 20


def _allocate(size: int) -> memoryview:
    """A writable buffer for an encoded value. Big ones come from an anonymous mapping populated
    by the kernel in one go: filling a fresh ``bytearray`` page-faults once per page, which costs
    more than the copy itself (for 100 MB, roughly 3x)."""
    if size >= _BIG and _POPULATE:
        try:
            mapping = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | _POPULATE)
            return memoryview(mapping)
        except OSError:
            pass
    return memoryview(bytearray(size))


class PickleCodec:
    """The default codec: pickle 5, out-of-band buffers, optional zstd for large pickle streams.

    ``compress_threshold``: compress the pickle stream (never the out-of-band buffers, which stay
    mappable) when it is at least this many bytes; ``None`` turns compression off.
    ``buffer_threshold``: top-level ``bytes``/``bytearray`` at least this big skip pickle.
    """

    def __init__(
        self,
        *,
        compress_threshold: int | None = 1 << 16,
        compress_level: int = 3,
        buffer_threshold: int = 1 << 16,
    ) -> None:
        self.compress_threshold = compress_threshold
        self.compress_level = compress_level
        self.buffer_threshold = buffer_threshold
        # zstd (de)compressors must not be shared between threads: one of each per thread.
        self._local = threading.local()

    def __repr__(self) -> str:
        return (
            f"PickleCodec(compress_threshold={self.compress_threshold}, "
            f"compress_level={self.compress_level})"
        )

    # ------------------------------------------------------------------ encode
    def encode(self, value: object) -> bytes | memoryview:
        parts = self.encode_buffers(value)
        if len(parts) == 1:
            return parts[0]
        total = 0
        for part in parts:
            total += part.nbytes if isinstance(part, memoryview) else len(part)
        out = _allocate(total)
        pos = 0
        for part in parts:
            n = part.nbytes if isinstance(part, memoryview) else len(part)
            out[pos : pos + n] = part
            pos += n
        return out

    def encode_buffers(self, value: object) -> list[bytes | memoryview]:
        """The encoding of ``value`` as consecutive pieces (their concatenation is what
        :meth:`encode` returns), without copying out-of-band buffers: the pieces after the
        first are views of the value's own memory (numpy arrays, large bytes) and padding.
        Stores accept such a list (``Store.put``) and write it in one pass, so a large array
        reaches the disk without ever being copied in memory. The views are only valid while
        the value is unchanged."""
        t = type(value)
        if (t is bytes or t is bytearray) and len(value) >= self.buffer_threshold:  # type: ignore[arg-type]
            return self._encode_raw(value, t is bytearray)  # type: ignore[arg-type]
        buffers: list[pickle.PickleBuffer] = []
        try:
            stream = pickle.dumps(value, protocol=5, buffer_callback=buffers.append)
        except Exception as exc:
            raise CodecError(
                f"cannot pickle a value of type {t.__module__}.{t.__qualname__}: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        threshold = self.compress_threshold
        compress = threshold is not None and len(stream) >= threshold
        if not buffers:
            if compress:
                return [bytes((_ZSTD,)) + self._compress(stream)]
            return [bytes((_PLAIN,)) + stream]
        raw_len = len(stream)
        if compress:
            stream = self._compress(stream)
        views: list[memoryview] = []
        for pb in buffers:
            try:
                views.append(pb.raw())
            except BufferError as exc:  # a non-contiguous buffer: pickle it in-band instead
                raise CodecError(f"cannot encode a non-contiguous buffer: {exc}") from exc
        nbuf = len(views)
        head = _FRAME_HEAD.pack(_FRAMED, _FLAG_ZSTD if compress else 0, nbuf, len(stream), raw_len)
        head += struct.pack(f"<{nbuf}Q", *(v.nbytes for v in views))
        total = len(head) + len(stream)
        parts: list[bytes | memoryview] = [b"".join((head, stream))]
        for view in views:
            pad = _pad(total)
            if pad:
                parts.append(_ZEROS[:pad])
                total += pad
            if view.nbytes:
                parts.append(view if view.format == "B" else view.cast("B"))
            total += view.nbytes
        return parts

    def _encode_raw(self, value: bytes | bytearray, is_bytearray: bool) -> list[bytes | memoryview]:
        head = bytearray(_ALIGN)
        head[0] = _RAW
        head[1] = 1 if is_bytearray else 0
        return [bytes(head), memoryview(value)]

    def _compress(self, data: bytes) -> bytes:
        zc = getattr(self._local, "zc", None)
        if zc is None:
            import zstandard

            zc = self._local.zc = zstandard.ZstdCompressor(level=self.compress_level)
        out: bytes = zc.compress(data)
        return out

    def _decompress(self, data: memoryview, size: int) -> bytes:
        zd = getattr(self._local, "zd", None)
        if zd is None:
            import zstandard

            zd = self._local.zd = zstandard.ZstdDecompressor()
        out: bytes = zd.decompress(data, max_output_size=size)
        return out

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        del state["_local"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._local = threading.local()

    # ------------------------------------------------------------------ decode
    def decode(self, data: bytes | memoryview) -> object:
        if type(data) is bytes and data and data[0] == _PLAIN:
            # The common store hit: a small inline value, as bytes.
            try:
                return pickle.loads(memoryview(data)[1:])
            except Exception as exc:
                raise CodecError(
                    f"cannot decode a stored value: {type(exc).__name__}: {exc}"
                ) from exc
        view = data if isinstance(data, memoryview) else memoryview(data)
        if view.ndim != 1 or view.itemsize != 1:
            view = view.cast("B")
        if not view.nbytes:
            raise CodecError("cannot decode an empty buffer (the store entry is empty)")
        kind = view[0]
        try:
            if kind == _PLAIN:
                return pickle.loads(view[1:])
            if kind == _ZSTD:
                return pickle.loads(self._decompress(view[1:], 0))
            if kind == _RAW:
                payload = view[_ALIGN:]
                return bytearray(payload) if view[1] else bytes(payload)
            if kind == _FRAMED:
                return self._decode_framed(view)
        except CodecError:
            raise
        except Exception as exc:
            raise CodecError(f"cannot decode a stored value: {type(exc).__name__}: {exc}") from exc
        raise CodecError(f"cannot decode a stored value: unknown frame kind {kind}")

    def decode_sized(self, data: bytes | memoryview) -> tuple[object, int]:
        """The decoded value and its size for the memory tier, in one call (the store-hit path).

        A small plain frame is sized by the bytes just read plus its top object's own size:
        free, where walking the value with :func:`estimate_size` would cost more than the decode
        itself. Other frames (compressed, raw, out-of-band buffers) are sized by the estimate,
        which is exact for their buffers and negligible beside their decode."""
        if type(data) is bytes and data and data[0] == _PLAIN:
            try:
                value = pickle.loads(memoryview(data)[1:])
            except Exception as exc:
                raise CodecError(
                    f"cannot decode a stored value: {type(exc).__name__}: {exc}"
                ) from exc
            try:
                return value, len(data) + _getsizeof(value)
            except TypeError:  # a __sizeof__ that does not answer
                return value, len(data)
        value = self.decode(data)
        return value, estimate_size(value)

    def _decode_framed(self, view: memoryview) -> object:
        _, flags, nbuf, stream_len, raw_len = _FRAME_HEAD.unpack_from(view, 0)
        lengths = struct.unpack_from(f"<{nbuf}Q", view, _FRAME_HEAD.size)
        pos = _FRAME_HEAD.size + 8 * nbuf
        stream: bytes | memoryview = view[pos : pos + stream_len]
        if flags & _FLAG_ZSTD:
            stream = self._decompress(stream, raw_len)  # type: ignore[arg-type]
        pos += stream_len
        buffers: list[memoryview] = []
        for n in lengths:
            pos += _pad(pos)
            if pos + n > view.nbytes:
                raise CodecError("cannot decode a stored value: it is truncated")
            buffers.append(view[pos : pos + n])
            pos += n
        return pickle.loads(stream, buffers=buffers)

    # ------------------------------------------------------------------ sizes
    # The module function itself (assigned after it is defined, below): no method frame on
    # every computation and store hit.
    estimate_size: Callable[[object], int]


_ATOMIC = frozenset({int, float, bool, complex, type(None)})
_TEXT = frozenset({str, bytes, bytearray})
_SEQUENCES = (list, tuple, set, frozenset)
_PLAIN_CONTAINERS = frozenset({dict, list, tuple, set, frozenset})
_SAMPLE = 64
_getsizeof = sys.getsizeof


def estimate_size(value: object, _depth: int = 0) -> int:
    """A cheap estimate of the bytes ``value`` holds: exact for bytes, str and arrays, sampled for
    large containers (at most 64 items per level, three levels deep)."""
    t = type(value)
    if t in _ATOMIC:
        return 32
    if t in _TEXT:
        return _getsizeof(value)
    if t in _PLAIN_CONTAINERS:
        # No ``nbytes`` to look for (a failed getattr raises and catches an AttributeError,
        # which costs more than the rest of a small dict's estimate).
        base = _getsizeof(value)
    else:
        nbytes = getattr(value, "nbytes", None)
        if type(nbytes) is int and not isinstance(value, type):
            return nbytes + 128  # numpy arrays, memoryviews, ... (buffer plus object header)
        try:
            base = _getsizeof(value)
        except TypeError:
            base = 64
    if _depth >= 3:
        return base
    depth = _depth + 1
    total = 0
    if isinstance(value, dict):
        n = len(value)
        if not n:
            return base
        if n <= _SAMPLE:
            seen = n  # every item is counted below: the scaling is 1
            items: Any = value.items()
        else:
            seen = _SAMPLE
            items = itertools.islice(value.items(), _SAMPLE)
        # The atomic and text cases inlined (the same figures as the recursive call): small
        # dicts of str keys are what most store hits decode.
        for k, v in items:
            t = type(k)
            if t in _ATOMIC:
                total += 32
            elif t in _TEXT:
                total += _getsizeof(k)
            else:
                total += estimate_size(k, depth)
            t = type(v)
            if t in _ATOMIC:
                total += 32
            elif t in _TEXT:
                total += _getsizeof(v)
            else:
                total += estimate_size(v, depth)
        return base + total * n // seen
    if isinstance(value, _SEQUENCES):
        n = len(value)
        if not n:
            return base
        if n <= _SAMPLE:
            seen = n
            elements: Any = value
        else:
            seen = _SAMPLE
            elements = itertools.islice(value, _SAMPLE)
        for v in elements:
            t = type(v)
            if t in _ATOMIC:
                total += 32
            elif t in _TEXT:
                total += _getsizeof(v)
            else:
                total += estimate_size(v, depth)
        return base + total * n // seen
    attrs = getattr(value, "__dict__", None)
    if isinstance(attrs, dict):
        return base + estimate_size(attrs, depth)
    return base


PickleCodec.estimate_size = staticmethod(estimate_size)
