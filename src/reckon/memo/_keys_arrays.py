"""numpy and pandas values for ``reckon.memo.hashing``, imported only when such a value is hashed.

An array hashes as (dtype, shape, bytes in C order): memory order and strides do not matter, shape
does (``zeros((2, 3))`` and ``zeros((3, 2))`` differ). A C-contiguous array's buffer goes to
xxh3 without a copy; other layouts are copied to C order first. Data is hashed little-endian, so
``'>f8'`` and ``'<f8'`` arrays with equal values hash equal. Float arrays hash their bits: unlike a
Python float, NaNs with different payloads are different keys (a scan to canonicalise them would
cost more than the hash itself).
"""

from __future__ import annotations

import sys
from typing import Any

from reckon.memo import _keys_stream as _h
from reckon.memo._keys_state import h_object
from reckon.memo._keys_stream import (
    T_NDARRAY,
    T_NDARRAY_OBJECT,
    T_NDARRAY_STRUCT,
    T_NPSCALAR,
    T_PANDAS,
    TAG_LEN,
    Handler,
    Hasher,
    Unhashable,
    put_typename,
)

T_STR_ARRAY = 0x60

# Chunk size (bytes) when a non-contiguous array is copied to C order piece by piece.
_CHUNK = 1 << 24


def _np() -> Any:
    return sys.modules["numpy"]


def numpy_handler(tp: type) -> Handler | None:
    np = _np()
    if issubclass(tp, np.ndarray):
        if tp is np.ndarray:
            return _h_ndarray
        ma = getattr(np, "ma", None)
        if ma is not None and issubclass(tp, ma.MaskedArray):
            return _h_masked
        return _ndarray_subclass(tp)
    if issubclass(tp, np.generic):
        return _h_npscalar
    if issubclass(tp, np.dtype):
        return _h_dtype
    return None


def _ndarray_subclass(tp: type) -> Handler:
    def handler(h: Hasher, obj: Any) -> None:
        put_typename(h, tp)
        _h_ndarray(h, obj.view(_np().ndarray))

    return handler


def _h_masked(h: Hasher, obj: Any) -> None:
    np = _np()
    put_typename(h, type(obj))
    mask = np.ma.getmaskarray(obj)
    # Masked slots hold garbage: write the array's fill value there instead.
    data = np.asarray(obj.filled() if mask.any() else obj.data)
    _h_ndarray(h, data)
    _h_ndarray(h, mask)


def _h_dtype(h: Hasher, obj: Any) -> None:
    h._buf.append(T_NDARRAY_STRUCT)
    _h.h_str(h, _dtype_text(obj))


def _dtype_text(dt: Any) -> str:
    if dt.fields is not None:
        return repr(dt.descr)
    return str(dt.newbyteorder("<").str if dt.byteorder == ">" else dt.str)


def _h_npscalar(h: Hasher, obj: Any) -> None:
    h._buf.append(T_NPSCALAR)
    _h_ndarray(h, _np().asarray(obj))


def _put_shape(h: Hasher, shape: tuple[int, ...]) -> None:
    h._buf += TAG_LEN(len(shape), len(shape))
    for dim in shape:
        h._buf += TAG_LEN(0, dim)


def _h_ndarray(h: Hasher, a: Any) -> None:
    np = _np()
    dt = a.dtype
    if dt.fields is not None:
        # Field by field: padding bytes between fields are not part of the value.
        h._buf.append(T_NDARRAY_STRUCT)
        _h.h_str(h, repr(dt.descr))
        _put_shape(h, a.shape)
        name = ""
        try:
            for name in dt.names:
                _h_ndarray(h, a[name])
        except Unhashable as exc:
            exc.parts.append(f"[{name!r}]")
            raise
        return
    if dt.hasobject:
        h._buf.append(T_NDARRAY_OBJECT)
        _put_shape(h, a.shape)
        _feed_objects(h, a.reshape(-1).tolist() if a.flags.c_contiguous else a.ravel().tolist())
        return
    if dt.byteorder == ">" or (dt.byteorder == "=" and sys.byteorder == "big"):
        dt = dt.newbyteorder("<")
        a = a.astype(dt)
    h._buf.append(T_NDARRAY)
    _h.h_str(h, dt.str)
    _put_shape(h, a.shape)
    nbytes = a.nbytes
    h._buf += TAG_LEN(0, nbytes)
    if _has_padding(dt):
        _feed_longdouble(h, a)
        return
    if a.flags.c_contiguous:
        h._put_buffer(memoryview(a.reshape(-1).view(np.uint8)), nbytes)
        return
    if a.ndim >= 2 and nbytes > _CHUNK:
        for sub in a:  # C order is the concatenation of the C orders of a[0], a[1], ...
            chunk = np.ascontiguousarray(sub)
            h._put_buffer(memoryview(chunk.reshape(-1).view(np.uint8)), chunk.nbytes)
        return
    chunk = np.ascontiguousarray(a)
    h._put_buffer(memoryview(chunk.reshape(-1).view(np.uint8)), nbytes)


def _has_padding(dt: Any) -> bool:
    """x87 extended precision stores 10 significant bytes in 12 or 16: the rest is garbage."""
    if dt.kind not in "fc":
        return False
    np = _np()
    return bool(dt.itemsize > 8 and np.finfo(dt).nmant == 63)


def _feed_longdouble(h: Hasher, a: Any) -> None:
    np = _np()
    raw = np.ascontiguousarray(a).reshape(-1).view(np.uint8).reshape(-1, a.dtype.itemsize)
    if a.dtype.kind == "f":
        keep = raw[:, :10]
    else:
        half = a.dtype.itemsize // 2
        keep = np.concatenate([raw[:, :10], raw[:, half : half + 10]], axis=1)
    data = np.ascontiguousarray(keep).reshape(-1)
    h._put_buffer(memoryview(data), data.nbytes)


def _feed_objects(h: Hasher, items: list[Any]) -> None:
    """Elements of an object array; all-str arrays take a vectorised path."""
    if items and all(type(x) is str for x in items):
        np = _np()
        lengths = np.fromiter(map(len, items), dtype="<i8", count=len(items))
        data = "".join(items).encode("utf-8", "surrogatepass")
        h._buf += TAG_LEN(T_STR_ARRAY, len(items))
        h._put_buffer(memoryview(lengths.view(np.uint8)), lengths.nbytes)
        h._buf += TAG_LEN(0, len(data))
        h._put_buffer(data, len(data))
        return
    i = 0
    try:
        for i, x in enumerate(items):  # noqa: B007 - i is read when an element fails
            h._feed(x)
    except Unhashable as exc:
        exc.parts.append(f"[{i}]")
        raise


# -- pandas ------------------------------------------------------------------------------------


def _pd() -> Any:
    return sys.modules["pandas"]


def pandas_handler(tp: type) -> Handler | None:
    pd = _pd()
    if issubclass(tp, pd.DataFrame):
        return _h_dataframe
    if issubclass(tp, pd.Series):
        return _h_series
    if issubclass(tp, pd.Index):
        return _h_index
    if issubclass(tp, pd.api.extensions.ExtensionArray):
        return _h_extension_array
    # Timestamp, Timedelta, NaT, NA, Period, ...: their pickled state is exact (a Timestamp
    # subclasses datetime but carries nanoseconds the datetime handler would drop).
    return h_object


def _h_dataframe(h: Hasher, df: Any) -> None:
    h._buf.append(T_PANDAS)
    h._buf.append(ord("D"))
    put_typename(h, type(df))
    _h_index(h, df.columns)
    _h_index(h, df.index)
    h._buf += TAG_LEN(0, df.shape[1])
    i = 0
    try:
        for i in range(df.shape[1]):
            _feed_values(h, df.iloc[:, i].array)
    except Unhashable as exc:
        exc.parts.append(f".iloc[:, {i}]")
        raise


def _h_series(h: Hasher, s: Any) -> None:
    h._buf.append(T_PANDAS)
    h._buf.append(ord("S"))
    put_typename(h, type(s))
    try:
        h._feed(s.name)
    except Unhashable as exc:
        exc.parts.append(".name")
        raise
    _h_index(h, s.index)
    _feed_values(h, s.array)


def _h_index(h: Hasher, idx: Any) -> None:
    pd = _pd()
    h._buf.append(T_PANDAS)
    h._buf.append(ord("I"))
    put_typename(h, type(idx))
    try:
        h._feed(tuple(idx.names))
    except Unhashable as exc:
        exc.parts.append(".names")
        raise
    if isinstance(idx, pd.MultiIndex):
        h._buf += TAG_LEN(0, idx.nlevels)
        for level in idx.levels:
            _h_index(h, level)
        for codes in idx.codes:
            _h_ndarray(h, _np().asarray(codes))
    elif isinstance(idx, pd.RangeIndex):
        h._feed((idx.start, idx.stop, idx.step))
    else:
        _feed_values(h, idx.array)


def _h_extension_array(h: Hasher, values: Any) -> None:
    h._buf.append(T_PANDAS)
    h._buf.append(ord("E"))
    put_typename(h, type(values))
    _feed_values(h, values)


def _feed_values(h: Hasher, values: Any) -> None:
    """A column's values: numpy data by buffer, extension arrays by their parts."""
    np = _np()
    pd = _pd()
    _h.h_str(h, str(values.dtype))
    if isinstance(values, np.ndarray):
        _h_ndarray(h, values)
        return
    if isinstance(values.dtype, pd.CategoricalDtype):
        _h_index(h, values.categories)
        h._feed(bool(values.ordered))
        _h_ndarray(h, np.asarray(values.codes))
        return
    inner = getattr(values, "_ndarray", None)
    if isinstance(inner, np.ndarray):  # numpy-backed: plain, datetime, timedelta, string
        _h_ndarray(h, inner)
        return
    data, mask = getattr(values, "_data", None), getattr(values, "_mask", None)
    if isinstance(data, np.ndarray) and isinstance(mask, np.ndarray):  # nullable Int64, ...
        if mask.any():
            data = np.where(mask, np.zeros(1, dtype=data.dtype), data)  # masked slots: garbage
        _h_ndarray(h, data)
        _h_ndarray(h, mask)
        return
    _h_ndarray(h, np.asarray(values, dtype=object))
