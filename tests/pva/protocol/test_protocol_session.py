"""A client and a server connection paired in memory through a whole session."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from reckon.pva.protocol import (
    NEED_DATA,
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
    BitSet,
    CancelRequest,
    ConnectionClosed,
    ConnectionState,
    ControlEchoRequest,
    DestroyChannel,
    DestroyRequest,
    Echo,
    Get,
    GetField,
    GetFieldResponse,
    GetInit,
    GetInitResponse,
    GetResponse,
    LocalProtocolError,
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
    PutResponse,
    RemoteProtocolError,
    RequestState,
    RPCInit,
    RPCInitResponse,
    RPCResponse,
    ScalarArray,
    Status,
    Structure,
    VariantValue,
    nt,
    pv_request,
    request_fields,
    request_options,
)
from reckon.pva.protocol import (
    SetByteOrder as SetByteOrderEvent,
)

NT = nt.NTScalar("d")


def test_handshake_states_and_credentials(pair: Any) -> None:
    assert pair.server.state is ConnectionState.VALIDATED
    assert pair.client.state is ConnectionState.VALIDATED
    assert pair.client.big_endian == pair.server.big_endian


def test_get_put_and_partial_updates(pair: Any) -> None:
    pair.channel(1, "pv:temp", 100)
    [init] = pair.c2s(GetInit(100, 1, pv_request("field(value,alarm)")))
    assert isinstance(init, GetInit)
    assert pair.s2c(GetInitResponse(1, type=NT.type)) == [GetInitResponse(1, type=NT.type)]
    v = NT.wrap(1.0, severity=2, message="hot")
    assert pair.c2s(Get(100, 1)) == [Get(100, 1)]
    [r] = pair.s2c(GetResponse(1, value=v))
    assert isinstance(r, GetResponse) and r.value == v and r.changed == BitSet([0])
    # second get: only "value" travels; the client merges it into what it had
    pair.c2s(Get(100, 1))
    v2 = dict(v, value=2.0)
    [r2] = pair.s2c(GetResponse(1, value=v2, changed=BitSet([NT.type.offset_of("value")])))
    assert r2.value == v2 and r2.value["alarm"]["message"] == "hot"
    # get with destroy removes the request on both sides after the response
    pair.c2s(Get(100, 1, destroy=True))
    pair.s2c(GetResponse(1, value=v2))
    assert 1 not in pair.client.requests and 1 not in pair.server.requests

    pair.c2s(PutInit(100, 2))
    pair.s2c(PutInitResponse(2, type=NT.type))
    changed = BitSet([NT.type.offset_of("value"), NT.type.offset_of("alarm.severity")])
    [put] = pair.c2s(Put(100, 2, {"value": 5.0, "alarm": {"severity": 1}}, changed))
    assert isinstance(put, Put) and put.changed == changed
    assert put.value["value"] == 5.0 and put.value["alarm"]["severity"] == 1
    assert put.value["alarm"]["message"] == ""  # not sent: default
    assert pair.s2c(PutResponse(2)) == [PutResponse(2)]
    pair.c2s(Put(100, 2, NT.wrap(6.0)))
    assert pair.s2c(PutResponse(2, Status.error("read-only"))) == [
        PutResponse(2, Status.error("read-only"))
    ]


def test_put_get_and_reads(pair: Any) -> None:
    pair.channel(1, "calc", 7)
    put_t = Structure([("value", "i")])
    get_t = Structure([("value", "i"), ("result", "d")])
    pair.c2s(PutGetInit(7, 3))
    [ir] = pair.s2c(PutGetInitResponse(3, put_type=put_t, get_type=get_t))
    assert isinstance(ir, PutGetInitResponse) and ir.get_type == get_t
    [pg] = pair.c2s(PutGet(7, 3, {"value": 4}))
    assert isinstance(pg, PutGet) and pg.value == {"value": 4}
    [resp] = pair.s2c(PutGetResponse(3, value={"value": 4, "result": 16.0}))
    assert isinstance(resp, PutGetResponse) and resp.value == {"value": 4, "result": 16.0}
    for part, t, val in (
        ("get", get_t, {"value": 4, "result": 16.0}),
        ("put", put_t, {"value": 4}),
    ):
        [rd] = pair.c2s(PutGetRead(7, 3, part))  # type: ignore[arg-type]
        assert isinstance(rd, PutGetRead) and rd.part == part
        [rr] = pair.s2c(PutGetReadResponse(3, part, value=val))  # type: ignore[arg-type]
        assert isinstance(rr, PutGetReadResponse) and rr.value == val and t is not None


def test_monitor_pipeline_finish_and_overrun(pair: Any) -> None:
    pair.channel(5, "counter", 9)
    req = pv_request("field(value)record[pipeline=true,queueSize=2]")
    assert request_options(req) == {"pipeline": "true", "queueSize": "2"}
    [mi] = pair.c2s(MonitorInit(9, 11, req, queue_size=2))
    assert isinstance(mi, MonitorInit) and mi.queue_size == 2
    assert pair.server.requests[11].queue_size == 2
    pair.s2c(MonitorInitResponse(11, type=NT.type))
    pair.c2s(MonitorStart(9, 11))
    assert pair.server.requests[11].state is RequestState.RUNNING
    values = [NT.wrap(float(i)) for i in range(5)]
    got = []
    for i, v in enumerate(values):
        changed = BitSet([0]) if i == 0 else BitSet([1])
        got += pair.s2c(MonitorUpdate(11, v, changed, overrun=BitSet([1]) if i == 3 else BitSet()))
    assert [g.value["value"] for g in got] == [0.0, 1.0, 2.0, 3.0, 4.0]  # type: ignore[attr-defined]
    assert got[3].overrun == BitSet([1])  # type: ignore[attr-defined]
    assert pair.c2s(MonitorAck(9, 11, 2)) == [MonitorAck(9, 11, 2)]
    assert pair.c2s(MonitorStop(9, 11)) == [MonitorStop(9, 11)]
    assert pair.server.requests[11].state is RequestState.READY
    assert pair.s2c(MonitorFinish(11)) == [MonitorFinish(11)]
    assert 11 not in pair.client.requests and 11 not in pair.server.requests


def test_a_combined_monitor_message_is_every_event_it_carries(pair: Any) -> None:
    """pvAccessCPP may send one MONITOR message with several subcommand bits (an ack and a
    stop, ...): the server reads it as each of their events, in the table's order, and a
    message with none of them as no event."""
    pair.channel(5, "counter", 9)
    pair.c2s(MonitorInit(9, 11, pv_request("record[pipeline=true]"), queue_size=4))
    pair.s2c(MonitorInitResponse(11, type=NT.type))
    ack = bytearray(pair.client.send(MonitorAck(9, 11, 3)))
    assert ack[16] == 0x80  # (after the header, sid and ioid: the subcommand)
    for sub, events, state in (
        (0xC4, [MonitorAck(9, 11, 3), MonitorStart(9, 11)], RequestState.RUNNING),
        (0x84, [MonitorAck(9, 11, 3), MonitorStop(9, 11)], RequestState.READY),
        (0x00, [], RequestState.READY),
    ):
        ack[16] = sub
        pair.server.receive_data(bytes(ack))
        assert list(pair.server.events()) == events
        assert pair.server.requests[11].state is state
    ack[16] = 0x90  # an ack and a destroy: the operation ends
    pair.server.receive_data(bytes(ack))
    assert list(pair.server.events()) == [MonitorAck(9, 11, 3), MonitorDestroy(9, 11)]
    assert 11 not in pair.server.requests


def test_rpc_process_getfield_message_array(pair: Any) -> None:
    pair.channel(1, "svc", 2)
    pair.c2s(RPCInit(2, 20))
    pair.s2c(RPCInitResponse(20))
    uri = nt.NTURI([("a", "i"), ("b", "s")])
    arg = VariantValue(uri.type, uri.wrap("add", {"a": 1, "b": "x"}))
    [call] = pair.c2s(RPC(2, 20, arg))
    assert isinstance(call, RPC) and call.argument == arg
    assert uri.unwrap(call.argument.value) == ("add", {"a": 1, "b": "x"})  # type: ignore[union-attr]
    [res] = pair.s2c(RPCResponse(20, result=VariantValue.of({"sum": 3.0})))
    assert isinstance(res, RPCResponse) and res.result == VariantValue.of({"sum": 3.0})
    pair.c2s(RPC(2, 20, None))
    [err] = pair.s2c(RPCResponse(20, Status.error("boom", "trace")))
    assert isinstance(err, RPCResponse) and err.status.message == "boom" and err.result is None

    pair.c2s(ProcessInit(2, 21))
    assert pair.s2c(ProcessInitResponse(21)) == [ProcessInitResponse(21)]
    assert pair.c2s(Process(2, 21)) == [Process(2, 21)]
    assert pair.s2c(ProcessResponse(21)) == [ProcessResponse(21)]

    assert pair.c2s(GetField(2, 22, "value")) == [GetField(2, 22, "value")]
    assert pair.s2c(GetFieldResponse(22, type=NT.type)) == [GetFieldResponse(22, type=NT.type)]
    assert 22 not in pair.client.requests

    assert pair.s2c(Message(21, MessageSeverity.WARNING, "careful")) == [
        Message(21, MessageSeverity.WARNING, "careful")
    ]

    at = ScalarArray("i")
    pair.c2s(ArrayInit(2, 23))
    pair.s2c(ArrayInitResponse(23, type=at))
    assert pair.c2s(ArrayGet(2, 23, 1, 2, 1)) == [ArrayGet(2, 23, 1, 2, 1)]
    [ag] = pair.s2c(ArrayGetResponse(23, value=[5, 6]))
    assert isinstance(ag, ArrayGetResponse) and list(ag.value) == [5, 6]
    [ap] = pair.c2s(ArrayPut(2, 23, np.array([1, 2, 3], dtype=np.int32), offset=4))
    assert isinstance(ap, ArrayPut) and list(ap.value) == [1, 2, 3] and ap.offset == 4
    pair.s2c(ArrayPutResponse(23))
    assert pair.c2s(ArraySetLength(2, 23, 10)) == [ArraySetLength(2, 23, 10)]
    pair.s2c(ArraySetLengthResponse(23))
    assert pair.c2s(ArrayGetLength(2, 23)) == [ArrayGetLength(2, 23)]
    assert pair.s2c(ArrayGetLengthResponse(23, length=10)) == [
        ArrayGetLengthResponse(23, length=10)
    ]


def test_destroy_races_are_dropped_quietly(pair: Any) -> None:
    pair.channel(1, "x", 2)
    pair.c2s(GetInit(2, 1))
    pair.s2c(GetInitResponse(1, type=NT.type))
    pair.c2s(Get(2, 1))
    # the client gives up while the server is working: the late response is dropped
    pair.c2s(DestroyRequest(2, 1))
    assert pair.server.send(GetResponse(1, value=NT.wrap(1.0))) == b""
    # cancel: the op stays usable
    pair.c2s(GetInit(2, 2))
    pair.s2c(GetInitResponse(2, type=NT.type))
    pair.c2s(Get(2, 2))
    assert pair.c2s(CancelRequest(2, 2)) == [CancelRequest(2, 2)]
    assert pair.server.send(GetResponse(2, value=NT.wrap(1.0))) == b""  # answer to a cancelled get
    pair.c2s(Get(2, 2))
    assert len(pair.s2c(GetResponse(2, value=NT.wrap(1.0)))) == 1
    # a server-side destroy of the channel takes its requests along
    pair.c2s(MonitorInit(2, 3))
    pair.s2c(MonitorInitResponse(3, type=NT.type))
    assert pair.s2c(DestroyChannel(2, 1)) == [DestroyChannel(2, 1)]
    assert pair.client.channels == {} and pair.server.requests == {}
    # the client's messages already on the way for the destroyed channel are ignored
    pair.server.receive_data(b"")
    assert list(pair.server.events()) == [ConnectionClosed()]


def test_client_destroy_channel_round_trip(pair: Any) -> None:
    pair.channel(1, "x", 2)
    assert pair.c2s(DestroyChannel(2, 1)) == [DestroyChannel(2, 1)]
    assert pair.s2c(DestroyChannel(2, 1)) == [DestroyChannel(2, 1)]
    assert pair.client.channels == {} and pair.server.channels == {}


def test_echo_and_control_messages(pair: Any) -> None:
    assert pair.c2s(Echo(b"ping")) == [Echo(b"ping")]
    assert pair.s2c(Echo(b"ping")) == [Echo(b"ping")]
    assert pair.c2s(ControlEchoRequest(7)) == [ControlEchoRequest(7)]


def test_local_errors_leave_state_untouched(pair: Any) -> None:
    with pytest.raises(LocalProtocolError):
        pair.client.send(Get(2, 1))  # no such channel or request
    pair.channel(1, "x", 2)
    with pytest.raises(LocalProtocolError):
        pair.client.send(Get(2, 1))  # no init
    pair.c2s(GetInit(2, 1))
    with pytest.raises(LocalProtocolError):
        pair.client.send(Get(2, 1))  # init not answered yet
    with pytest.raises(LocalProtocolError):
        pair.server.send(GetResponse(1, value=NT.wrap(1.0)))  # not executing
    with pytest.raises(LocalProtocolError):
        pair.server.send(GetInitResponse(1, type=None))  # success needs a type
    pair.s2c(GetInitResponse(1, type=NT.type))
    with pytest.raises(LocalProtocolError):
        pair.client.send(Put(2, 1, {}))  # a get is not a put
    pair.c2s(Get(2, 1))
    with pytest.raises(LocalProtocolError):
        pair.server.send(GetResponse(1, value={"value": "not a number"}))
    assert len(pair.s2c(GetResponse(1, value=NT.wrap(3.0)))) == 1


def test_type_cache_both_ways_and_segmentation(make_pair: Any) -> None:
    p = make_pair(cache_types=True, segment_size=16)
    p.channel(1, "a", 2)
    for ioid in (1, 2, 3):
        p.c2s(GetInit(2, ioid, pv_request("field(value)")))
        p.s2c(GetInitResponse(ioid, type=NT.type))
        assert p.client.requests[ioid].type == NT.type
    # the second and third init responses referenced the cached type (0xFE + key)
    assert len(p.server._tx.send_cache or ()) == 1  # type: ignore[arg-type]
    p.c2s(Get(2, 3))
    [r] = p.s2c(GetResponse(3, value=NT.wrap(2.5, message="x" * 100)))
    assert r.value["value"] == 2.5  # type: ignore[attr-defined]


def test_remote_errors_are_sticky(pair: Any) -> None:
    pair.server.receive_data(bytes.fromhex("ca02000a0900000001000000010000000000"))  # get, no init
    with pytest.raises(RemoteProtocolError):
        pair.server.next_event()
    assert pair.server.state is ConnectionState.ERROR
    with pytest.raises(RemoteProtocolError):
        pair.server.next_event()
    with pytest.raises(LocalProtocolError):
        pair.server.send(Echo(b""))
    assert pair.client.next_event() is NEED_DATA


def test_authnz_marks_search_over_tcp_and_messages_from_client(pair: Any) -> None:
    from reckon.pva.protocol import (
        AckTotalBytesReceived,
        AuthNZ,
        ControlEchoResponse,
        MarkTotalBytesSent,
        SearchRequest,
        SearchResponse,
    )

    data = VariantValue.of({"token": "abc"})
    assert pair.c2s(AuthNZ(data)) == [AuthNZ(data)]
    assert pair.s2c(AuthNZ(None)) == [AuthNZ(None)]
    assert pair.s2c(MarkTotalBytesSent(1234)) == [MarkTotalBytesSent(1234)]
    assert pair.c2s(AckTotalBytesReceived(1234)) == [AckTotalBytesReceived(1234)]
    assert pair.s2c(ControlEchoResponse(9)) == [ControlEchoResponse(9)]
    search = SearchRequest(7, ((1, "a"), (2, "b")), reply_required=True)
    assert pair.c2s(search) == [search]
    resp = SearchResponse(b"x" * 12, 7, "127.0.0.1", 5075, True, (1,))
    assert pair.s2c(resp) == [resp]
    with pytest.raises(LocalProtocolError):
        pair.client.send(SetByteOrderEvent(True))


def test_failed_validation_and_channel_creation(make_pair: Any) -> None:
    from reckon.pva.protocol import (
        ClientConnection,
        ConnectionValidated,
        ConnectionValidationResponse,
        CreateChannelRequest,
        CreateChannelResponse,
        ServerConnection,
    )

    srv, cli = ServerConnection(), ClientConnection()
    cli.receive_data(srv.initiate())
    list(cli.events())
    srv.receive_data(cli.send(ConnectionValidationResponse("kerberos")))
    list(srv.events())
    cli.receive_data(srv.send(ConnectionValidated(Status.error("unsupported auth"))))
    [v] = list(cli.events())
    assert not v.status.success
    assert cli.state is not ConnectionState.VALIDATED
    with pytest.raises(LocalProtocolError):
        cli.send(CreateChannelRequest(1, "x"))

    p = make_pair()
    p.c2s(CreateChannelRequest(1, "missing"))
    [r] = p.s2c(CreateChannelResponse(1, 0, Status.error("no such channel")))
    assert not r.status.success and p.client.channels == {} and p.server.channels == {}
    p.channel(1, "again", 5)  # the cid is free again
    assert p.client.channels[1].sid == 5 and p.server.channels[5].name == "again"


def test_prepared_update_fans_out_with_the_same_bytes(make_pair: Any) -> None:
    from reckon.pva.protocol import PreparedUpdate

    pairs = [make_pair(), make_pair(), make_pair(big_endian=True), make_pair(segment_size=8)]
    for p in pairs:
        p.channel(1, "x", 2)
        p.c2s(MonitorInit(2, 5))
        p.s2c(MonitorInitResponse(5, type=NT.type))
        p.c2s(MonitorStart(2, 5))
    v = NT.wrap(3.0)
    upd = PreparedUpdate(NT.type, v, BitSet([1]))
    outs = [p.server.send_update(5, upd) for p in pairs]
    assert outs[0] == outs[1] == pairs[0].server.send(MonitorUpdate(5, v, BitSet([1])))
    assert outs[0] is outs[1]  # a prepared message: one object for every connection
    assert len(outs[3]) > len(outs[0])  # split into segments, reassembled by the client
    for p, out in zip(pairs, outs, strict=True):
        p.client.receive_data(out)
        [u] = list(p.client.events())
        assert isinstance(u, MonitorUpdate) and u.value["value"] == 3.0
    with pytest.raises(LocalProtocolError):
        pairs[0].server.send_update(99, upd)
    with pytest.raises(LocalProtocolError):
        pairs[0].server.send_update(5, PreparedUpdate(Structure([("value", "i")]), {"value": 1}))
    pairs[0].c2s(DestroyRequest(2, 5))
    assert pairs[0].server.send_update(5, upd) == b""


def test_a_prepared_array_update_leaves_the_connections_codec_as_it_was(make_pair: Any) -> None:
    """A prepared update is encoded with the connection's own codec (no new one per post),
    its big array left in its buffer; the connection's next message is whole again."""
    from reckon.pva.protocol import PreparedUpdate

    arr_t = Structure([("value", "ad")])
    p = make_pair()
    p.channel(1, "x", 2)
    p.c2s(MonitorInit(2, 5))
    p.s2c(MonitorInitResponse(5, type=arr_t))
    p.c2s(MonitorStart(2, 5))
    big = np.arange(20_000, dtype="f8")  # (160 kB: sent from its own buffer)
    pieces = p.server.send_update_pieces(5, PreparedUpdate(arr_t, {"value": big}))
    assert any(isinstance(x, np.ndarray | memoryview) for x in pieces)
    plain = p.server.send(MonitorUpdate(5, {"value": big + 1}, BitSet([0])))
    assert len(plain) > big.nbytes  # the array is in the message, not left out as a hole
    for data in (b"".join(bytes(x) for x in pieces), bytes(plain)):
        p.client.receive_data(data)
    got = [u.value["value"] for u in p.client.events()]
    assert np.array_equal(got[0], big) and np.array_equal(got[1], big + 1)


def get_update(server: Any, ioid: int, update: Any) -> bytes | None:
    """The prepared GET reply's bytes, or None when the general path must reply."""
    pieces = server.send_get_update_pieces(ioid, update)
    return None if pieces is None else b"".join(pieces)


def test_repeated_type_descriptions_are_recognised(pair: Any) -> None:
    pair.channel(1, "x", 2)
    req = pv_request("field(value)")
    [a] = pair.c2s(GetInit(2, 1, req))
    [b] = pair.c2s(GetInit(2, 2, req))
    assert a.pv_request.type is b.pv_request.type  # decoded once, then recognised by its bytes
    [c] = pair.c2s(GetInit(2, 3, pv_request("field(alarm)")))
    assert c.pv_request.type != a.pv_request.type
    assert request_fields(c.pv_request) == ["alarm"]


def test_destroy_flag_is_echoed_on_the_response(pair: Any) -> None:
    pair.channel(1, "x", 2)
    pair.c2s(ProcessInit(2, 1))
    pair.s2c(ProcessInitResponse(1))
    pair.c2s(Process(2, 1, destroy=True))
    [r] = pair.s2c(ProcessResponse(1))
    assert r == ProcessResponse(1, destroy=True)
    assert 1 not in pair.server.requests and 1 not in pair.client.requests


def test_big_arrays_travel_with_few_copies(pair: Any) -> None:
    a = nt.NTScalarArray("d")
    pair.channel(1, "img", 2)
    pair.c2s(MonitorInit(2, 1))
    pair.s2c(MonitorInitResponse(1, type=a.type))
    pair.c2s(MonitorStart(2, 1))
    arr = np.arange(200_000, dtype=">f8" if pair.server.big_endian else "<f8")
    data = pair.server.send(MonitorUpdate(1, a.wrap(arr)))
    assert len(data) > 1_600_000  # bytes-like (a bytearray: no copy into a bytes object)
    half = len(data) // 2
    pair.client.receive_data(data[:half])
    assert list(pair.client.events()) == []
    pair.client.receive_data(bytes(data[half:]))
    [u] = list(pair.client.events())
    assert np.array_equal(u.value["value"], arr)


def test_prepared_get_reply_is_the_general_reply(make_pair: Any) -> None:
    """send_get_update_pieces gives the bytes send(GetResponse(...)) gives, moves the request
    to READY like it, and declines (None) whenever the general path must decide."""
    from reckon.pva.protocol import PreparedUpdate

    v = NT.wrap(4.5, severity=1)
    changed = BitSet([NT.type.offset_of("value")])
    upd = PreparedUpdate(NT.type, v, changed)
    for kw in ({}, {"big_endian": True}):
        prepared, general = make_pair(**kw), make_pair(**kw)
        for p in (prepared, general):
            p.channel(1, "x", 2)
            p.c2s(GetInit(2, 7))
            p.s2c(GetInitResponse(7, type=NT.type))
        assert get_update(prepared.server, 7, upd) is None  # no GET executing yet
        for _ in range(2):  # the second get reuses the encoding
            prepared.c2s(Get(2, 7))
            general.c2s(Get(2, 7))
            out = get_update(prepared.server, 7, upd)
            reference = general.server.send(GetResponse(7, value=v, changed=changed))
            assert out == reference
            assert prepared.server.requests[7].state is RequestState.READY
            assert prepared.server.bytes_sent == general.server.bytes_sent
            for p, data in ((prepared, out), (general, reference)):
                assert data is not None
                p.client.receive_data(data)
                [r] = list(p.client.events())
                assert isinstance(r, GetResponse) and r.value["value"] == 4.5
        prepared.c2s(Get(2, 7))
        kept = prepared.server.send_get_update_pieces(7, upd)
        assert kept is not None
        prepared.client.receive_data(b"".join(kept))
        assert [type(ev) for ev in prepared.client.events()] == [GetResponse]
        prepared.c2s(Get(2, 7))
        assert prepared.server.send_get_update_pieces(7, upd) is kept  # kept by the update
        # another operation getting the same value (p4p makes one per get): its own ioid
        for p in (prepared, general):
            p.c2s(GetInit(2, 9))
            p.s2c(GetInitResponse(9, type=NT.type))
            p.c2s(Get(2, 9))
        out = get_update(prepared.server, 9, upd)
        assert out == general.server.send(GetResponse(9, value=v, changed=changed))
    p = make_pair()
    p.channel(1, "x", 2)
    p.c2s(GetInit(2, 7))
    p.s2c(GetInitResponse(7, type=NT.type))
    p.c2s(Get(2, 7, destroy=True))
    assert get_update(p.server, 7, upd) is None  # destroying: the general path replies
    p.c2s(GetInit(2, 8))
    p.s2c(GetInitResponse(8, type=NT.type))
    p.c2s(Get(2, 8))
    other = PreparedUpdate(Structure([("value", "i")]), {"value": 1})
    assert get_update(p.server, 8, other) is None  # another type
    assert get_update(p.server, 99, upd) is None  # unknown operation
    seg = make_pair(segment_size=8)
    seg.channel(1, "x", 2)
    seg.c2s(GetInit(2, 7))
    seg.s2c(GetInitResponse(7, type=NT.type))
    seg.c2s(Get(2, 7))
    assert get_update(seg.server, 7, upd) is None  # segmented: the general path frames it


@pytest.mark.parametrize("size", [3, 20_000])
def test_a_get_reply_made_for_one_ioid_serves_the_next_with_its_own(
    make_pair: Any, size: int
) -> None:
    """p4p opens an operation, with a new ioid, for every get: the reply kept by the value for
    one ioid is copied with the next one's (the head alone when the array travels in its own
    buffer), past the number of replies a value keeps, and is the general path's reply."""
    from reckon.pva.protocol import PreparedUpdate

    arr_t = Structure([("value", "ad")])
    v = {"value": np.arange(size, dtype="f8")}
    upd = PreparedUpdate(arr_t, v)
    prepared, general = make_pair(), make_pair()
    for p in (prepared, general):
        p.channel(1, "x", 2)
    for ioid in range(100, 140):
        for p in (prepared, general):
            p.c2s(GetInit(2, ioid))
            p.s2c(GetInitResponse(ioid, type=arr_t))
            p.c2s(Get(2, ioid))
        pieces = prepared.server.send_get_update_pieces(ioid, upd)
        assert pieces is not None and (len(pieces) == 1) == (size < 1000)
        reference = general.server.send(GetResponse(ioid, value=v))
        assert b"".join(bytes(x) for x in pieces) == bytes(reference)
        assert prepared.server.bytes_sent == general.server.bytes_sent
        assert len(upd.messages) <= 33


@pytest.mark.parametrize("big", [False, True])
def test_a_new_connections_opening_is_the_events_it_stands_for(big: bool) -> None:
    """initiate() replays the bytes it encoded for an earlier connection: they, the state and
    the byte count are what sending the two events gives, and a client validates on them."""
    from reckon.pva.protocol import (
        ClientConnection,
        ConnectionValidationRequest,
        ServerConnection,
        SetByteOrder,
    )

    methods = ("anonymous", "ca", f"x{int(big)}")
    first = ServerConnection(big_endian=big).initiate(methods)
    reference = ServerConnection(big_endian=big)
    expect = reference.send(SetByteOrder(big)) + reference.send(
        ConnectionValidationRequest(methods)
    )
    for _ in range(2):  # the first call above encoded; these replay
        server = ServerConnection(big_endian=big)
        assert server.initiate(methods) == expect == first
        assert server.state is reference.state is ConnectionState.VALIDATION_REQUESTED
        assert server.bytes_sent == reference.bytes_sent == len(expect)
        client = ClientConnection()
        client.receive_data(expect)
        events = list(client.events())
        assert [type(e) for e in events] == [SetByteOrder, ConnectionValidationRequest]
        assert events[1].auth_methods == methods
    # a connection past its opening is not sent it again from the cache: send() decides
    server = ServerConnection(big_endian=big)
    server.initiate(methods)
    with pytest.raises(LocalProtocolError):
        server.initiate(methods)


def test_a_big_update_fans_out_without_copies(make_pair: Any) -> None:
    """One encode for every subscriber (per byte order), and the array's bytes are the numpy
    buffer itself in every connection's message: a vectored write sends it uncopied."""
    from reckon.pva.protocol import PreparedUpdate

    a = nt.NTScalarArray("d")
    pairs = [make_pair() for _ in range(3)]
    for p in pairs:
        p.channel(1, "img", 2)
        p.c2s(MonitorInit(2, 5))
        p.s2c(MonitorInitResponse(5, type=a.type))
        p.c2s(MonitorStart(2, 5))
    arr = np.arange(100_000, dtype="<f8")
    upd = PreparedUpdate(a.type, a.wrap(arr))
    messages = [p.server.send_update_pieces(5, upd) for p in pairs]
    bodies = [m[1:] for m in messages]
    assert all(len(b) == len(bodies[0]) for b in bodies)
    for i, piece in enumerate(bodies[0]):
        assert all(b[i] is piece for b in bodies)  # the same objects: encoded once
    big = [piece for piece in bodies[0] if len(piece) == arr.nbytes]
    assert len(big) == 1 and np.shares_memory(np.frombuffer(big[0], dtype="<f8"), arr)
    for p, m in zip(pairs, messages, strict=True):
        p.client.receive_data(b"".join(m))
        [u] = list(p.client.events())
        assert np.array_equal(u.value["value"], arr)


def test_a_get_and_a_monitor_of_one_ioid_share_an_update_apart(make_pair: Any) -> None:
    """The messages an update keeps are per kind: a monitor's update and a GET's reply for the
    same ioid, on two connections sending the same update, are each the general path's."""
    from reckon.pva.protocol import PreparedUpdate

    v = NT.wrap(1.5)
    upd = PreparedUpdate(NT.type, v, BitSet([NT.type.offset_of("value")]))
    getter, watcher = make_pair(), make_pair()
    for p in (getter, watcher):
        p.channel(1, "x", 2)
    getter.c2s(GetInit(2, 7))
    getter.s2c(GetInitResponse(7, type=NT.type))
    watcher.c2s(MonitorInit(2, 7))
    watcher.s2c(MonitorInitResponse(7, type=NT.type))
    watcher.c2s(MonitorStart(2, 7))
    for _ in range(2):
        getter.c2s(Get(2, 7))
        reply = get_update(getter.server, 7, upd)
        update = watcher.server.send_update(7, upd)
        assert reply != update
        for p, data, cls in ((getter, reply, GetResponse), (watcher, update, MonitorUpdate)):
            assert data is not None
            p.client.receive_data(data)
            [ev] = list(p.client.events())
            assert isinstance(ev, cls) and ev.value["value"] == 1.5
