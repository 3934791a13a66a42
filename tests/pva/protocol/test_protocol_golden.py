"""Byte-level golden tables captured from p4p 4.2 / pvxs on loopback.

How they were made: a p4p ``SharedPV`` (NTScalar double, initial 1.5, put and RPC handlers)
served by ``p4p.server.Server``; a ``p4p.client.thread.Context`` did get, put 2.5, an RPC with
``{a: 3}`` and a monitor that saw a post of 3.5, through a recording TCP proxy (the proxy
rewrote the port in the search response so the client connected through it). ``C`` lines are
what the p4p client sent, ``S`` lines what the p4p server sent, in order.

Each test drives one of our connections with events and checks it produces the same bytes as
the p4p peer, and that feeding it the other peer's bytes yields the expected events.
"""

from __future__ import annotations

import numpy as np

from reckon.pva.protocol import (
    NEED_DATA,
    RPC,
    BitSet,
    ClientConnection,
    ConnectionValidated,
    ConnectionValidationRequest,
    ConnectionValidationResponse,
    CreateChannelRequest,
    CreateChannelResponse,
    DestroyRequest,
    Discovery,
    Get,
    GetInit,
    GetInitResponse,
    GetResponse,
    MonitorInit,
    MonitorInitResponse,
    MonitorStart,
    MonitorUpdate,
    Put,
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
    ServerConnection,
    SetByteOrder,
    Status,
    Structure,
    VariantValue,
    decode_type,
    encode_type,
    nt,
    pv_request,
)

H = bytes.fromhex

# -- handshake ---------------------------------------------------------------------------
S_OPEN = H("ca02410200000000ca0240011400000000000100ff7f0209616e6f6e796d6f7573026361")
C_VALIDATION = H(
    "ca0200012200000000000100ff7f000002636180000204757365726004686f73746004726f6f7402766d"
)
S_VALIDATED = H("ca02400901000000ff")
# -- search over TCP (big-endian, as pvxs sends it to a name server) -----------------------
C_SEARCH = H(
    "ca0280030000002966696e6480000000000000000000000000000000000000000000010374637000011234567803545354"
)
S_SEARCH_RESPONSE = H(
    "ca0240042d000000a68633fc1ad96c0b6dc8a1fe646e696600000000000000000000ffff7f000001b1da"
    "0374637001010078563412"
)
C_CREATE = H("ca0200070a00000001007856341203545354")
S_CREATE = H("ca024007090000007856341201030507ff")
# -- get ------------------------------------------------------------------------------------
NTSCALAR_D = H(
    "801565706963733a6e742f4e545363616c61723a312e30030576616c75654305616c61726d8007616c61726d5f74"
    "03087365766572697479220673746174757322076d657373616765600974696d655374616d70800674696d655f74"
    "03107365636f6e64735061737445706f6368230b6e616e6f7365636f6e647322077573657254616722"
)
C_GET_INIT = H("ca02000a15000000010305070020001008800001056669656c64800000")
S_GET_INIT = H("ca02400a8b0000000020001008ff") + NTSCALAR_D
C_GET = H("ca02000a09000000010305070020001000")
S_GET = H("ca02400a100000000020001000ff0102000000000000f83f")
C_DESTROY_GET = H("ca02000f080000000103050700200010")
# -- put ------------------------------------------------------------------------------------
C_PUT_INIT = H("ca02000b15000000010305070120001008800001056669656c64800000")
S_PUT_INIT = H("ca02400b8b0000000120001008ff") + NTSCALAR_D
C_PUT_READ = H("ca02000b09000000010305070120001040")
S_PUT_READ = H("ca02400b100000000120001040ff0102000000000000f83f")
C_PUT = H("ca02000b1300000001030507012000100001020000000000000440")
S_PUT = H("ca02400b060000000120001000ff")
# -- rpc ------------------------------------------------------------------------------------
C_RPC_INIT = H("ca02001415000000010305070220001008800001056669656c64800000")
S_RPC_INIT = H("ca024014060000000220001008ff")
C_RPC = H("ca0200141300000001030507022000100080000101612203000000")
S_RPC = H("ca024014140000000220001000ff8000010178430000000000001c40")
# -- monitor --------------------------------------------------------------------------------
C_MON_INIT = H("ca02000d15000000010305070320001008800001056669656c64800000")
S_MON_INIT = H("ca02400d8b0000000320001008ff") + NTSCALAR_D
C_MON_START = H("ca02000d09000000010305070320001044")
S_MON_UPDATES = H(
    "ca02400d1d000000032000100002820100000000000004400000000000000000000000000"
    "0ca02400d10000000032000100001020000000000000c4000"
)
C_DESTROY_MON = H("ca02000f080000000103050703200010")

SID, CID = 0x07050301, 0x12345678
GET_IOID, PUT_IOID, RPC_IOID, MON_IOID = 0x10002000, 0x10002001, 0x10002002, 0x10002003
NT_D = nt.NTScalar("d").type


def drain(conn: ServerConnection | ClientConnection) -> list[object]:
    return list(conn.events())


def _validated_pair() -> tuple[ServerConnection, ClientConnection]:
    return ServerConnection(), ClientConnection()


def test_ntscalar_type_bytes_match_pvxs() -> None:
    assert encode_type(NT_D) == NTSCALAR_D
    t, pos = decode_type(NTSCALAR_D, 0, False, None, 32)
    assert t == NT_D and pos == len(NTSCALAR_D)


def test_server_side_reproduces_p4p_server_bytes() -> None:
    srv = ServerConnection()
    assert srv.initiate() == S_OPEN
    srv.receive_data(C_VALIDATION)
    [ev] = drain(srv)
    assert isinstance(ev, ConnectionValidationResponse)
    assert (ev.auth_method, ev.user, ev.host) == ("ca", "root", "vm")
    assert srv.send(ConnectionValidated(Status.OK)) == S_VALIDATED

    srv.receive_data(C_SEARCH)
    [search] = drain(srv)
    assert isinstance(search, SearchRequest)
    assert search.channels == ((CID, "TST"),) and search.unicast and search.sequence == 0x66696E64
    srv.receive_data(C_CREATE)
    [create] = drain(srv)
    assert create == CreateChannelRequest(CID, "TST")
    assert srv.send(CreateChannelResponse(CID, SID)) == S_CREATE

    # get: pvxs sends only the fields that were ever set (bit 1 = value)
    srv.receive_data(C_GET_INIT)
    [init] = drain(srv)
    assert isinstance(init, GetInit) and init.pv_request == pv_request("")
    assert srv.send(GetInitResponse(GET_IOID, type=NT_D)) == S_GET_INIT
    srv.receive_data(C_GET)
    assert drain(srv) == [Get(SID, GET_IOID)]
    value = nt.NTScalar("d").wrap(1.5, timestamp=0)
    assert srv.send(GetResponse(GET_IOID, value=value, changed=BitSet([1]))) == S_GET
    srv.receive_data(C_DESTROY_GET)
    assert drain(srv) == [DestroyRequest(SID, GET_IOID)]

    # put: read back, then write bit 1
    srv.receive_data(C_PUT_INIT)
    drain(srv)
    assert srv.send(PutInitResponse(PUT_IOID, type=NT_D)) == S_PUT_INIT
    srv.receive_data(C_PUT_READ)
    assert drain(srv) == [PutRead(SID, PUT_IOID)]
    assert srv.send(PutReadResponse(PUT_IOID, value=value, changed=BitSet([1]))) == S_PUT_READ
    srv.receive_data(C_PUT)
    [put] = drain(srv)
    assert isinstance(put, Put) and put.changed == BitSet([1]) and put.value["value"] == 2.5
    assert srv.send(PutResponse(PUT_IOID)) == S_PUT

    # rpc
    srv.receive_data(C_RPC_INIT)
    drain(srv)
    assert srv.send(RPCInitResponse(RPC_IOID)) == S_RPC_INIT
    srv.receive_data(C_RPC)
    [call] = drain(srv)
    assert isinstance(call, RPC) and call.argument == VariantValue(
        Structure([("a", "i")]), {"a": 3}
    )
    result = VariantValue(Structure([("x", "d")]), {"x": 7.0})
    assert srv.send(RPCResponse(RPC_IOID, result=result)) == S_RPC

    # monitor: first update carries value + secondsPastEpoch + nanoseconds (bits 1, 7, 8)
    srv.receive_data(C_MON_INIT)
    drain(srv)
    assert srv.send(MonitorInitResponse(MON_IOID, type=NT_D)) == S_MON_INIT
    srv.receive_data(C_MON_START)
    assert drain(srv) == [MonitorStart(SID, MON_IOID)]
    v1 = nt.NTScalar("d").wrap(2.5, timestamp=0)
    out = srv.send(MonitorUpdate(MON_IOID, v1, BitSet([1, 7, 8])))
    out += srv.send(MonitorUpdate(MON_IOID, dict(v1, value=3.5), BitSet([1])))
    assert out == S_MON_UPDATES
    srv.receive_data(C_DESTROY_MON)
    assert drain(srv) == [DestroyRequest(SID, MON_IOID)]
    assert set(srv.requests) == {PUT_IOID, RPC_IOID}  # the capture never destroyed these


def test_client_side_reproduces_p4p_client_bytes() -> None:
    cli = ClientConnection()
    cli.receive_data(S_OPEN)
    evs = drain(cli)
    assert evs == [SetByteOrder(False), ConnectionValidationRequest(("anonymous", "ca"), 0x10000)]
    assert cli.send(ConnectionValidationResponse.ca("root", "vm")) == C_VALIDATION
    cli.receive_data(S_VALIDATED)
    assert drain(cli) == [ConnectionValidated(Status.OK)]

    cli.big_endian = True  # pvxs sends its TCP search big-endian
    search = SearchRequest(0x66696E64, ((CID, "TST"),), unicast=True)
    assert cli.send(search) == C_SEARCH
    cli.big_endian = False
    cli.receive_data(S_SEARCH_RESPONSE)
    [resp] = drain(cli)
    assert isinstance(resp, SearchResponse)
    assert resp.cids == (CID,) and resp.address == "127.0.0.1" and resp.sequence == search.sequence

    assert cli.send(CreateChannelRequest(CID, "TST")) == C_CREATE
    cli.receive_data(S_CREATE)
    assert drain(cli) == [CreateChannelResponse(CID, SID)]

    assert cli.send(GetInit(SID, GET_IOID, pv_request(""))) == C_GET_INIT
    cli.receive_data(S_GET_INIT)
    assert drain(cli) == [GetInitResponse(GET_IOID, type=NT_D)]
    assert cli.send(Get(SID, GET_IOID)) == C_GET
    cli.receive_data(S_GET)
    [got] = drain(cli)
    assert isinstance(got, GetResponse) and got.changed == BitSet([1])
    assert got.value == dict(NT_D.default(), value=1.5)
    assert cli.send(DestroyRequest(SID, GET_IOID)) == C_DESTROY_GET

    assert cli.send(PutInit(SID, PUT_IOID, pv_request(""))) == C_PUT_INIT
    cli.receive_data(S_PUT_INIT)
    drain(cli)
    assert cli.send(PutRead(SID, PUT_IOID)) == C_PUT_READ
    cli.receive_data(S_PUT_READ)
    [cur] = drain(cli)
    assert isinstance(cur, PutReadResponse) and cur.value is not None
    assert cur.value["value"] == 1.5
    assert cli.send(Put(SID, PUT_IOID, {"value": 2.5}, BitSet([1]))) == C_PUT
    cli.receive_data(S_PUT)
    assert drain(cli) == [PutResponse(PUT_IOID)]

    assert cli.send(RPCInit(SID, RPC_IOID, pv_request(""))) == C_RPC_INIT
    cli.receive_data(S_RPC_INIT)
    drain(cli)
    arg = VariantValue(Structure([("a", "i")]), {"a": 3})
    assert cli.send(RPC(SID, RPC_IOID, arg)) == C_RPC
    cli.receive_data(S_RPC)
    [res] = drain(cli)
    assert isinstance(res, RPCResponse) and res.result is not None
    assert res.result.value == {"x": 7.0}

    assert cli.send(MonitorInit(SID, MON_IOID, pv_request(""))) == C_MON_INIT
    cli.receive_data(S_MON_INIT)
    drain(cli)
    assert cli.send(MonitorStart(SID, MON_IOID)) == C_MON_START
    cli.receive_data(S_MON_UPDATES)
    u1, u2 = drain(cli)
    assert isinstance(u1, MonitorUpdate) and isinstance(u2, MonitorUpdate)
    assert u1.changed == BitSet([1, 7, 8]) and u2.changed == BitSet([1])
    assert (u1.value["value"], u2.value["value"]) == (2.5, 3.5)
    assert cli.send(DestroyRequest(SID, MON_IOID)) == C_DESTROY_MON
    assert cli.next_event() is NEED_DATA


def test_search_datagram_decodes_like_pvxs_wrote_it() -> None:
    d = Discovery()
    [search] = d.decode(C_SEARCH)
    assert isinstance(search, SearchRequest) and search.protocols == ("tcp",)
    [resp] = d.decode(S_SEARCH_RESPONSE)
    assert isinstance(resp, SearchResponse) and resp.found and resp.port == 0xDAB1
    assert d.encode(resp) == S_SEARCH_RESPONSE


def test_numpy_array_values_are_views_of_the_message() -> None:
    t = nt.NTScalarArray("d").type
    srv, cli = _validated_pair()
    cli.receive_data(srv.initiate())
    drain(cli)
    srv.receive_data(cli.send(ConnectionValidationResponse()))
    drain(srv)
    cli.receive_data(srv.send(ConnectionValidated()))
    drain(cli)
    srv.receive_data(cli.send(CreateChannelRequest(1, "arr")))
    drain(srv)
    cli.receive_data(srv.send(CreateChannelResponse(1, 2)))
    drain(cli)
    srv.receive_data(cli.send(GetInit(2, 3)))
    drain(srv)
    cli.receive_data(srv.send(GetInitResponse(3, type=t)))
    drain(cli)
    srv.receive_data(cli.send(Get(2, 3)))
    drain(srv)
    arr = np.arange(1000, dtype=np.float64)
    cli.receive_data(srv.send(GetResponse(3, value=nt.NTScalarArray("d").wrap(arr))))
    [got] = drain(cli)
    assert np.array_equal(got.value["value"], arr)
    assert got.value["value"].base is not None  # a view, not a copy


# -- second capture (same setup): a pipelined monitor and an NTTable get -------------------
C_PIPE_INIT = H(
    "ca02000d4b000000010305070020001088800002056669656c64800000067265636f7264800001085f6f70"
    "74696f6e7380000208706970656c696e656009717565756553697a65600474727565013404000000"
)
C_PIPE_ACK = H("ca02000d0d00000001030507002000108002000000")
S_PIPE_UPDATES = H(
    "ca02400d1000000000200010000102000000000000264000ca02400d1000000000200010000102000000000000284000"
)
NTTABLE_TYPE = H(
    "801465706963733a6e742f4e545461626c653a312e3005066c6162656c73680576616c7565800002046e616d65"
    "6801784b0a64657363726970746f726005616c61726d8007616c61726d5f7403087365766572697479220673"
    "746174757322076d657373616765600974696d655374616d70800674696d655f7403107365636f6e64735061"
    "737445706f6368230b6e616e6f7365636f6e647322077573657254616722"
)
S_TABLE_GET = H(
    "ca02400a270000000120001000ff011a02046e616d65017802016102626302000000000000f03f0000000000000440"
)


def test_pipelined_monitor_matches_pvxs() -> None:
    mon_ioid = 0x10002000
    srv = ServerConnection()
    srv.initiate()
    srv.receive_data(C_VALIDATION)
    list(srv.events())
    srv.send(ConnectionValidated())
    srv.receive_data(C_CREATE)
    list(srv.events())
    srv.send(CreateChannelResponse(CID, SID))
    srv.receive_data(C_PIPE_INIT)
    [init] = list(srv.events())
    assert isinstance(init, MonitorInit) and init.queue_size == 4
    from reckon.pva.protocol import request_options

    assert request_options(init.pv_request) == {"pipeline": "true", "queueSize": "4"}
    srv.send(MonitorInitResponse(mon_ioid, type=NT_D))
    srv.receive_data(C_MON_START.replace(b"\x03\x20\x00\x10", b"\x00\x20\x00\x10"))
    list(srv.events())
    srv.receive_data(C_PIPE_ACK)
    from reckon.pva.protocol import MonitorAck

    assert list(srv.events()) == [MonitorAck(SID, mon_ioid, 2)]
    v = nt.NTScalar("d").wrap(11.0)
    out = srv.send(MonitorUpdate(mon_ioid, v, BitSet([1])))
    out += srv.send(MonitorUpdate(mon_ioid, dict(v, value=12.0), BitSet([1])))
    assert out == S_PIPE_UPDATES

    cli = ClientConnection()
    cli.receive_data(S_OPEN)
    list(cli.events())
    cli.send(ConnectionValidationResponse.ca("root", "vm"))
    cli.receive_data(S_VALIDATED)
    list(cli.events())
    cli.send(CreateChannelRequest(CID, "TST"))
    cli.receive_data(S_CREATE)
    list(cli.events())
    req = pv_request("record[pipeline=true,queueSize=4]")
    assert cli.send(MonitorInit(SID, mon_ioid, req, queue_size=4)) == C_PIPE_INIT
    cli.receive_data(S_MON_INIT.replace(b"\x03\x20\x00\x10", b"\x00\x20\x00\x10"))
    list(cli.events())
    cli.send(MonitorStart(SID, mon_ioid))
    assert cli.send(MonitorAck(SID, mon_ioid, 2)) == C_PIPE_ACK


def test_nttable_type_and_value_match_pvxs() -> None:
    table = nt.NTTable([("name", "s"), ("x", "d")])
    assert encode_type(table.type) == NTTABLE_TYPE
    cli = ClientConnection()
    cli.receive_data(S_OPEN)
    list(cli.events())
    cli.send(ConnectionValidationResponse.ca("root", "vm"))
    cli.receive_data(S_VALIDATED)
    list(cli.events())
    cli.send(CreateChannelRequest(CID, "TBL"))
    cli.receive_data(S_CREATE)
    list(cli.events())
    ioid = 0x10002001
    cli.send(GetInit(SID, ioid, pv_request()))
    cli.receive_data(H("ca02400aa90000000120001008ff") + NTTABLE_TYPE)
    [init] = list(cli.events())
    assert isinstance(init, GetInitResponse) and init.type == table.type
    cli.send(Get(SID, ioid))
    cli.receive_data(S_TABLE_GET)
    [got] = list(cli.events())
    assert got.changed == BitSet([1, 3, 4])
    assert nt.NTTable.rows(got.value) == [{"name": "a", "x": 1.0}, {"name": "bc", "x": 2.5}]
    assert got.value["labels"] == ["name", "x"]


# -- UDP, captured from p4p: a server beacon and a client's unicast search (both big-endian) --
UDP_BEACON = H(
    "ca02c00000000027256357c3f56129668d9711ac0000000100000000000000000000ffff000000008cd903746370ff"
)
UDP_SEARCH = H(
    "ca0280030000003266696e648000000000000000000000000000000000000000bbf301037463700001"
    "123456780c5544503a5345415243484544"
)


def test_udp_datagrams_match_pvxs() -> None:
    from reckon.pva.protocol import Beacon

    d = Discovery(big_endian=True)
    [beacon] = d.decode(UDP_BEACON)
    assert beacon == Beacon(
        H("256357c3f56129668d9711ac"), sequence=0, change_count=1, address="0.0.0.0",
        port=0x8CD9, protocol="tcp", flags=0, status=None,
    )  # fmt: skip
    assert d.encode(beacon) == UDP_BEACON
    [search] = d.decode(UDP_SEARCH)
    assert search == SearchRequest(
        0x66696E64, ((CID, "UDP:SEARCHED"),), "0.0.0.0", 0xBBF3, unicast=True
    )
    assert d.encode(search) == UDP_SEARCH
