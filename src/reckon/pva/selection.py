"""What a pvRequest selects: the changed-bit masks of its ``field(...)`` list.

Bit 0 stands for the whole structure; a structure's bit covers all of its fields. The server
computes a mask once per (pvRequest, type) and shares it by every operation that uses it.
"""

from __future__ import annotations

from typing import Any

from reckon.pva.protocol import BitSet, Structure, VariantValue, request_fields

ALL = 1  # bit 0: the whole structure


def request_mask(t: Structure, pv_request: VariantValue | None) -> int:
    """The bit mask of the fields a pvRequest's ``field(...)`` selects (bit 0 = everything).

    Fields the structure does not have are ignored, as pvxs does.
    """
    offsets = t.offsets
    mask = 0
    for path in request_fields(pv_request):
        bit = offsets.get(path)
        if bit is not None:
            mask |= 1 << bit
    return mask or ALL


def expand_mask(t: Structure, mask: int) -> int:
    """Every offset a mask covers (a structure's bit covers its fields)."""
    if mask & ALL:
        return (1 << t.bit_count) - 1
    out = 0
    for bit in BitSet.from_mask(mask):
        out |= ((1 << t.field_at(bit)[1].bit_count) - 1) << bit
    return out


def sent_mask(t: Structure, selected: int, assigned: int) -> int:
    """What a full reply (a get, a monitor's first update) sends: the selected fields that were
    ever assigned. pvxs sends only such ("marked") fields too: the rest still hold their
    defaults, which a client fills in itself, so sending them costs both ends for nothing.

    Bit 0 when that is everything; else one bit per field (a structure's bit only with all of
    its fields).
    """
    full = (1 << t.bit_count) - 1
    mask = expand_mask(t, selected) & expand_mask(t, assigned) if assigned else 0
    return ALL if mask == full else mask


def truthy(v: Any) -> bool:
    """A pvRequest option as a bool: pvxs sends options as strings ("true")."""
    if isinstance(v, str):
        return v.strip().lower() in ("true", "1", "yes")
    return bool(v)
