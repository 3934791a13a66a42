"""Writers: every application event to its (command, payload bytes)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ._codec import Codec
from ._constants import Command
from ._errors import LocalProtocolError
from ._events import (
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
    AuthNZ,
    Beacon,
    CancelRequest,
    ConnectionValidated,
    ConnectionValidationRequest,
    ConnectionValidationResponse,
    CreateChannelRequest,
    CreateChannelResponse,
    DestroyChannel,
    DestroyRequest,
    Echo,
    Event,
    Get,
    GetField,
    GetFieldResponse,
    GetInit,
    GetInitResponse,
    GetResponse,
    Message,
    MonitorAck,
    MonitorDestroy,
    MonitorFinish,
    MonitorInit,
    MonitorInitResponse,
    MonitorStart,
    MonitorStop,
    MonitorUpdate,
    OriginTag,
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
    PutInit,
    PutInitResponse,
    PutRead,
    PutReadResponse,
    PutResponse,
    RPCInit,
    RPCInitResponse,
    RPCResponse,
    SearchRequest,
    SearchResponse,
)
from ._messages import (
    DESTROY,
    GET,
    GET_PUT,
    INIT,
    PROCESS,
    OpContext,
    encode_address,
    encode_status,
    write_variant,
)
from ._types import Structure
from ._values import VariantValue
from ._wire import U16, U32, size_bytes, string_bytes


# ------------------------------------------------------------------------ encoding
def _op_head(ev: Any, sub: int, be: bool) -> bytearray:
    u = U32[be].pack
    out = bytearray(u(ev.sid))
    out += u(ev.ioid)
    out.append(sub)
    return out


def _resp_head(ev: Any, sub: int, be: bool) -> bytearray:
    out = bytearray(U32[be].pack(ev.ioid))
    out.append(sub | (DESTROY if getattr(ev, "destroy", False) else 0))
    out += encode_status(ev.status, be)
    return out


def _d(ev: Any) -> int:
    return DESTROY if ev.destroy else 0


def encode_event(ev: Event, c: Codec, op: OpContext | None = None) -> tuple[int, bytes]:
    """(command, payload) of an application event. ``op`` carries the types of the request
    for messages that hold values."""
    be = c.big_endian
    u32 = U32[be].pack
    t = type(ev)
    out: bytearray
    if t is GetResponse or t is PutReadResponse:
        assert isinstance(ev, (GetResponse, PutReadResponse))
        out = _resp_head(ev, 0 if t is GetResponse else GET, be)
        if ev.status.success:
            st = _need_struct(op, "type")
            if ev.value is None:
                raise LocalProtocolError(f"{t.__name__} with a success status needs a value")
            c.encode_partial(st, ev.value, ev.changed.mask, out)
        return (Command.GET if t is GetResponse else Command.PUT), bytes(out)
    if t is MonitorUpdate:
        assert isinstance(ev, MonitorUpdate)
        out = bytearray(u32(ev.ioid))
        out.append(0)
        c.encode_partial(_need_struct(op, "type"), ev.value, ev.changed.mask, out)
        out += ev.overrun.encode(be)
        return Command.MONITOR, bytes(out)
    if t is Get:
        assert isinstance(ev, Get)
        return Command.GET, bytes(_op_head(ev, _d(ev), be))
    if t is Put:
        assert isinstance(ev, Put)
        out = _op_head(ev, _d(ev), be)
        c.encode_partial(_need_struct(op, "type"), ev.value, ev.changed.mask, out)
        return Command.PUT, bytes(out)
    if t is PutResponse:
        assert isinstance(ev, PutResponse)
        return Command.PUT, bytes(_resp_head(ev, 0, be))
    if t is PutGet:
        assert isinstance(ev, PutGet)
        out = _op_head(ev, _d(ev), be)
        c.encode_partial(_need_struct(op, "type"), ev.value, ev.changed.mask, out)
        return Command.PUT_GET, bytes(out)
    if t is PutGetResponse:
        assert isinstance(ev, PutGetResponse)
        out = _resp_head(ev, 0, be)
        if ev.status.success:
            if op is None or op.get_type is None:
                raise LocalProtocolError("PutGetResponse before the get type is known")
            if ev.value is None:
                raise LocalProtocolError("PutGetResponse with a success status needs a value")
            c.encode_partial(op.get_type, ev.value, ev.changed.mask, out)
        return Command.PUT_GET, bytes(out)
    if t is PutGetRead:
        assert isinstance(ev, PutGetRead)
        sub = GET if ev.part == "get" else GET_PUT
        return Command.PUT_GET, bytes(_op_head(ev, sub | _d(ev), be))
    if t is PutGetReadResponse:
        assert isinstance(ev, PutGetReadResponse)
        out = _resp_head(ev, GET if ev.part == "get" else GET_PUT, be)
        if ev.status.success:
            pst: Structure | None = op.get_type if op is not None and ev.part == "get" else None
            if ev.part == "put" and op is not None and isinstance(op.type, Structure):
                pst = op.type
            if pst is None or ev.value is None:
                raise LocalProtocolError("PutGetReadResponse needs the types and a value")
            c.encode_partial(pst, ev.value, ev.changed.mask, out)
        return Command.PUT_GET, bytes(out)
    if t is PutRead:
        assert isinstance(ev, PutRead)
        return Command.PUT, bytes(_op_head(ev, GET | _d(ev), be))
    enc = _SIMPLE.get(t)
    if enc is None:
        raise LocalProtocolError(f"{t.__name__} is not an application message")
    cmd, payload = enc(ev, c)
    return cmd, payload


def _need_struct(op: OpContext | None, what: str) -> Structure:
    if op is None or not isinstance(op.type, Structure):
        raise LocalProtocolError(f"the request's {what} is not known yet (send the init first)")
    return op.type


def _init_req(cmd: int) -> Callable[[Any, Codec], tuple[int, bytes]]:
    def enc(ev: Any, c: Codec) -> tuple[int, bytes]:
        sub = INIT
        if isinstance(ev, MonitorInit) and ev.queue_size is not None:
            sub |= GET_PUT
        out = _op_head(ev, sub, c.big_endian)
        write_variant(c, ev.pv_request if ev.pv_request is not None else _EMPTY_REQUEST, out)
        if isinstance(ev, MonitorInit) and ev.queue_size is not None:
            out += U32[c.big_endian].pack(ev.queue_size)
        return cmd, bytes(out)

    return enc


def _init_resp(cmd: int, with_type: bool) -> Callable[[Any, Codec], tuple[int, bytes]]:
    def enc(ev: Any, c: Codec) -> tuple[int, bytes]:
        out = bytearray(U32[c.big_endian].pack(ev.ioid))
        out.append(INIT)
        out += encode_status(ev.status, c.big_endian)
        if with_type and ev.status.success:
            if ev.type is None:
                raise LocalProtocolError(f"{type(ev).__name__} with a success status needs a type")
            out += c.encode_type(ev.type)
        return cmd, bytes(out)

    return enc


def _status_resp(cmd: int, sub: int) -> Callable[[Any, Codec], tuple[int, bytes]]:
    def enc(ev: Any, c: Codec) -> tuple[int, bytes]:
        return cmd, bytes(_resp_head(ev, sub, c.big_endian))

    return enc


def _ids(cmd: int, a: str, b: str) -> Callable[[Any, Codec], tuple[int, bytes]]:
    def enc(ev: Any, c: Codec) -> tuple[int, bytes]:
        u = U32[c.big_endian].pack
        return cmd, u(getattr(ev, a)) + u(getattr(ev, b))

    return enc


def _enc_beacon(ev: Beacon, c: Codec) -> tuple[int, bytes]:
    be = c.big_endian
    out = bytearray(ev.guid)
    out += bytes((ev.flags, ev.sequence))
    out += U16[be].pack(ev.change_count)
    out += encode_address(ev.address)
    out += U16[be].pack(ev.port)
    out += string_bytes(ev.protocol, be)
    write_variant(c, ev.status, out)
    return Command.BEACON, bytes(out)


def _enc_cv_req(ev: ConnectionValidationRequest, c: Codec) -> tuple[int, bytes]:
    be = c.big_endian
    out = bytearray(U32[be].pack(ev.buffer_size))
    out += U16[be].pack(ev.registry_size)
    out += size_bytes(len(ev.auth_methods), be)
    for m in ev.auth_methods:
        out += string_bytes(m, be)
    return Command.CONNECTION_VALIDATION, bytes(out)


def _enc_cv_resp(ev: ConnectionValidationResponse, c: Codec) -> tuple[int, bytes]:
    be = c.big_endian
    out = bytearray(U32[be].pack(ev.buffer_size))
    out += U16[be].pack(ev.registry_size)
    out += U16[be].pack(ev.qos)
    out += string_bytes(ev.auth_method, be)
    write_variant(c, ev.auth_data, out)
    return Command.CONNECTION_VALIDATION, bytes(out)


def _enc_search(ev: SearchRequest, c: Codec) -> tuple[int, bytes]:
    be = c.big_endian
    out = bytearray(U32[be].pack(ev.sequence))
    out.append((0x01 if ev.reply_required else 0) | (0x80 if ev.unicast else 0))
    out += b"\x00\x00\x00"
    out += encode_address(ev.response_address, any_as_zeros=True)
    out += U16[be].pack(ev.response_port)
    out += size_bytes(len(ev.protocols), be)
    for p in ev.protocols:
        out += string_bytes(p, be)
    out += U16[be].pack(len(ev.channels))
    for cid, name in ev.channels:
        out += U32[be].pack(cid)
        out += string_bytes(name, be)
    return Command.SEARCH, bytes(out)


def _enc_search_resp(ev: SearchResponse, c: Codec) -> tuple[int, bytes]:
    be = c.big_endian
    out = bytearray(ev.guid)
    out += U32[be].pack(ev.sequence)
    out += encode_address(ev.address)
    out += U16[be].pack(ev.port)
    out += string_bytes(ev.protocol, be)
    out.append(1 if ev.found else 0)
    out += U16[be].pack(len(ev.cids))
    for cid in ev.cids:
        out += U32[be].pack(cid)
    return Command.SEARCH_RESPONSE, bytes(out)


def _enc_create(ev: CreateChannelRequest, c: Codec) -> tuple[int, bytes]:
    be = c.big_endian
    return (
        Command.CREATE_CHANNEL,
        U16[be].pack(1) + U32[be].pack(ev.cid) + string_bytes(ev.name, be),
    )


def _enc_create_resp(ev: CreateChannelResponse, c: Codec) -> tuple[int, bytes]:
    be = c.big_endian
    u = U32[be].pack
    return Command.CREATE_CHANNEL, u(ev.cid) + u(ev.sid) + encode_status(ev.status, be)


def _enc_simple_sub(cmd: int, sub: int) -> Callable[[Any, Codec], tuple[int, bytes]]:
    def enc(ev: Any, c: Codec) -> tuple[int, bytes]:
        return cmd, bytes(
            _op_head(ev, sub | (_d(ev) if hasattr(ev, "destroy") else 0), c.big_endian)
        )

    return enc


def _enc_ack(ev: MonitorAck, c: Codec) -> tuple[int, bytes]:
    out = _op_head(ev, GET_PUT, c.big_endian)
    out += U32[c.big_endian].pack(ev.nfree)
    return Command.MONITOR, bytes(out)


def _enc_finish(ev: MonitorFinish, c: Codec) -> tuple[int, bytes]:
    out = bytearray(U32[c.big_endian].pack(ev.ioid))
    out.append(DESTROY)
    out += encode_status(ev.status, c.big_endian)
    return Command.MONITOR, bytes(out)


def _enc_array_get(ev: ArrayGet, c: Codec) -> tuple[int, bytes]:
    be = c.big_endian
    out = _op_head(ev, GET | _d(ev), be)
    out += size_bytes(ev.offset, be) + size_bytes(ev.count, be) + size_bytes(ev.stride, be)
    return Command.ARRAY, bytes(out)


def _enc_array_set_length(ev: ArraySetLength, c: Codec) -> tuple[int, bytes]:
    be = c.big_endian
    out = _op_head(ev, GET_PUT | _d(ev), be)
    out += size_bytes(ev.length, be)
    return Command.ARRAY, bytes(out)


def _enc_array_len_resp(ev: ArrayGetLengthResponse, c: Codec) -> tuple[int, bytes]:
    out = _resp_head(ev, PROCESS, c.big_endian)
    if ev.status.success:
        out += size_bytes(ev.length, c.big_endian)
    return Command.ARRAY, bytes(out)


def _enc_get_field(ev: GetField, c: Codec) -> tuple[int, bytes]:
    be = c.big_endian
    return Command.GET_FIELD, U32[be].pack(ev.sid) + U32[be].pack(ev.ioid) + string_bytes(
        ev.sub_field, be
    )


def _enc_get_field_resp(ev: GetFieldResponse, c: Codec) -> tuple[int, bytes]:
    be = c.big_endian
    out = bytearray(U32[be].pack(ev.ioid))
    out += encode_status(ev.status, be)
    if ev.status.success:
        out += c.encode_type(ev.type)
    return Command.GET_FIELD, bytes(out)


def _enc_message(ev: Message, c: Codec) -> tuple[int, bytes]:
    be = c.big_endian
    return Command.MESSAGE, U32[be].pack(ev.ioid) + bytes((int(ev.severity),)) + string_bytes(
        ev.text, be
    )


def _enc_rpc(ev: RPC, c: Codec) -> tuple[int, bytes]:
    out = _op_head(ev, _d(ev), c.big_endian)
    write_variant(c, ev.argument, out)
    return Command.RPC, bytes(out)


def _enc_rpc_resp(ev: RPCResponse, c: Codec) -> tuple[int, bytes]:
    out = _resp_head(ev, 0, c.big_endian)
    if ev.status.success:
        write_variant(c, ev.result, out)
    return Command.RPC, bytes(out)


def _enc_authnz(ev: AuthNZ, c: Codec) -> tuple[int, bytes]:
    out = bytearray()
    write_variant(c, ev.data, out)
    return Command.AUTHNZ, bytes(out)


_SIMPLE: dict[type, Callable[[Any, Codec], tuple[int, bytes]]] = {
    Beacon: _enc_beacon,
    ConnectionValidationRequest: _enc_cv_req,
    ConnectionValidationResponse: _enc_cv_resp,
    ConnectionValidated: lambda ev, c: (
        Command.CONNECTION_VALIDATED,
        encode_status(ev.status, c.big_endian),
    ),
    Echo: lambda ev, c: (Command.ECHO, ev.payload),
    SearchRequest: _enc_search,
    SearchResponse: _enc_search_resp,
    OriginTag: lambda ev, c: (Command.ORIGIN_TAG, encode_address(ev.address)),
    AuthNZ: _enc_authnz,
    CreateChannelRequest: _enc_create,
    CreateChannelResponse: _enc_create_resp,
    DestroyChannel: _ids(Command.DESTROY_CHANNEL, "sid", "cid"),
    DestroyRequest: _ids(Command.DESTROY_REQUEST, "sid", "ioid"),
    CancelRequest: _ids(Command.CANCEL_REQUEST, "sid", "ioid"),
    Message: _enc_message,
    GetInit: _init_req(Command.GET),
    GetInitResponse: _init_resp(Command.GET, True),
    PutInit: _init_req(Command.PUT),
    PutInitResponse: _init_resp(Command.PUT, True),
    PutGetInit: _init_req(Command.PUT_GET),
    MonitorInit: _init_req(Command.MONITOR),
    MonitorInitResponse: _init_resp(Command.MONITOR, True),
    MonitorStart: _enc_simple_sub(Command.MONITOR, GET | PROCESS),
    MonitorStop: _enc_simple_sub(Command.MONITOR, PROCESS),
    MonitorAck: _enc_ack,
    MonitorDestroy: _enc_simple_sub(Command.MONITOR, DESTROY),
    MonitorFinish: _enc_finish,
    ArrayInit: _init_req(Command.ARRAY),
    ArrayInitResponse: _init_resp(Command.ARRAY, True),
    ArrayGet: _enc_array_get,
    ArrayPutResponse: _status_resp(Command.ARRAY, 0),
    ArraySetLength: _enc_array_set_length,
    ArraySetLengthResponse: _status_resp(Command.ARRAY, GET_PUT),
    ArrayGetLength: _enc_simple_sub(Command.ARRAY, PROCESS),
    ArrayGetLengthResponse: _enc_array_len_resp,
    ProcessInit: _init_req(Command.PROCESS),
    ProcessInitResponse: _init_resp(Command.PROCESS, False),
    Process: _enc_simple_sub(Command.PROCESS, 0),
    ProcessResponse: _status_resp(Command.PROCESS, 0),
    GetField: _enc_get_field,
    GetFieldResponse: _enc_get_field_resp,
    RPCInit: _init_req(Command.RPC),
    RPCInitResponse: _init_resp(Command.RPC, False),
    RPC: _enc_rpc,
    RPCResponse: _enc_rpc_resp,
}


def _enc_putget_init_resp(ev: PutGetInitResponse, c: Codec) -> tuple[int, bytes]:
    out = bytearray(U32[c.big_endian].pack(ev.ioid))
    out.append(INIT)
    out += encode_status(ev.status, c.big_endian)
    if ev.status.success:
        if ev.put_type is None or ev.get_type is None:
            raise LocalProtocolError("PutGetInitResponse with a success status needs both types")
        out += c.encode_type(ev.put_type)
        out += c.encode_type(ev.get_type)
    return Command.PUT_GET, bytes(out)


_SIMPLE[PutGetInitResponse] = _enc_putget_init_resp


def encode_array_event(ev: Event, c: Codec, op: OpContext | None) -> tuple[int, bytes]:
    """ArrayPut / ArrayGetResponse: values of the array type agreed at init."""
    if op is None or op.type is None:
        raise LocalProtocolError("the array type is not known yet (send the init first)")
    be = c.big_endian
    if isinstance(ev, ArrayPut):
        out = _op_head(ev, _d(ev), be)
        out += size_bytes(ev.offset, be) + size_bytes(ev.stride, be)
        c.encode_value(op.type, ev.value, out)
        return Command.ARRAY, bytes(out)
    assert isinstance(ev, ArrayGetResponse)
    out = _resp_head(ev, GET, be)
    if ev.status.success:
        c.encode_value(op.type, ev.value, out)
    return Command.ARRAY, bytes(out)


_EMPTY_REQUEST = VariantValue(Structure([]), {})


__all__ = ["encode_array_event", "encode_event"]
