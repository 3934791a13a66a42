"""Payloads of every application message: event -> bytes and bytes -> events.

Operation messages (get, put, monitor, ...) need context the bytes do not carry: the types
agreed at init and the last value of the request. The connection passes it in as a
:class:`OpContext`; everything else is self-contained, which is what the UDP side uses.
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ._bitset import BitSet
from ._codec import Codec, read_bitset
from ._constants import Command, MessageSeverity, StatusType
from ._errors import DecodeError, LocalProtocolError
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
from ._status import Status
from ._types import FieldDesc, Structure
from ._values import VariantValue
from ._wire import READ_STRING, U16, U32, read_size, size_bytes, string_bytes

INIT, DESTROY, GET, GET_PUT, PROCESS = 0x08, 0x10, 0x40, 0x80, 0x04


@dataclass(kw_only=True)
class OpContext:
    """What an operation's messages need from the connection: agreed types, last values."""

    command: int
    type: FieldDesc | None = None
    get_type: Structure | None = None
    value: Any = None
    get_value: Any = None


# ------------------------------------------------------------------------ primitives
def encode_status(s: Status, be: bool) -> bytes:
    if s.type == StatusType.OK and not s.message and not s.call_tree:
        return b"\xff"
    return bytes((int(s.type),)) + string_bytes(s.message, be) + string_bytes(s.call_tree, be)


def decode_status(data: bytes, pos: int, be: bool) -> tuple[Status, int]:
    b = data[pos]
    if b == 0xFF:
        return Status.OK, pos + 1
    if b > 3:
        raise DecodeError(f"status type {b} is not 0..3")
    rs = READ_STRING[be]
    msg, pos = rs(data, pos + 1)
    tree, pos = rs(data, pos)
    return Status(StatusType(b), msg, tree), pos


def encode_address(addr: str, any_as_zeros: bool = False) -> bytes:
    """16 bytes, IPv4 mapped into IPv6. pvxs writes "any" as 16 zero bytes in searches."""
    ip = ipaddress.ip_address(addr)
    if any_as_zeros and ip.packed == bytes(len(ip.packed)):
        return bytes(16)
    if isinstance(ip, ipaddress.IPv4Address):
        return b"\x00" * 10 + b"\xff\xff" + ip.packed
    return ip.packed


def decode_address(data: bytes, pos: int) -> tuple[str, int]:
    raw = data[pos : pos + 16]
    if len(raw) != 16:
        raise DecodeError("address runs past the end of the message")
    if raw[:12] == b"\x00" * 10 + b"\xff\xff":
        return str(ipaddress.IPv4Address(raw[12:])), pos + 16
    if raw == b"\x00" * 16:
        return "0.0.0.0", pos + 16
    return str(ipaddress.IPv6Address(raw)), pos + 16


def _variant(c: Codec, v: VariantValue | None, out: bytearray) -> None:
    if v is None:
        out.append(0xFF)
        return
    out += c.encode_type(v.type)
    c.encode_value(v.type, v.value, out)


def _read_variant(c: Codec, data: bytes, pos: int) -> tuple[VariantValue | None, int]:
    t, pos = c.decode_type(data, pos)
    if t is None:
        return None, pos
    saved = c.depth
    c.depth = saved + t.depth
    try:
        if c.depth > c.max_depth:
            raise DecodeError(f"value nested more than {c.max_depth} deep")
        value, pos = c.decode_value(t, data, pos)
    finally:
        c.depth = saved
    return VariantValue(t, value), pos


def _structure(t: FieldDesc | None, what: str) -> Structure:
    if not isinstance(t, Structure):
        raise DecodeError(f"{what} is not a structure")
    return t


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
        _variant(c, ev.pv_request if ev.pv_request is not None else _EMPTY_REQUEST, out)
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
    _variant(c, ev.status, out)
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
    _variant(c, ev.auth_data, out)
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
    _variant(c, ev.argument, out)
    return Command.RPC, bytes(out)


def _enc_rpc_resp(ev: RPCResponse, c: Codec) -> tuple[int, bytes]:
    out = _resp_head(ev, 0, c.big_endian)
    if ev.status.success:
        _variant(c, ev.result, out)
    return Command.RPC, bytes(out)


def _enc_authnz(ev: AuthNZ, c: Codec) -> tuple[int, bytes]:
    out = bytearray()
    _variant(c, ev.data, out)
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


# ------------------------------------------------------------------------ decoding
def decode_simple(cmd: int, data: bytes, c: Codec, from_server: bool) -> list[Event]:
    """Messages that need no operation context. Raises DecodeError for op commands."""
    be = c.big_endian
    u32 = U32[be].unpack_from
    u16 = U16[be].unpack_from
    rs = READ_STRING[be]
    pos = 0
    out: list[Event]
    if cmd == Command.BEACON:
        guid = data[0:12]
        if len(guid) != 12:
            raise DecodeError("truncated beacon")
        flags, seq = data[12], data[13]
        change = u16(data, 14)[0]
        addr, pos = decode_address(data, 16)
        port = u16(data, pos)[0]
        proto, pos = rs(data, pos + 2)
        status, pos = _read_variant(c, data, pos) if pos < len(data) else (None, pos)
        return [Beacon(bytes(guid), seq, change, addr, port, proto, flags, status)]
    if cmd == Command.CONNECTION_VALIDATION:
        if from_server:
            buf = u32(data, 0)[0]
            reg = u16(data, 4)[0]
            n, pos = read_size(data, 6, be)
            if n > len(data) - pos:
                raise DecodeError("auth method count is larger than the message")
            methods = []
            for _ in range(n):
                m, pos = rs(data, pos)
                methods.append(m)
            return [ConnectionValidationRequest(tuple(methods), buf, reg)]
        buf = u32(data, 0)[0]
        reg = u16(data, 4)[0]
        qos = u16(data, 6)[0]
        method, pos = rs(data, 8)
        auth: VariantValue | None = None
        if pos < len(data):
            auth, pos = _read_variant(c, data, pos)
        return [ConnectionValidationResponse(method, auth, buf, reg, qos)]
    if cmd == Command.CONNECTION_VALIDATED:
        st, pos = decode_status(data, 0, be)
        return [ConnectionValidated(st)]
    if cmd == Command.ECHO:
        return [Echo(bytes(data))]
    if cmd == Command.SEARCH:
        seq = u32(data, 0)[0]
        flags = data[4]
        addr, pos = decode_address(data, 8)
        port = u16(data, pos)[0]
        n, pos = read_size(data, pos + 2, be)
        if n > len(data) - pos:
            raise DecodeError("protocol count is larger than the message")
        protos = []
        for _ in range(n):
            p, pos = rs(data, pos)
            protos.append(p)
        nch = u16(data, pos)[0]
        pos += 2
        if nch * 5 > len(data) - pos:
            raise DecodeError("channel count is larger than the message")
        chans = []
        for _ in range(nch):
            cid = u32(data, pos)[0]
            name, pos = rs(data, pos + 4)
            chans.append((cid, name))
        return [
            SearchRequest(
                seq, tuple(chans), addr, port, bool(flags & 0x01), bool(flags & 0x80), tuple(protos)
            )
        ]
    if cmd == Command.SEARCH_RESPONSE:
        guid = data[0:12]
        if len(guid) != 12:
            raise DecodeError("truncated search response")
        seq = u32(data, 12)[0]
        addr, pos = decode_address(data, 16)
        port = u16(data, pos)[0]
        proto, pos = rs(data, pos + 2)
        found = data[pos] != 0
        n = u16(data, pos + 1)[0]
        pos += 3
        if n * 4 > len(data) - pos:
            raise DecodeError("cid count is larger than the message")
        cids = struct.unpack_from(("<" if not be else ">") + f"{n}I", data, pos)
        return [SearchResponse(bytes(guid), seq, addr, port, found, tuple(cids), proto)]
    if cmd == Command.ORIGIN_TAG:
        addr, pos = decode_address(data, 0)
        return [OriginTag(addr)]
    if cmd == Command.AUTHNZ:
        v, pos = _read_variant(c, data, 0)
        return [AuthNZ(v)]
    if cmd == Command.CREATE_CHANNEL:
        if from_server:
            cid, sid = u32(data, 0)[0], u32(data, 4)[0]
            st, pos = decode_status(data, 8, be)
            return [CreateChannelResponse(cid, sid, st)]
        n = u16(data, 0)[0]
        pos = 2
        if n * 5 > len(data) - pos:
            raise DecodeError("channel count is larger than the message")
        out = []
        for _ in range(n):
            cid = u32(data, pos)[0]
            name, pos = rs(data, pos + 4)
            if not name:
                raise DecodeError("empty channel name")
            out.append(CreateChannelRequest(cid, name))
        return out
    if cmd == Command.DESTROY_CHANNEL:
        return [DestroyChannel(u32(data, 0)[0], u32(data, 4)[0])]
    if cmd == Command.DESTROY_REQUEST:
        return [DestroyRequest(u32(data, 0)[0], u32(data, 4)[0])]
    if cmd == Command.CANCEL_REQUEST:
        return [CancelRequest(u32(data, 0)[0], u32(data, 4)[0])]
    if cmd == Command.MESSAGE:
        ioid = u32(data, 0)[0]
        sev = data[4]
        text, pos = rs(data, 5)
        return [Message(ioid, MessageSeverity(min(sev, 3)), text)]
    raise DecodeError(f"unknown or unexpected command 0x{cmd:02x}")


def op_ids(cmd: int, data: bytes, be: bool, from_server: bool) -> tuple[int, int, int]:
    """(sid or -1, ioid, subcommand) of an operation message."""
    u32 = U32[be].unpack_from
    if cmd == Command.GET_FIELD:
        if from_server:
            return -1, u32(data, 0)[0], 0
        return u32(data, 0)[0], u32(data, 4)[0], 0
    if from_server:
        return -1, u32(data, 0)[0], data[4]
    return u32(data, 0)[0], u32(data, 4)[0], data[8]


def decode_op_init(cmd: int, data: bytes, c: Codec) -> Event:
    """A client's INIT message (server side): sid, ioid, subcommand, pvRequest."""
    u32 = U32[c.big_endian].unpack_from
    sid, ioid, sub = u32(data, 0)[0], u32(data, 4)[0], data[8]
    req, pos = _read_variant(c, data, 9)
    if cmd == Command.GET:
        return GetInit(sid, ioid, req)
    if cmd == Command.PUT:
        return PutInit(sid, ioid, req)
    if cmd == Command.PUT_GET:
        return PutGetInit(sid, ioid, req)
    if cmd == Command.MONITOR:
        q = u32(data, pos)[0] if sub & GET_PUT else None
        return MonitorInit(sid, ioid, req, q)
    if cmd == Command.ARRAY:
        return ArrayInit(sid, ioid, req)
    if cmd == Command.PROCESS:
        return ProcessInit(sid, ioid, req)
    if cmd == Command.RPC:
        return RPCInit(sid, ioid, req)
    raise DecodeError(f"command 0x{cmd:02x} has no init")


def decode_op_request(cmd: int, data: bytes, c: Codec, op: OpContext) -> list[Event]:
    """A client's non-INIT operation message (server side)."""
    be = c.big_endian
    u32 = U32[be].unpack_from
    sid, ioid, sub = u32(data, 0)[0], u32(data, 4)[0], data[8]
    destroy = bool(sub & DESTROY)
    pos = 9
    if cmd == Command.GET:
        return [Get._trusted(sid, ioid, destroy)]
    if cmd == Command.PUT:
        if sub & GET:
            return [PutRead(sid, ioid, destroy)]
        st = _structure(op.type, "put type")
        mask, value, pos = c.decode_partial(st, data, pos, None)
        return [Put(sid, ioid, value, BitSet.from_mask(mask), destroy)]
    if cmd == Command.PUT_GET:
        if sub & GET:
            return [PutGetRead(sid, ioid, "get", destroy)]
        if sub & GET_PUT:
            return [PutGetRead(sid, ioid, "put", destroy)]
        st = _structure(op.type, "put type")
        mask, value, pos = c.decode_partial(st, data, pos, None)
        return [PutGet(sid, ioid, value, BitSet.from_mask(mask), destroy)]
    if cmd == Command.MONITOR:
        out: list[Event] = []
        if sub & GET_PUT:
            out.append(MonitorAck(sid, ioid, u32(data, pos)[0]))
        if sub & PROCESS:
            out.append(MonitorStart(sid, ioid) if sub & GET else MonitorStop(sid, ioid))
        if destroy:
            out.append(MonitorDestroy(sid, ioid))
        return out
    if cmd == Command.ARRAY:
        if sub & GET:
            off, pos = read_size(data, pos, be)
            cnt, pos = read_size(data, pos, be)
            stride, pos = read_size(data, pos, be)
            return [ArrayGet(sid, ioid, off, cnt, stride, destroy)]
        if sub & GET_PUT:
            n, pos = read_size(data, pos, be)
            return [ArraySetLength(sid, ioid, n, destroy)]
        if sub & PROCESS:
            return [ArrayGetLength(sid, ioid, destroy)]
        if op.type is None:
            raise DecodeError("array put before the array type is known")
        off, pos = read_size(data, pos, be)
        stride, pos = read_size(data, pos, be)
        value, pos = c.decode_value(op.type, data, pos)
        return [ArrayPut(sid, ioid, value, off, stride, destroy)]
    if cmd == Command.PROCESS:
        return [Process(sid, ioid, destroy)]
    if cmd == Command.RPC:
        arg, pos = _read_variant(c, data, pos)
        return [RPC(sid, ioid, arg, destroy)]
    if cmd == Command.GET_FIELD:
        name, pos = READ_STRING[be](data, 8)
        return [GetField(sid, ioid, name)]
    raise DecodeError(f"command 0x{cmd:02x} is not an operation")


def decode_op_response(cmd: int, data: bytes, c: Codec, op: OpContext) -> Event:
    """A server's operation message (client side). Updates ``op`` types on init."""
    be = c.big_endian
    ioid = U32[be].unpack_from(data, 0)[0]
    if cmd == Command.GET_FIELD:
        st, pos = decode_status(data, 4, be)
        t = None
        if st.success:
            t, pos = c.decode_type(data, pos)
        return GetFieldResponse(ioid, st, t)
    sub = data[4]
    destroy = bool(sub & DESTROY)
    if cmd == Command.MONITOR and not sub & INIT and not destroy:
        st_type = _structure(op.type, "monitor type")
        mask, value, pos = c.decode_partial(st_type, data, 5, op.value)
        overrun, pos = read_bitset(data, pos, be) if pos < len(data) else (0, pos)
        op.value = value
        ev: Event = MonitorUpdate._trusted(
            ioid, value, BitSet.from_mask(mask), BitSet.from_mask(overrun)
        )
        return ev
    st, pos = decode_status(data, 5, be)
    if cmd == Command.MONITOR and destroy and not sub & INIT:
        return MonitorFinish(ioid, st)
    ok = st.success
    if sub & INIT:
        if cmd == Command.PUT_GET:
            pt = gt = None
            if ok:
                pt, pos = c.decode_type(data, pos)
                gt, pos = c.decode_type(data, pos)
                op.type = _structure(pt, "put type")
                op.get_type = _structure(gt, "get type")
            put_t = op.type if ok and isinstance(op.type, Structure) else None
            return PutGetInitResponse(ioid, st, put_t, op.get_type if ok else None)
        if cmd in (Command.PROCESS, Command.RPC):
            return (ProcessInitResponse if cmd == Command.PROCESS else RPCInitResponse)(ioid, st)
        t = None
        if ok:
            t, pos = c.decode_type(data, pos)
            if cmd != Command.ARRAY:
                t = _structure(t, "operation type")
            op.type = t
        if cmd == Command.GET:
            return GetInitResponse(ioid, st, t)  # type: ignore[arg-type]
        if cmd == Command.PUT:
            return PutInitResponse(ioid, st, t)  # type: ignore[arg-type]
        if cmd == Command.MONITOR:
            return MonitorInitResponse(ioid, st, t)  # type: ignore[arg-type]
        if cmd == Command.ARRAY:
            return ArrayInitResponse(ioid, st, t)
        raise DecodeError(f"command 0x{cmd:02x} has no init")
    if cmd == Command.GET or (cmd == Command.PUT and sub & GET):
        value, mask = None, 0
        if ok:
            mask, value, pos = c.decode_partial(_structure(op.type, "type"), data, pos, op.value)
            op.value = value
        cls = GetResponse if cmd == Command.GET else PutReadResponse
        gr: Event = cls._trusted(ioid, st, value, BitSet.from_mask(mask), destroy)
        return gr
    if cmd == Command.PUT:
        return PutResponse(ioid, st, destroy)
    if cmd == Command.PUT_GET:
        part = "put" if sub & GET_PUT else "get"
        t = op.type if part == "put" else op.get_type
        value, mask = None, 0
        if ok:
            base = op.value if part == "put" else op.get_value
            mask, value, pos = c.decode_partial(_structure(t, "type"), data, pos, base)
            if part == "put":
                op.value = value
            else:
                op.get_value = value
        if sub & (GET | GET_PUT):
            return PutGetReadResponse(ioid, part, st, value, BitSet.from_mask(mask), destroy)  # type: ignore[arg-type]
        return PutGetResponse(ioid, st, value, BitSet.from_mask(mask), destroy)
    if cmd == Command.ARRAY:
        if sub & GET:
            value = None
            if ok:
                if op.type is None:
                    raise DecodeError("array get response before the array type is known")
                value, pos = c.decode_value(op.type, data, pos)
            return ArrayGetResponse(ioid, st, value, destroy)
        if sub & GET_PUT:
            return ArraySetLengthResponse(ioid, st, destroy)
        if sub & PROCESS:
            n = 0
            if ok:
                n, pos = read_size(data, pos, be)
            return ArrayGetLengthResponse(ioid, st, n & 0xFFFFFFFF, destroy)
        return ArrayPutResponse(ioid, st, destroy)
    if cmd == Command.PROCESS:
        return ProcessResponse(ioid, st, destroy)
    if cmd == Command.RPC:
        res = None
        if ok:
            res, pos = _read_variant(c, data, pos)
        return RPCResponse(ioid, st, res, destroy)
    raise DecodeError(f"command 0x{cmd:02x} is not an operation")


__all__ = ["OpContext", "decode_simple", "encode_event"]
