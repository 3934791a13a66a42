"""Every row of the message table and of the operation table, through both receive paths.

The message table: for every row, in both byte orders, an event written by the generated
writer and read back by the generated reader is the same event, and the bytes read and
written again are the same bytes. The operation table: for each message a client sends on an
operation (every row of ``OPERATIONS`` sent by the client, and every message that opens one),
two server connections in the same state take the same bytes: one through
``receive_message`` (the framer skipped for one whole message), the other through
``receive_data`` and ``next_event``. They must give the same events and end in the same state.
For each message the server sends, the client reads the event it was sent, and the server
writes the same bytes for the event the client read."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reckon.pva.protocol import (
    MESSAGES,
    NEED_DATA,
    OPENERS,
    OPERATIONS,
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
    BitSet,
    CancelRequest,
    Codec,
    ConnectionValidated,
    ConnectionValidationRequest,
    ConnectionValidationResponse,
    CreateChannelRequest,
    CreateChannelResponse,
    DestroyChannel,
    DestroyRequest,
    Echo,
    Get,
    GetField,
    GetFieldResponse,
    GetInit,
    GetInitResponse,
    GetResponse,
    Message,
    MessageSeverity,
    MonitorAck,
    MonitorDestroy,
    MonitorFinish,
    MonitorInit,
    MonitorInitResponse,
    MonitorStart,
    MonitorStop,
    MonitorUpdate,
    OpContext,
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
    Role,
    RPCInit,
    RPCInitResponse,
    RPCResponse,
    SearchRequest,
    SearchResponse,
    Status,
    VariantValue,
    nt,
    pv_request,
    read_message,
    write_payload,
)

NT = nt.NTScalar("d")
ARR = nt.NTScalarArray("d")
SID, CID = 2, 1
#: command's init and its successful response (type) per kind of operation
INIT: dict[type, Any] = {
    GetInit: lambda ioid, req: (GetInit(SID, ioid, req), GetInitResponse(ioid, type=NT.type)),
    PutInit: lambda ioid, req: (PutInit(SID, ioid, req), PutInitResponse(ioid, type=NT.type)),
    PutGetInit: lambda ioid, req: (
        PutGetInit(SID, ioid, req),
        PutGetInitResponse(ioid, put_type=NT.type, get_type=NT.type),
    ),
    MonitorInit: lambda ioid, req: (
        MonitorInit(SID, ioid, req),
        MonitorInitResponse(ioid, type=NT.type),
    ),
    ArrayInit: lambda ioid, req: (
        ArrayInit(SID, ioid, req),
        ArrayInitResponse(ioid, type=ARR.type["value"]),
    ),
    ProcessInit: lambda ioid, req: (ProcessInit(SID, ioid, req), ProcessInitResponse(ioid)),
    RPCInit: lambda ioid, req: (RPCInit(SID, ioid, req), RPCInitResponse(ioid)),
}
#: an operation message -> the init of its operation kind
KIND: dict[type, type] = {
    Get: GetInit,
    Put: PutInit,
    PutRead: PutInit,
    PutGet: PutGetInit,
    PutGetRead: PutGetInit,
    ArrayGet: ArrayInit,
    ArrayPut: ArrayInit,
    ArraySetLength: ArrayInit,
    ArrayGetLength: ArrayInit,
    Process: ProcessInit,
    RPC: RPCInit,
    MonitorStart: MonitorInit,
    MonitorStop: MonitorInit,
    MonitorAck: MonitorInit,
    MonitorDestroy: MonitorInit,
    DestroyRequest: GetInit,
    CancelRequest: GetInit,
    GetResponse: GetInit,
    PutResponse: PutInit,
    PutReadResponse: PutInit,
    PutGetResponse: PutGetInit,
    PutGetReadResponse: PutGetInit,
    ArrayGetResponse: ArrayInit,
    ArrayPutResponse: ArrayInit,
    ArraySetLengthResponse: ArrayInit,
    ArrayGetLengthResponse: ArrayInit,
    ProcessResponse: ProcessInit,
    RPCResponse: RPCInit,
    MonitorUpdate: MonitorInit,
    MonitorFinish: MonitorInit,
}
#: a response -> the request whose execution it answers (None: sent as the monitor runs)
ASKED: dict[type, Any] = {
    GetResponse: lambda ioid, d: Get(SID, ioid, d),
    PutResponse: lambda ioid, d: Put(SID, ioid, NT.wrap(1.0), BitSet([1]), d),
    PutReadResponse: lambda ioid, d: PutRead(SID, ioid, d),
    PutGetResponse: lambda ioid, d: PutGet(SID, ioid, NT.wrap(1.0), BitSet([1]), d),
    PutGetReadResponse: lambda ioid, d: PutGetRead(SID, ioid, "get", d),
    ArrayGetResponse: lambda ioid, d: ArrayGet(SID, ioid, 0, 0, 1, d),
    ArrayPutResponse: lambda ioid, d: ArrayPut(SID, ioid, np.arange(3.0), 0, 1, d),
    ArraySetLengthResponse: lambda ioid, d: ArraySetLength(SID, ioid, 3, d),
    ArrayGetLengthResponse: lambda ioid, d: ArrayGetLength(SID, ioid, d),
    ProcessResponse: lambda ioid, d: Process(SID, ioid, d),
    RPCResponse: lambda ioid, d: RPC(SID, ioid, VariantValue.of(1.5), d),
    GetFieldResponse: None,
    MonitorUpdate: None,
    MonitorFinish: None,
}


def _request(t: type, ioid: int, value: float, destroy: bool) -> Any:
    """An instance of the client's message ``t`` on operation ``ioid``."""
    v = NT.wrap(value)
    return {
        Get: lambda: Get(SID, ioid, destroy),
        Put: lambda: Put(SID, ioid, v, BitSet([NT.type.offset_of("value")]), destroy),
        PutRead: lambda: PutRead(SID, ioid, destroy),
        PutGet: lambda: PutGet(SID, ioid, v, BitSet([1]), destroy),
        PutGetRead: lambda: PutGetRead(SID, ioid, "put" if destroy else "get", destroy),
        ArrayGet: lambda: ArrayGet(SID, ioid, 1, 2, 1, destroy),
        ArrayPut: lambda: ArrayPut(SID, ioid, np.full(3, value), 0, 1, destroy),
        ArraySetLength: lambda: ArraySetLength(SID, ioid, 4, destroy),
        ArrayGetLength: lambda: ArrayGetLength(SID, ioid, destroy),
        Process: lambda: Process(SID, ioid, destroy),
        RPC: lambda: RPC(SID, ioid, VariantValue.of(value), destroy),
        MonitorStart: lambda: MonitorStart(SID, ioid),
        MonitorStop: lambda: MonitorStop(SID, ioid),
        MonitorAck: lambda: MonitorAck(SID, ioid, 3),
        MonitorDestroy: lambda: MonitorDestroy(SID, ioid),
        DestroyRequest: lambda: DestroyRequest(SID, ioid),
        CancelRequest: lambda: CancelRequest(SID, ioid),
    }[t]()


def _response(t: type, ioid: int, value: float) -> Any:
    """An instance of the server's message ``t`` on operation ``ioid``."""
    v = NT.wrap(value)
    changed = BitSet([NT.type.offset_of("value")])
    return {
        GetResponse: lambda: GetResponse(ioid, value=v, changed=changed),
        PutResponse: lambda: PutResponse(ioid),
        PutReadResponse: lambda: PutReadResponse(ioid, value=v, changed=changed),
        PutGetResponse: lambda: PutGetResponse(ioid, value=v),
        PutGetReadResponse: lambda: PutGetReadResponse(ioid, "get", value=v),
        ArrayGetResponse: lambda: ArrayGetResponse(ioid, value=np.full(2, value)),
        ArrayPutResponse: lambda: ArrayPutResponse(ioid),
        ArraySetLengthResponse: lambda: ArraySetLengthResponse(ioid),
        ArrayGetLengthResponse: lambda: ArrayGetLengthResponse(ioid, length=7),
        ProcessResponse: lambda: ProcessResponse(ioid),
        RPCResponse: lambda: RPCResponse(ioid, result=VariantValue.of(value)),
        GetFieldResponse: lambda: GetFieldResponse(ioid, type=NT.type),
        MonitorUpdate: lambda: MonitorUpdate(ioid, v, changed),
        MonitorFinish: lambda: MonitorFinish(ioid, Status.OK),
    }[t]()


Pair = Any  # conftest's Pair, given by the make_pair fixture


def _state(p: Pair) -> Any:
    s = p.server
    return (
        s.state,
        s.bytes_received,
        s.bytes_sent,
        {i: (r.command, r.sid, r.state, r.last, r.cancelled) for i, r in s.requests.items()},
    )


def _pairs(make: Any, be: bool) -> tuple[Pair, Pair]:
    """Two pairs in the same state: the first's server takes one whole message at a time
    (``receive_message``), the second's buffers bytes (``receive_data``)."""
    a = make(big_endian=be)
    b = make(big_endian=be)
    for p in (a, b):
        p.channel(CID, "x", SID)
    return a, b


def _both(a: Pair, b: Pair, ev: Any) -> None:
    for p in (a, b):
        p.c2s(ev)


def _open(a: Pair, b: Pair, kind: type, ioid: int, request: Any) -> None:
    init, answer = INIT[kind](ioid, request)
    _both(a, b, init)
    for p in (a, b):
        p.s2c(answer)


def _receive(a: Pair, b: Pair, ev: Any) -> bool:
    """The client's bytes for ``ev`` into both servers: one whole message, buffered bytes."""
    data = a.client.send(ev)
    assert b.client.send(ev) == data
    whole = a.server.receive_message(data)
    taken = whole is not None
    if whole is None:
        a.server.receive_data(data)
        whole = list(a.server.events())
    assert a.server.next_event() is NEED_DATA
    b.server.receive_data(data)
    general = list(b.server.events())
    assert whole == general
    assert _state(a) == _state(b)
    return taken


REQUEST_ROWS = sorted((t for t, row in OPERATIONS.items() if row.by is Role.CLIENT), key=str)
RESPONSE_ROWS = sorted((t for t, row in OPERATIONS.items() if row.by is Role.SERVER), key=str)
REQUESTS = [None, pv_request("field()"), pv_request("field(value)record[process=true]")]


def test_every_row_is_covered() -> None:
    opener_rows = set(OPENERS) - {GetField}
    assert set(INIT) == opener_rows
    assert set(REQUEST_ROWS) <= set(KIND)
    assert {t for t in RESPONSE_ROWS if t not in INIT.values()} <= set(ASKED) | {
        t for t in RESPONSE_ROWS if t.__name__.endswith("InitResponse")
    }


# Every differential test: a few examples per row (each builds a connected pair), no deadline.
EXAMPLES = settings(
    max_examples=10,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


@pytest.mark.parametrize("opener", sorted(OPENERS, key=str))
@EXAMPLES
@given(
    be=st.booleans(),
    ioid=st.integers(1, 0xFFFFFFFF),
    req=st.sampled_from(REQUESTS),
    twice=st.booleans(),
)
def test_opening_an_operation(
    make_pair: Any, opener: type, be: bool, ioid: int, req: Any, twice: bool
) -> None:
    a, b = _pairs(make_pair, be)
    if opener is GetField:
        _receive(a, b, GetField(SID, ioid, "value" if twice else ""))
        return
    if twice:  # another operation open already
        _open(a, b, opener, 7 if ioid != 7 else 8, req)
    init, _ = INIT[opener](ioid, req)
    assert _receive(a, b, init), "one whole message is always taken"


@pytest.mark.parametrize("row", REQUEST_ROWS, ids=lambda t: t.__name__)
@EXAMPLES
@given(
    be=st.booleans(),
    ioid=st.integers(1, 0xFFFFFFFF),
    value=st.floats(allow_nan=False),
    destroy=st.booleans(),
    busy=st.booleans(),
)
def test_a_request_on_an_operation(
    make_pair: Any, row: type, be: bool, ioid: int, value: float, destroy: bool, busy: bool
) -> None:
    a, b = _pairs(make_pair, be)
    kind = KIND[row]
    _open(a, b, kind, ioid, REQUESTS[1])
    if kind is MonitorInit and busy:
        _both(a, b, MonitorStart(SID, ioid))
    elif busy and row in (CancelRequest, DestroyRequest):
        _both(a, b, Get(SID, ioid))  # executing: a cancel has something to cancel
    assert _receive(a, b, _request(row, ioid, value, destroy))


@pytest.mark.parametrize("row", RESPONSE_ROWS, ids=lambda t: t.__name__)
@EXAMPLES
@given(
    be=st.booleans(),
    ioid=st.integers(1, 0xFFFFFFFF),
    value=st.floats(allow_nan=False),
    destroy=st.booleans(),
    ok=st.booleans(),
)
def test_a_response(
    make_pair: Any, row: type, be: bool, ioid: int, value: float, destroy: bool, ok: bool
) -> None:
    a, b = _pairs(make_pair, be)
    if row.__name__.endswith("InitResponse"):
        kind = next(k for k, make in INIT.items() if type(make(1, None)[1]) is row)
        init, answer = INIT[kind](ioid, REQUESTS[1])
        _both(a, b, init)
        if not ok:
            answer = row(ioid, Status.error("refused"))
    else:
        if row is GetFieldResponse:
            _both(a, b, GetField(SID, ioid, ""))
        else:
            _open(a, b, KIND[row], ioid, REQUESTS[1])
            ask = ASKED[row]
            if ask is None:
                _both(a, b, MonitorStart(SID, ioid))
            else:
                _both(a, b, ask(ioid, destroy))
        answer = _response(row, ioid, value)
    sent = bytes(a.server.send(answer))
    a.client.receive_data(sent)
    got = list(a.client.events())
    if got:  # (a reply to a destroyed operation is dropped)
        [read] = got
        assert type(read) is type(answer)
        # the event the client read, sent by the other server, is the same bytes
        assert bytes(b.server.send(read)) == sent


#: an example of every message outside operations
OTHERS: dict[type, Any] = {
    Beacon: Beacon(b"g" * 12, 3, 2, "10.0.0.1", 5076, "tcp", 1, VariantValue.of(2.5)),
    ConnectionValidationRequest: ConnectionValidationRequest(("anonymous", "ca"), 100, 7),
    ConnectionValidationResponse: ConnectionValidationResponse.ca("alice", "box"),
    ConnectionValidated: ConnectionValidated(Status.error("no", "tree")),
    Echo: Echo(b"ping"),
    SearchRequest: SearchRequest(9, ((1, "a"), (2, "bé")), "10.0.0.2", 5076, True, True),
    SearchResponse: SearchResponse(b"h" * 12, 9, "::1", 5075, True, (1, 2, 3)),
    OriginTag: OriginTag("10.1.2.3"),
    AuthNZ: AuthNZ(VariantValue.of("x")),
    CreateChannelRequest: CreateChannelRequest(4, "pv:name"),
    CreateChannelResponse: CreateChannelResponse(4, 5, Status.OK),
    DestroyChannel: DestroyChannel(5, 4),
    DestroyRequest: DestroyRequest(5, 6),
    CancelRequest: CancelRequest(5, 6),
    Message: Message(6, MessageSeverity.WARNING, "careful"),
    GetField: GetField(SID, 6, "value"),
    GetFieldResponse: GetFieldResponse(6, type=NT.type),
}


def _example(t: type) -> Any:
    """An instance of the message ``t`` and the operation context its value needs."""
    op = OpContext(command=0, type=NT.type, get_type=NT.type)
    if t in OTHERS:
        return OTHERS[t], op
    for kind, make in INIT.items():
        init, answer = make(6, pv_request("field(value)"))
        if t is kind:
            return init, op
        if t is type(answer):
            return answer, op
    if t in (ArrayGetResponse, ArrayPut):
        op.type = ARR.type["value"]
    if any(r.event is t and r.sender == "client" for r in MESSAGES):
        return _request(t, 6, 1.5, True), op
    return _response(t, 6, 1.5), op


@pytest.mark.parametrize("be", [False, True], ids=["little", "big"])
@pytest.mark.parametrize("row", MESSAGES, ids=lambda r: r.event.__name__)
def test_every_message_row_reads_what_it_writes(row: Any, be: bool) -> None:
    """Event -> bytes -> the same event, and bytes -> event -> the same bytes."""
    ev, op = _example(row.event)
    if hasattr(ev, "changed"):  # every field travels (a partial value reads as a whole one)
        ev = ev._replaced(changed=BitSet.from_mask(1))
    codec = Codec(big_endian=be)
    out = bytearray()
    assert write_payload(ev, codec, op, out) == row.command
    read_op = OpContext(command=0, type=op.type, get_type=op.get_type)
    got = read_message(int(row.command), bytes(out), codec, row.sender == "server", read_op)
    assert got[0] == ev and type(got[0]) is type(ev)
    again = bytearray()
    write_payload(got[0], codec, op, again)
    assert again == out
