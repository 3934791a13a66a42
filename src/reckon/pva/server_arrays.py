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
from reckon.pva.replies import status_of
from reckon.pva.server_calls import Session


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


def _array_write(
    session: Session,
    ioid: int,
    op: Any,
    reply: type[ArrayPutResponse | ArraySetLengthResponse],
) -> ScalarArray | None:
    """The array type of a write (a put or a new length) this peer may make, or None once
    the refusal is sent: both are puts, under the PV's ``writable`` and the access hook."""
    at = _array_type(op)
    if at is None or not op.pv.writable:
        session.send(reply(ioid, Status.error(f"{op.name} is not writable")))
        return None
    access = session.context.access
    if access is not None and not access(session.peer, op.name, "put"):
        session.send(reply(ioid, Status.error(f"put to {op.name} refused by access control")))
        return None
    return at


def _array_post(
    session: Session,
    ioid: int,
    op: Any,
    at: ScalarArray,
    values: list[Any],
    reply: type[ArrayPutResponse | ArraySetLengthResponse],
) -> None:
    """Post the new array and answer; a value the PV cannot take is the client's error,
    not a reason to drop it."""
    try:
        op.pv.post({"value": coerce(at, values)})
    except Exception as exc:
        session.send(reply(ioid, status_of(exc)))
        return
    session.send(reply(ioid))


def _grown(
    session: Session,
    ioid: int,
    op: Any,
    at: ScalarArray,
    values: list[Any],
    length: int,
    reply: type[ArrayPutResponse | ArraySetLengthResponse],
) -> list[Any] | None:
    """``values`` grown to ``length`` with the element type's zero ("" for strings), or
    None once refused: an offset or length is a 32-bit number in a message of a few
    bytes, so growth is bounded by what one message could carry (memory stays bounded
    whatever a peer asks)."""
    if length <= len(values):
        return values
    limit = max(len(values), session.context.max_message_size // 8)
    if length > limit:
        session.send(
            reply(
                ioid,
                Status.error(
                    f"{op.name}: an array write may grow it to {limit} elements, not {length}"
                ),
            )
        )
        return None
    return values + ["" if at.kind == "s" else 0] * (length - len(values))


def on_array_put(session: Session, ev: ArrayPut) -> None:
    op = session.ops.get(ev.ioid)
    if op is None:
        return
    at = _array_write(session, ev.ioid, op, ArrayPutResponse)
    if at is None:
        return
    cur = list(op.pv.value["value"])
    stride = max(ev.stride, 1)
    new = list(ev.value)
    need = ev.offset + (len(new) - 1) * stride + 1 if new else 0
    grown = _grown(session, ev.ioid, op, at, cur, need, ArrayPutResponse)
    if grown is None:
        return
    cur = grown
    for i, v in enumerate(new):
        cur[ev.offset + i * stride] = v
    _array_post(session, ev.ioid, op, at, cur, ArrayPutResponse)


def on_array_set_length(session: Session, ev: ArraySetLength) -> None:
    op = session.ops.get(ev.ioid)
    if op is None:
        return
    at = _array_write(session, ev.ioid, op, ArraySetLengthResponse)
    if at is None:
        return
    kept = list(op.pv.value["value"])[: ev.length]
    cur = _grown(session, ev.ioid, op, at, kept, ev.length, ArraySetLengthResponse)
    if cur is not None:
        _array_post(session, ev.ioid, op, at, cur, ArraySetLengthResponse)


def on_array_get_length(session: Session, ev: ArrayGetLength) -> None:
    op = session.ops.get(ev.ioid)
    if op is None:
        return
    session.send(ArrayGetLengthResponse(ev.ioid, length=len(op.pv.value["value"])))
