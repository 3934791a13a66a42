"""pvRequest: the structure a client sends with every init, built from the usual text form.

``"field(value,alarm)record[queueSize=4,pipeline=true]"`` becomes
``{"field": {"value": {}, "alarm": {}}, "record": {"_options": {"queueSize": "4", ...}}}``
(field names nest on dots; option values are strings, as pvxs sends them).
"""

from __future__ import annotations

import re
from typing import Any

from ._errors import LocalProtocolError
from ._types import FieldDesc, Structure
from ._values import VariantValue

_TOKEN = re.compile(r"\s*(field\(([^)]*)\)|record\[([^\]]*)\]|([A-Za-z_][\w.,\s]*))\s*")


def pv_request(text: str = "") -> VariantValue:
    """Build a pvRequest from text (``""`` = everything)."""
    fields: dict[str, Any] = {}
    options: dict[str, str] = {}
    pos = 0
    text = text.strip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            raise LocalProtocolError(f"cannot parse pvRequest {text!r} at {text[pos:]!r}")
        names = m.group(2) if m.group(2) is not None else m.group(4)
        if names is not None:
            for name in names.split(","):
                name = name.strip()
                if not name:
                    continue
                cur = fields
                for part in name.split("."):
                    cur = cur.setdefault(part, {})
        if m.group(3) is not None:
            for opt in m.group(3).split(","):
                if not opt.strip():
                    continue
                if "=" not in opt:
                    raise LocalProtocolError(f"record option {opt!r} needs name=value")
                k, v = opt.split("=", 1)
                options[k.strip()] = v.strip()
        pos = m.end()

    def build(d: dict[str, Any]) -> Structure:
        return Structure([(k, build(sub)) for k, sub in d.items()])

    top: list[tuple[str, FieldDesc]] = [("field", build(fields))]
    value: dict[str, Any] = {"field": fields}  # the tree of names is the value: empty leaves
    if options:
        opt_t = Structure([(k, "s") for k in options])
        top.append(("record", Structure([("_options", opt_t)])))
        value["record"] = {"_options": options}
    return VariantValue(Structure(top), value)


def request_options(req: VariantValue | None) -> dict[str, str]:
    """``record._options`` of a pvRequest as strings (empty when there are none)."""
    if req is None or not isinstance(req.value, dict):
        return {}
    rec = req.value.get("record")
    opts = rec.get("_options") if isinstance(rec, dict) else None
    if not isinstance(opts, dict):
        return {}
    return {str(k): str(v) for k, v in opts.items() if not isinstance(v, dict)}


def request_fields(req: VariantValue | None) -> list[str]:
    """Dotted field paths a pvRequest selects (empty list = the whole structure)."""
    if req is None or not isinstance(req.value, dict):
        return []
    fld = req.value.get("field")
    if not isinstance(fld, dict):
        return []
    out: list[str] = []

    def walk(d: dict[str, Any], prefix: str) -> None:
        for k, v in d.items():
            if isinstance(v, dict) and v:
                walk(v, prefix + k + ".")
            else:
                out.append(prefix + k)

    walk(fld, "")
    return out
