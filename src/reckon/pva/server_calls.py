"""The operations of a server session beyond get and monitor: those that run a PV's handlers,
put and put-get (a ``put_handler``, or ``post()`` of what the client set), RPC (an
``rpc_handler``) and process; and the array operation (a slice of a PV's array ``value`` read
or written in place, under the PV's ``writable`` flag and the access hook like a put).

A handler may be a plain callable or return an awaitable: its reply then goes out when it
completes, and a failed or cancelled handler is an error status the client sees; an RPC
handler's plain Python return value becomes a typed value (it may return a float or a dict).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from reckon.errors import PvaAccessDeniedError
from reckon.pva.protocol import (
    ALL_CHANGED,
    RPC,
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
    Event,
    Process,
    ProcessInit,
    ProcessInitResponse,
    ProcessResponse,
    Put,
    PutGet,
    PutGetInit,
    PutGetInitResponse,
    PutGetRead,
    PutGetReadResponse,
    PutGetResponse,
    PutRead,
    PutReadResponse,
    PutResponse,
    RPCInit,
    RPCInitResponse,
    RPCResponse,
    ScalarArray,
    Status,
    Structure,
    VariantValue,
)
from reckon.pva.pv import Peer, PutOperation, RpcOperation, coerce
from reckon.pva.server_context import Op, Scheduler, ServerContext


class Session(Protocol):
    """What the handlers need of a connection's session (a ServerSession)."""

    context: ServerContext
    loop: Scheduler
    peer: Peer
    ops: dict[int, Op]

    def open_op(self, sid: int, ioid: int, req: VariantValue | None, kind: str) -> Op: ...
    def refuse(self, reply: Any) -> None: ...
    def send(self, ev: Event) -> None: ...
    def send_later(self, ev: Event) -> None: ...


def on_put_get_init(session: Session, ev: PutGetInit) -> None:
    op = session.open_op(ev.sid, ev.ioid, ev.pv_request, "putget")
    t = op.pv.type
    if t is None or not op.pv.writable:
        session.refuse(PutGetInitResponse(ev.ioid, Status.error(f"{op.name} is not writable")))
        return
    session.send(PutGetInitResponse(ev.ioid, put_type=t, get_type=t))


def on_put_read(session: Session, ev: PutRead, op: Op) -> None:
    session.send(PutReadResponse.unchecked(ev.ioid, Status.OK, op.pv.value, ALL_CHANGED, False))


def on_put_get_read(session: Session, ev: PutGetRead, op: Op) -> None:
    session.send(PutGetReadResponse(ev.ioid, ev.part, value=op.pv.value))


def on_put(session: Session, ev: Put | PutGet, op: Op) -> None:
    pv = op.pv
    assert pv.type is not None
    mask = ev.changed.mask
    if mask != op.put_mask:
        op.put_paths = tuple(pv.type.field_at(bit)[0] for bit in ev.changed)
        op.put_mask = mask
    put = PutOperation(pv, op.name, session.peer, ev.value, op.put_paths, dict(op.options))
    reply = functools.partial(_reply_put, session, ev, op)
    # (without a put handler: post the fields the client set; a value the PV cannot take is
    # an error status the client sees)
    _run_handler(session, op, "put", pv.put_handler or _post_fields, put, reply)


_post_fields: Callable[[PutOperation], None] = lambda put: put.pv.post(put.fields)  # noqa: E731


def _run_handler(
    session: Session,
    op: Any,
    operation: str,
    handler: Callable[[Any], Any],
    argument: Any,
    reply: Callable[[Status, Any, bool], None],
) -> None:
    """Run a put or RPC handler and ``reply(status, result, later)`` with its outcome: access
    refused, its exception, its result, or (later, from a task) its awaitable's."""
    refused = session.context.refused(session.peer, op.name, operation)
    if refused is not None:
        reply(refused, None, False)
        return
    try:
        result = handler(argument)
    except Exception as exc:
        reply(status_of(exc), None, False)
        return
    if asyncio.iscoroutine(result) or isinstance(result, asyncio.Future):
        op.task = session.loop.create_task(_finish_later(op, result, reply))
    else:
        reply(Status.OK, result, False)


async def _finish_later(
    op: Any, pending: Awaitable[Any], reply: Callable[[Status, Any, bool], None]
) -> None:
    """Await a put or RPC handler's awaitable and reply with its outcome (a cancelled or
    failed handler gives the client an error status, never a silent operation)."""
    try:
        result = await pending
    except asyncio.CancelledError:
        reply(Status.error("cancelled"), None, True)
        return
    except Exception as exc:
        reply(status_of(exc), None, True)
        return
    finally:
        op.task = None
    reply(Status.OK, result, True)


def _reply_put(
    session: Session, ev: Put | PutGet, op: Any, status: Status, _result: Any, later: bool
) -> None:
    if isinstance(ev, PutGet):
        value = op.pv.value if status.success else None
        reply: Event = PutGetResponse(ev.ioid, status, value=value)
    else:
        reply = PutResponse.unchecked(ev.ioid, status, False)
    _reply(session, ev.ioid, ev.destroy, reply, later)


def _reply(session: Session, ioid: int, destroy: bool, reply: Event, later: bool) -> None:
    """Send an operation's reply: ``later`` from a handler's task (it writes at once), else
    with the replies of the read being handled; a request that destroys its operation ends
    it here."""
    if destroy:
        session.ops.pop(ioid, None)
    (session.send_later if later else session.send)(reply)


def on_rpc_init(session: Session, ev: RPCInit) -> None:
    op = session.open_op(ev.sid, ev.ioid, ev.pv_request, "rpc")
    if op.pv.rpc_handler is None:
        session.refuse(RPCInitResponse(ev.ioid, Status.error(f"{op.name} does not support RPC")))
        return
    session.send(RPCInitResponse(ev.ioid))


def on_rpc(session: Session, ev: RPC, op: Op) -> None:
    handler = op.pv.rpc_handler
    assert handler is not None
    call = RpcOperation(op.pv, op.name, session.peer, ev.argument, dict(op.options))
    _run_handler(session, op, "rpc", handler, call, functools.partial(_reply_rpc, session, ev))


def _reply_rpc(session: Session, ev: RPC, status: Status, result: Any, later: bool) -> None:
    typed: VariantValue | None = None
    if status.success:
        try:
            typed = to_typed(result)
        except Exception as exc:
            status = Status.error(f"RPC handler returned an unusable value: {exc}")
    _reply(session, ev.ioid, ev.destroy, RPCResponse(ev.ioid, status, result=typed), later)


def on_process_init(session: Session, ev: ProcessInit) -> None:
    session.open_op(ev.sid, ev.ioid, ev.pv_request, "process")
    session.send(ProcessInitResponse(ev.ioid))


def on_process(session: Session, ev: Process, op: Op) -> None:
    refused = session.context.refused(session.peer, op.name, "process")
    if refused is None and op.pv.type is not None:
        op.pv.post({})  # processing a SharedPV re-posts its value (monitors see a fresh timestamp)
    _reply(session, ev.ioid, ev.destroy, ProcessResponse(ev.ioid, refused or Status.OK), False)


def status_of(exc: BaseException) -> Status:
    """A handler's exception as the error status its client sees."""
    if isinstance(exc, PvaAccessDeniedError):
        return Status.error(f"access denied: {exc}")
    return Status.error(str(exc) or type(exc).__name__)


def to_typed(result: Any) -> VariantValue:
    """An RPC handler's return value as a typed value: an ``nt.typed(...)`` value as it is, a
    dict as the structure inferred from it, a plain value as the NT ``nt.for_value`` picks."""
    if isinstance(result, VariantValue):
        return result
    if result is None:
        return VariantValue(Structure([]), {})
    if not isinstance(result, dict):
        from reckon.pva import nt

        return nt.typed_scalar(result)
    return VariantValue.of(result)


def _array_type(op: Any) -> ScalarArray | None:
    t = op.pv.type
    vt = None if t is None or "value" not in t else t["value"]
    return vt if isinstance(vt, ScalarArray) else None


def on_array_init(session: Session, ev: ArrayInit) -> None:
    op = session.open_op(ev.sid, ev.ioid, ev.pv_request, "array")
    at = _array_type(op)
    if at is None:
        session.refuse(ArrayInitResponse(ev.ioid, Status.error(f"{op.name} has no array value")))
        return
    session.send(ArrayInitResponse(ev.ioid, type=at))


def on_array_get(session: Session, ev: ArrayGet, op: Op) -> None:
    arr = op.pv.value["value"]
    end = len(arr) if ev.count == 0 else ev.offset + ev.count * max(ev.stride, 1)
    session.send(ArrayGetResponse(ev.ioid, value=arr[ev.offset : end : max(ev.stride, 1)]))


def on_array_write(session: Session, ev: ArrayPut | ArraySetLength, op: Op) -> None:
    """A put of a slice, or a new length: both are puts, under the PV's ``writable`` and the
    access hook. A value the PV cannot take is the client's error, not a reason to drop it.

    Growth (new elements are the type's zero, "" for strings) is bounded by what one message
    could carry: an offset or length is a 32-bit number in a message of a few bytes, and
    memory stays bounded whatever a peer asks."""
    reply = ArrayPutResponse if type(ev) is ArrayPut else ArraySetLengthResponse
    at = _array_type(op)
    if at is None or not op.pv.writable:
        status = Status.error(f"{op.name} is not writable")
    else:
        status = session.context.refused(session.peer, op.name, "put") or Status.OK
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


def on_array_get_length(session: Session, ev: ArrayGetLength, op: Op) -> None:
    session.send(ArrayGetLengthResponse(ev.ioid, length=len(op.pv.value["value"])))


def _on_op(
    handler: Callable[[Session, Any, Op], None],
) -> Callable[[Session, Any], None]:
    """``handler`` given the operation a request is for (a request for one the session does
    not have, destroyed meanwhile, is ignored)."""

    def handle(session: Session, ev: Any) -> None:
        op = session.ops.get(ev.ioid)
        if op is not None:
            handler(session, ev, op)

    return handle


#: the requests answered here, for the session's dispatch table
HANDLERS: dict[type, Callable[[Session, Any], None]] = {
    Put: _on_op(on_put),
    PutRead: _on_op(on_put_read),
    PutGetInit: on_put_get_init,
    PutGet: _on_op(on_put),
    PutGetRead: _on_op(on_put_get_read),
    RPCInit: on_rpc_init,
    RPC: _on_op(on_rpc),
    ProcessInit: on_process_init,
    Process: _on_op(on_process),
    ArrayInit: on_array_init,
    ArrayGet: _on_op(on_array_get),
    ArrayPut: _on_op(on_array_write),
    ArraySetLength: _on_op(on_array_write),
    ArrayGetLength: _on_op(on_array_get_length),
}
