"""Readers: payload bytes to events (operation messages with their :class:`OpContext`)."""

from __future__ import annotations

import struct

from ._bitset import BitSet
from ._codec import Codec, read_bitset
from ._constants import Command, MessageSeverity
from ._errors import DecodeError
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
    decode_address,
    decode_status,
    read_variant,
    structure,
)
from ._types import Structure
from ._values import VariantValue
from ._wire import READ_STRING, U16, U32, read_size


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
        status, pos = read_variant(c, data, pos) if pos < len(data) else (None, pos)
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
            # valid by construction (decoded strings, a u32 and a u16): no checks
            return [ConnectionValidationRequest._trusted(tuple(methods), buf, reg)]
        buf = u32(data, 0)[0]
        reg = u16(data, 4)[0]
        qos = u16(data, 6)[0]
        method, pos = rs(data, 8)
        auth: VariantValue | None = None
        if pos < len(data):
            auth, pos = read_variant(c, data, pos)
        # valid by construction (a decoded string and variant, u32 and u16s): no checks
        return [ConnectionValidationResponse._trusted(method, auth, buf, reg, qos)]
    if cmd == Command.CONNECTION_VALIDATED:
        st, pos = decode_status(data, 0, be)
        return [ConnectionValidated._trusted(st)]
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
        # valid by construction (u32, u16, an address decode_address formatted): no checks
        return [
            SearchRequest._trusted(
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
        return [SearchResponse._trusted(bytes(guid), seq, addr, port, found, tuple(cids), proto)]
    if cmd == Command.ORIGIN_TAG:
        addr, pos = decode_address(data, 0)
        return [OriginTag(addr)]
    if cmd == Command.AUTHNZ:
        v, pos = read_variant(c, data, 0)
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
    req, pos = read_variant(c, data, 9)
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
        st = structure(op.type, "put type")
        mask, value, pos = c.decode_partial(st, data, pos, None)
        return [Put(sid, ioid, value, BitSet.from_mask(mask), destroy)]
    if cmd == Command.PUT_GET:
        if sub & GET:
            return [PutGetRead(sid, ioid, "get", destroy)]
        if sub & GET_PUT:
            return [PutGetRead(sid, ioid, "put", destroy)]
        st = structure(op.type, "put type")
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
        arg, pos = read_variant(c, data, pos)
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
        st_type = structure(op.type, "monitor type")
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
                op.type = structure(pt, "put type")
                op.get_type = structure(gt, "get type")
            put_t = op.type if ok and isinstance(op.type, Structure) else None
            return PutGetInitResponse(ioid, st, put_t, op.get_type if ok else None)
        if cmd in (Command.PROCESS, Command.RPC):
            return (ProcessInitResponse if cmd == Command.PROCESS else RPCInitResponse)(ioid, st)
        t = None
        if ok:
            t, pos = c.decode_type(data, pos)
            if cmd != Command.ARRAY:
                t = structure(t, "operation type")
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
            mask, value, pos = c.decode_partial(structure(op.type, "type"), data, pos, op.value)
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
            mask, value, pos = c.decode_partial(structure(t, "type"), data, pos, base)
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
            res, pos = read_variant(c, data, pos)
        return RPCResponse(ioid, st, res, destroy)
    raise DecodeError(f"command 0x{cmd:02x} is not an operation")


__all__ = ["decode_op_init", "decode_op_request", "decode_op_response", "decode_simple", "op_ids"]
