"""The array operation (ArrayInit, ArrayGet, ArrayPut, ArraySetLength, ArrayGetLength) on a
server session: a slice of a PV's array ``value`` read or written in place, under the PV's
``writable`` flag and the access hook like a put.
"""

from __future__ import annotations

from typing import Any

from reckon.pva.protocol import (
    ArrayGet,
    ArrayGetLength,
    ArrayGetLengthResponse,
    ArrayGetResponse,
    ArrayInit,
    ArrayInitResponse,
    ArrayPut,
    ArrayPutResponse,
    ArraySetLength,
    ArraySetLengthResponse,
    ScalarArray,
    Status,
)
from reckon.pva.pv import coerce
from reckon.pva.server_calls import Session, status_of


def _array_type(op: Any) -> ScalarArray | None:
    t = op.pv.type
    if t is None or "value" not in t:
        return None
    vt = t["value"]
    return vt if isinstance(vt, ScalarArray) else None


def on_array_init(session: Session, ev: ArrayInit) -> None:
    op = session.open_op(ev.sid, ev.ioid, ev.pv_request, "array")
    at = _array_type(op)
    if at is None:
        session.refuse(ArrayInitResponse(ev.ioid, Status.error(f"{op.name} has no array value")))
        return
    session.send(ArrayInitResponse(ev.ioid, type=at))


def on_array_get(session: Session, ev: ArrayGet) -> None:
    op = session.ops.get(ev.ioid)
    if op is None:
        return
    arr = op.pv.value["value"]
    end = len(arr) if ev.count == 0 else ev.offset + ev.count * max(ev.stride, 1)
    session.send(ArrayGetResponse(ev.ioid, value=arr[ev.offset : end : max(ev.stride, 1)]))


def on_array_write(session: Session, ev: ArrayPut | ArraySetLength) -> None:
    """A put of a slice, or a new length: both are puts, under the PV's ``writable`` and the
    access hook. A value the PV cannot take is the client's error, not a reason to drop it.

    Growth (new elements are the type's zero, "" for strings) is bounded by what one message
    could carry: an offset or length is a 32-bit number in a message of a few bytes, and
    memory stays bounded whatever a peer asks."""
    op = session.ops.get(ev.ioid)
    if op is None:
        return
    reply = ArrayPutResponse if type(ev) is ArrayPut else ArraySetLengthResponse
    at = _array_type(op)
    status = Status.OK
    if at is None or not op.pv.writable:
        status = Status.error(f"{op.name} is not writable")
    else:
        status = session.context.refused(session.peer, op.name, "put") or status
    if at is not None and status.success:
        cur = list(op.pv.value["value"])
        if isinstance(ev, ArrayPut):
            new, offset, stride = list(ev.value), ev.offset, max(ev.stride, 1)
            length = offset + (len(new) - 1) * stride + 1 if new else 0
        else:
            new, offset, stride, length = [], 0, 1, ev.length
            cur = cur[:length]
        limit = max(len(cur), session.context.max_message_size // 8)
        if length > limit:
            status = Status.error(
                f"{op.name}: an array write may grow it to {limit} elements, not {length}"
            )
        else:
            cur += ["" if at.kind == "s" else 0] * (length - len(cur))
            for i, v in enumerate(new):
                cur[offset + i * stride] = v
            try:
                op.pv.post({"value": coerce(at, cur)})
            except Exception as exc:
                status = status_of(exc)
    session.send(reply(ev.ioid, status))


def on_array_get_length(session: Session, ev: ArrayGetLength) -> None:
    op = session.ops.get(ev.ioid)
    if op is None:
        return
    session.send(ArrayGetLengthResponse(ev.ioid, length=len(op.pv.value["value"])))
