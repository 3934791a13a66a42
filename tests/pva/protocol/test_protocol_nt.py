"""Normative types and pvRequest helpers."""

from __future__ import annotations

import numpy as np
import pytest

from reckon.pva.protocol import (
    LocalProtocolError,
    Structure,
    decode_value,
    encode_type,
    encode_value,
    nt,
    pv_request,
    request_fields,
    request_options,
    values_equal,
)


@pytest.mark.parametrize("kind", list("?bBhHiIlLfds"))
def test_ntscalar_round_trip(kind: str) -> None:
    s = nt.NTScalar(kind, display=True, control=True)
    sample = {"?": True, "s": "hello", "f": 1.5, "d": 2.25}.get(kind, 7)
    v = s.wrap(sample, severity=2, status=3, message="m", timestamp=12.5)
    assert v["timeStamp"] == {"secondsPastEpoch": 12, "nanoseconds": 500_000_000, "userTag": 0}
    back = decode_value(s.type, encode_value(s.type, v))
    assert s.unwrap(back) == sample and back["alarm"] == v["alarm"]
    assert s.type.id == "epics:nt/NTScalar:1.0" and nt.is_nt(s.type, "NTScalar")


@pytest.mark.parametrize("kind", list("?bBhHiIlLfd"))
def test_ntscalararray_numpy(kind: str) -> None:
    a = nt.NTScalarArray(kind)
    arr = np.arange(5) % 2 if kind == "?" else np.arange(5)
    v = a.wrap(arr)
    back = decode_value(a.type, encode_value(a.type, v, big_endian=True), big_endian=True)
    assert values_equal(a.unwrap(back), np.asarray(arr).astype(a.unwrap(v).dtype))


def test_ntenum_nttable_nturi() -> None:
    e = nt.NTEnum()
    v = e.wrap(1, ["off", "on"])
    assert e.unwrap(decode_value(e.type, encode_value(e.type, v))) == (1, ["off", "on"])

    t = nt.NTTable([("name", "s"), ("x", "d"), ("n", "i")])
    rows = [{"name": "a", "x": 1.0, "n": 1}, {"name": "b", "x": 2.0, "n": 2}]
    v = t.wrap(rows)
    back = decode_value(t.type, encode_value(t.type, v))
    assert back["labels"] == ["name", "x", "n"]
    assert nt.NTTable.rows(back) == rows
    assert list(t.unwrap(back)["x"]) == [1.0, 2.0]

    u = nt.NTURI([("a", "i"), ("b", "s")])
    v = u.wrap("add", {"a": 2})
    assert u.unwrap(decode_value(u.type, encode_value(u.type, v))) == ("add", {"a": 2, "b": ""})
    with pytest.raises(LocalProtocolError):
        u.wrap("add", {"zzz": 1})


def test_ntndarray_shape_and_dtype() -> None:
    n = nt.NTNDArray()
    img = np.arange(12, dtype=np.uint16).reshape(3, 4)
    v = n.wrap(img, unique_id=5)
    assert [d["size"] for d in v["dimension"]] == [4, 3]
    back = decode_value(n.type, encode_value(n.type, v))
    out = n.unwrap(back)
    assert out.shape == (3, 4) and out.dtype == np.uint16 and np.array_equal(out, img)
    assert back["uniqueId"] == 5 and back["value"].field == "ushortValue"
    assert encode_type(n.type)[:1] == b"\x80"


def test_pv_request_text_forms() -> None:
    r = pv_request("field(value,alarm.severity)record[queueSize=4, pipeline=true]")
    assert request_fields(r) == ["value", "alarm.severity"]
    assert request_options(r) == {"queueSize": "4", "pipeline": "true"}
    assert pv_request("value,timeStamp").value == {"field": {"value": {}, "timeStamp": {}}}
    empty = pv_request()
    assert empty.type == Structure([("field", Structure([]))]) and request_fields(empty) == []
    with pytest.raises(LocalProtocolError):
        pv_request("record[novalue]")
