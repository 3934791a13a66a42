"""Handlers for the standard library's value types: paths, datetimes, numbers, collections, io.

Kept apart from ``hashing`` (which holds the stream, the containers and the dispatch table) so each
module stays about one thing; ``hashing`` imports this module and merges ``HANDLERS`` into its
exact-type table.
"""

from __future__ import annotations

import array
import datetime as _dt
import decimal
import fractions
import io
import pathlib
import struct
import types
import uuid
import zoneinfo
from collections import Counter, OrderedDict, defaultdict, deque
from typing import Any

from reckon.memo._keys_stream import (
    T_ARRAY,
    T_BYTESIO,
    T_COUNTER,
    T_DATE,
    T_DATETIME,
    T_DECIMAL,
    T_DEFAULTDICT,
    T_DEQUE,
    T_DICT,
    T_DICT_STR,
    T_FRACTION,
    T_MAPPINGPROXY,
    T_NONE,
    T_ORDEREDDICT,
    T_PATH,
    T_RANGE,
    T_SLICE,
    T_STRINGIO,
    T_TIME,
    T_TIMEDELTA,
    T_TIMEZONE,
    T_UUID,
    T_ZONEINFO,
    TAG_LEN,
    Handler,
    Hasher,
    Unhashable,
    feed_items_unordered,
    h_bytes,
    h_int,
    h_list,
    h_memoryview,
    h_str,
    put_typename,
    short_repr,
)


def _h_path(h: Hasher, obj: pathlib.PurePath) -> None:
    h._buf.append(T_PATH)
    put_typename(h, type(obj))
    h_str(h, str(obj))


def _h_tzinfo(h: Hasher, tz: _dt.tzinfo | None) -> None:
    if tz is None:
        h._buf.append(T_NONE)
    else:
        h._feed(tz)


def _h_datetime(h: Hasher, obj: _dt.datetime) -> None:
    h._buf += struct.pack(
        "<BHBBBBBIB",
        T_DATETIME,
        obj.year,
        obj.month,
        obj.day,
        obj.hour,
        obj.minute,
        obj.second,
        obj.microsecond,
        obj.fold,
    )
    _h_tzinfo(h, obj.tzinfo)


def _h_date(h: Hasher, obj: _dt.date) -> None:
    h._buf += struct.pack("<BHBB", T_DATE, obj.year, obj.month, obj.day)


def _h_time(h: Hasher, obj: _dt.time) -> None:
    h._buf += struct.pack(
        "<BBBBIB", T_TIME, obj.hour, obj.minute, obj.second, obj.microsecond, obj.fold
    )
    _h_tzinfo(h, obj.tzinfo)


def _h_timedelta(h: Hasher, obj: _dt.timedelta) -> None:
    h._buf += struct.pack("<BqqI", T_TIMEDELTA, obj.days, obj.seconds, obj.microseconds)


def _h_timezone(h: Hasher, obj: _dt.timezone) -> None:
    off = obj.utcoffset(None)
    h._buf += struct.pack("<Bqq", T_TIMEZONE, off.days * 86400 + off.seconds, off.microseconds)
    h_str(h, obj.tzname(None) or "")


def _h_zoneinfo(h: Hasher, obj: Any) -> None:
    key = getattr(obj, "key", None)
    if key is None:  # a zone built from a file: fall back to its pickled state
        from reckon.memo._keys_objects import h_object

        h_object(h, obj)
        return
    h._buf.append(T_ZONEINFO)
    h_str(h, key)


def _h_decimal(h: Hasher, obj: decimal.Decimal) -> None:
    text = str(obj).encode()
    h._buf += TAG_LEN(T_DECIMAL, len(text))
    h._buf += text


def _h_fraction(h: Hasher, obj: fractions.Fraction) -> None:
    h._buf.append(T_FRACTION)
    h_int(h, obj.numerator)
    h_int(h, obj.denominator)


def _h_uuid(h: Hasher, obj: uuid.UUID) -> None:
    h._buf.append(T_UUID)
    h._buf += obj.bytes


def _h_range(h: Hasher, obj: range) -> None:
    h._buf.append(T_RANGE)
    h_int(h, obj.start)
    h_int(h, obj.stop)
    h_int(h, obj.step)


def _h_slice(h: Hasher, obj: slice) -> None:
    h._buf.append(T_SLICE)
    try:
        h._feed(obj.start)
        h._feed(obj.stop)
        h._feed(obj.step)
    except Unhashable as exc:
        exc.parts.append("<slice>")
        raise


def _h_ordereddict(h: Hasher, obj: OrderedDict[Any, Any]) -> None:
    # OrderedDicts compare with order, so the order is part of the value.
    if not h._enter(obj):
        return
    k: Any = None
    try:
        h._buf += TAG_LEN(T_ORDEREDDICT, len(obj))
        for k, v in obj.items():
            h._feed(k)
            h._feed(v)
    except Unhashable as exc:
        exc.parts.append(f"[{short_repr(k)}]")
        raise
    finally:
        h._leave(obj)


def _h_defaultdict(h: Hasher, obj: defaultdict[Any, Any]) -> None:
    if not h._enter(obj):
        return
    try:
        h._buf.append(T_DEFAULTDICT)
        try:
            h._feed(obj.default_factory)
        except Unhashable as exc:
            exc.parts.append(".default_factory")
            raise
        feed_items_unordered(h, T_DICT, T_DICT_STR, obj, len(obj))
    finally:
        h._leave(obj)


def _h_counter(h: Hasher, obj: Counter[Any]) -> None:
    if not h._enter(obj):
        return
    try:
        h._buf.append(T_COUNTER)
        feed_items_unordered(h, T_DICT, T_DICT_STR, obj, len(obj))
    finally:
        h._leave(obj)


def _h_deque(h: Hasher, obj: deque[Any]) -> None:
    if not h._enter(obj):
        return
    try:
        h._buf.append(T_DEQUE)
        h._feed(obj.maxlen)
        h_list(h, list(obj))
    finally:
        h._leave(obj)


def _h_mappingproxy(h: Hasher, obj: types.MappingProxyType[Any, Any]) -> None:
    h._buf.append(T_MAPPINGPROXY)
    feed_items_unordered(h, T_DICT, T_DICT_STR, obj, len(obj))


def _h_bytesio(h: Hasher, obj: io.BytesIO) -> None:
    h._buf.append(T_BYTESIO)
    h_bytes(h, obj.getvalue())
    h_int(h, obj.tell())


def _h_stringio(h: Hasher, obj: io.StringIO) -> None:
    h._buf.append(T_STRINGIO)
    h_str(h, obj.getvalue())
    h_int(h, obj.tell())


def _h_array(h: Hasher, obj: Any) -> None:
    h._buf.append(T_ARRAY)
    h_str(h, obj.typecode)
    h_memoryview(h, memoryview(obj))


HANDLERS: dict[type, Handler] = {
    range: _h_range,
    slice: _h_slice,
    _dt.datetime: _h_datetime,
    _dt.date: _h_date,
    _dt.time: _h_time,
    _dt.timedelta: _h_timedelta,
    _dt.timezone: _h_timezone,
    zoneinfo.ZoneInfo: _h_zoneinfo,
    decimal.Decimal: _h_decimal,
    fractions.Fraction: _h_fraction,
    uuid.UUID: _h_uuid,
    OrderedDict: _h_ordereddict,
    defaultdict: _h_defaultdict,
    Counter: _h_counter,
    deque: _h_deque,
    types.MappingProxyType: _h_mappingproxy,
    io.BytesIO: _h_bytesio,
    io.StringIO: _h_stringio,
    array.array: _h_array,
    pathlib.PurePath: _h_path,
    pathlib.PurePosixPath: _h_path,
    pathlib.PureWindowsPath: _h_path,
    pathlib.Path: _h_path,
    pathlib.PosixPath: _h_path,
    pathlib.WindowsPath: _h_path,
}

SUBCLASSABLE: dict[type, Handler] = {
    OrderedDict: _h_ordereddict,
    defaultdict: _h_defaultdict,
    Counter: _h_counter,
    pathlib.PurePath: _h_path,
    _dt.datetime: _h_datetime,
    _dt.date: _h_date,
    _dt.timedelta: _h_timedelta,
    decimal.Decimal: _h_decimal,
    fractions.Fraction: _h_fraction,
}
