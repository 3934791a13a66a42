"""Normative types (epics:nt/...): build their type descriptions, wrap plain Python values and
numpy arrays into structure values, and unwrap them again.

    >>> from reckon.pva.protocol import nt
    >>> s = nt.NTScalar("d")
    >>> v = s.wrap(1.5, severity=1, message="high")
    >>> s.unwrap(v), v["alarm"]["severity"]
    (1.5, 1)
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from ._arrays import ITEM_SIZE, native_dtype, np
from ._errors import LocalProtocolError
from ._types import (
    KIND_NAMES,
    FieldDesc,
    FieldSpec,
    Scalar,
    ScalarArray,
    Structure,
    StructureArray,
    Union,
    Variant,
    parse_type,
)
from ._values import UnionValue, infer_type
from ._wire import KINDS

alarm_t = Structure([("severity", "i"), ("status", "i"), ("message", "s")], id="alarm_t")
time_t = Structure([("secondsPastEpoch", "l"), ("nanoseconds", "i"), ("userTag", "i")], id="time_t")
enum_t = Structure([("index", "i"), ("choices", "as")], id="enum_t")
display_t = Structure(
    [
        ("limitLow", "d"),
        ("limitHigh", "d"),
        ("description", "s"),
        ("units", "s"),
        ("precision", "i"),
        ("form", enum_t),
    ],
    id="display_t",
)
control_t = Structure([("limitLow", "d"), ("limitHigh", "d"), ("minStep", "d")], id="control_t")


def timestamp(t: float | None = None) -> dict[str, int]:
    """A time_t value for ``t`` (seconds since 1970; now when None)."""
    if t is None:
        t = time.time()
    sec = int(t // 1)
    return {"secondsPastEpoch": sec, "nanoseconds": int((t - sec) * 1e9), "userTag": 0}


_timestamp = timestamp  # for the methods whose keyword argument ``timestamp`` hides it


def _array(kind: str, values: Any) -> Any:
    """An array of ``kind``: a list of str for strings, else numpy (a list without numpy)."""
    if kind == "s":
        return [str(x) for x in values]
    if np is not None:
        return np.asarray(values, dtype=native_dtype(kind))
    return list(values)


class _NT:
    """NTScalar and NTScalarArray: ``value`` with alarm and timeStamp (display/control opt.);
    NTEnum makes its type and value its own way."""

    _array: ClassVar[bool]  # NTScalarArray

    def __init__(self, kind: str = "d", *, display: bool = False, control: bool = False) -> None:
        vt = parse_type("a" + kind if self._array and len(kind) == 1 else kind)
        if not isinstance(vt, ScalarArray if self._array else Scalar):
            raise LocalProtocolError(f"{type(self).__name__} needs a scalar kind, not {kind!r}")
        fields: list[tuple[str, FieldSpec]] = [
            ("value", vt),
            ("alarm", alarm_t),
            ("timeStamp", time_t),
        ]
        if display:
            fields.append(("display", display_t))
        if control:
            fields.append(("control", control_t))
        self.kind = vt.kind
        self.type = Structure(fields, id=f"epics:nt/{type(self).__name__}:1.0")

    def wrap(
        self,
        value: Any,
        *,
        timestamp: float | None = None,
        severity: int = 0,
        status: int = 0,
        message: str = "",
    ) -> dict[str, Any]:
        """The structure value of ``value`` with its alarm and time stamp (now when None)."""
        out = self.type.default()
        out["value"] = self._value(value)
        out["alarm"] = {"severity": severity, "status": status, "message": message}
        out["timeStamp"] = _timestamp(timestamp)
        return out

    def _value(self, value: Any) -> Any:
        # a scalar takes the type of its kind's default: str, bool, int or float
        return _array(self.kind, value) if self._array else type(KINDS[self.kind][3])(value)

    def unwrap(self, value: Mapping[str, Any]) -> Any:
        return value["value"]


class NTScalar(_NT):
    """``epics:nt/NTScalar:1.0``: one scalar with alarm and timeStamp (display/control opt.)."""

    _array = False


class NTScalarArray(_NT):
    """``epics:nt/NTScalarArray:1.0``: an array with alarm and timeStamp."""

    _array = True


class NTEnum(_NT):
    """``epics:nt/NTEnum:1.0``: ``value`` is ``{index, choices}``; wrap(index, choices)."""

    def __init__(self) -> None:
        self.type = Structure(
            [("value", enum_t), ("alarm", alarm_t), ("timeStamp", time_t)],
            id="epics:nt/NTEnum:1.0",
        )

    def wrap(
        self,
        index: int,
        choices: Sequence[str] = (),
        *,
        timestamp: float | None = None,
        severity: int = 0,
        status: int = 0,
        message: str = "",
    ) -> dict[str, Any]:
        """The structure value of the enum ``index`` of ``choices``, with its alarm and time
        stamp (now when None)."""
        enum = {"index": int(index), "choices": [str(c) for c in choices]}
        return super().wrap(
            enum, timestamp=timestamp, severity=severity, status=status, message=message
        )

    def _value(self, value: Any) -> Any:
        return value  # made by wrap

    def unwrap(self, value: Mapping[str, Any]) -> tuple[int, list[str]]:
        """(index, choices)."""
        v = value["value"]
        return int(v["index"]), list(v["choices"])


class NTTable:
    """``epics:nt/NTTable:1.0``: named columns of equal length.

    ``NTTable([("name", "s"), ("x", "d")]).wrap({"name": [...], "x": [...]})`` or a list of
    row dicts; ``unwrap`` returns a dict of columns.
    """

    def __init__(self, columns: Sequence[tuple[str, str]]) -> None:
        cols = [(n, parse_type(k if k.startswith("a") else "a" + k)) for n, k in columns]
        self.columns = [n for n, _ in cols]
        self._kinds = {n: t.kind for n, t in cols if isinstance(t, ScalarArray)}
        self.type = Structure(
            [
                ("labels", "as"),
                ("value", Structure(cols)),
                ("descriptor", "s"),
                ("alarm", alarm_t),
                ("timeStamp", time_t),
            ],
            id="epics:nt/NTTable:1.0",
        )

    def wrap(
        self,
        data: Mapping[str, Sequence[Any]] | Sequence[Mapping[str, Any]],
        *,
        labels: Sequence[str] | None = None,
        timestamp: float | None = None,
    ) -> dict[str, Any]:
        if isinstance(data, Mapping):
            cols = {n: list(data.get(n, [])) for n in self.columns}
        else:
            cols = {n: [row[n] for row in data] for n in self.columns}
        out = self.type.default()
        out["labels"] = list(labels) if labels is not None else list(self.columns)
        out["value"] = {n: _array(self._kinds[n], cols[n]) for n in self.columns}
        out["timeStamp"] = _timestamp(timestamp)
        return out

    def unwrap(self, value: Mapping[str, Any]) -> dict[str, Any]:
        return dict(value["value"])

    @staticmethod
    def rows(value: Mapping[str, Any]) -> list[dict[str, Any]]:
        cols = value["value"]
        names = list(cols)
        n = min((len(cols[c]) for c in names), default=0)
        return [{c: cols[c][i] for c in names} for i in range(n)]


class NTURI:
    """``epics:nt/NTURI:1.0``: the usual RPC argument (path plus typed query fields)."""

    def __init__(self, args: Sequence[tuple[str, FieldSpec]] = ()) -> None:
        self.type = Structure(
            [
                ("scheme", "s"),
                ("authority", "s"),
                ("path", "s"),
                ("query", Structure(list(args))),
            ],
            id="epics:nt/NTURI:1.0",
        )

    def wrap(self, path: str, query: Mapping[str, Any] | None = None, *, scheme: str = "pva",
             authority: str = "") -> dict[str, Any]:  # fmt: skip
        q_t = self.type["query"]
        assert isinstance(q_t, Structure)
        q = q_t.default()
        for k, v in (query or {}).items():
            if k not in q_t:
                raise LocalProtocolError(f"NTURI query has no argument {k!r}")
            q[k] = v
        return {"scheme": scheme, "authority": authority, "path": path, "query": q}

    def unwrap(self, value: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
        """(path, query dict)."""
        return str(value["path"]), dict(value.get("query", {}))


#: NTNDArray's union members, "booleanValue" to "doubleValue", in the order of the type codes
_ND_MEMBERS = [(KIND_NAMES[k] + "Value", k) for k in ITEM_SIZE]
_ND_BY_KIND = {k: n for n, k in _ND_MEMBERS}
dimension_t = Structure(
    [("size", "i"), ("offset", "i"), ("fullSize", "i"), ("binning", "i"), ("reverse", "?")],
    id="dimension_t",
)
codec_t = Structure([("name", "s"), ("parameters", Variant())], id="codec_t")
attribute_t = Structure(
    [
        ("name", "s"),
        ("value", Variant()),
        ("descriptor", "s"),
        ("sourceType", "i"),
        ("source", "s"),
    ],
    id="epics:nt/NTAttribute:1.0",
)


class NTNDArray:
    """``epics:nt/NTNDArray:1.0``: an n-dimensional image (numpy in, numpy out).

    ``dimension`` lists the fastest-varying axis first (as areaDetector does), so a C-ordered
    array of shape (rows, cols) has dimension sizes [cols, rows].
    """

    def __init__(self) -> None:
        value_u = Union([(n, ScalarArray(k)) for n, k in _ND_MEMBERS])
        self.type = Structure(
            [
                ("value", value_u),
                ("codec", codec_t),
                ("compressedSize", "l"),
                ("uncompressedSize", "l"),
                ("dimension", StructureArray(dimension_t)),
                ("uniqueId", "i"),
                ("dataTimeStamp", time_t),
                ("attribute", StructureArray(attribute_t)),
                ("descriptor", "s"),
                ("alarm", alarm_t),
                ("timeStamp", time_t),
            ],
            id="epics:nt/NTNDArray:1.0",
        )

    def wrap(
        self, array: Any, *, unique_id: int = 0, timestamp: float | None = None
    ) -> dict[str, Any]:
        if np is None:
            raise LocalProtocolError("NTNDArray.wrap needs numpy")
        arr = np.asarray(array)
        t = infer_type(arr)
        if not isinstance(t, ScalarArray) or t.kind not in _ND_BY_KIND:
            raise LocalProtocolError(f"no NTNDArray member for dtype {arr.dtype}")
        flat = np.ascontiguousarray(arr).reshape(-1)
        dims = [
            {"size": int(s), "offset": 0, "fullSize": int(s), "binning": 1, "reverse": False}
            for s in reversed(arr.shape)
        ]
        ts = _timestamp(timestamp)
        out = self.type.default()
        out.update(
            value=UnionValue(_ND_BY_KIND[t.kind], flat),
            compressedSize=int(flat.nbytes),
            uncompressedSize=int(flat.nbytes),
            dimension=dims,
            uniqueId=unique_id,
            dataTimeStamp=ts,
            timeStamp=ts,
        )
        return out

    def unwrap(self, value: Mapping[str, Any]) -> Any:
        if np is None:
            raise LocalProtocolError("NTNDArray.unwrap needs numpy")
        u = value["value"]
        if u is None:
            return np.zeros(0)
        flat = np.asarray(u.value)
        shape = [int(d["size"]) for d in reversed(value.get("dimension") or [])]
        if shape and int(np.prod(shape)) == flat.size:
            return flat.reshape(shape)
        return flat


def is_nt(t: FieldDesc, name: str) -> bool:
    """True when ``t`` is a structure whose id names normative type ``name`` (any version)."""
    return isinstance(t, Structure) and t.id.startswith(f"epics:nt/{name}:")


__all__ = [
    "NTURI",
    "NTEnum",
    "NTNDArray",
    "NTScalar",
    "NTScalarArray",
    "NTTable",
    "alarm_t",
    "attribute_t",
    "codec_t",
    "control_t",
    "dimension_t",
    "display_t",
    "enum_t",
    "is_nt",
    "time_t",
    "timestamp",
]
