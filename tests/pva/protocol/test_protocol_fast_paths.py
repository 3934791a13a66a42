"""The server's get and put cycles (what p4p sends) and the discovery shortcuts keep every rule
of the general path."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pva_protocol_strategies import Damage, damage, damaged  # type: ignore[import-not-found]

from reckon.pva.protocol import (
    ALL_CHANGED,
    BitSet,
    Command,
    DestroyRequest,
    Discovery,
    Get,
    GetInit,
    GetInitResponse,
    GetResponse,
    LocalProtocolError,
    Put,
    PutInit,
    PutInitResponse,
    PutRead,
    PutReadResponse,
    PutResponse,
    RemoteProtocolError,
    RequestState,
    SearchRequest,
    SearchResponse,
    Status,
    encode_type,
    encode_value,
    nt,
    pv_request,
)

NT = nt.NTScalar("d")


def _get_cycle(pair: Any, ioid: int, req: Any) -> Any:
    [init] = pair.c2s(GetInit(2, ioid, req))
    [resp] = pair.s2c(GetInitResponse.unchecked(ioid, Status.OK, NT.type))
    assert resp == GetInitResponse(ioid, type=NT.type)
    assert pair.c2s(Get(2, ioid)) == [Get(2, ioid)]
    [got] = pair.s2c(GetResponse.unchecked(ioid, Status.OK, NT.wrap(1.5), ALL_CHANGED, False))
    assert got.value["value"] == 1.5
    assert pair.c2s(DestroyRequest(2, ioid)) == [DestroyRequest(2, ioid)]
    assert ioid not in pair.server.requests
    return init


def test_fast_path_keeps_the_rules(pair: Any) -> None:
    pair.channel(1, "x", 2)
    req = pv_request("field(value)")
    _get_cycle(pair, 1, req)
    pair.c2s(GetInit(2, 5, req))  # recognised pvRequest: the fast path
    assert pair.server.requests[5].state is RequestState.INIT_PENDING
    # a GET before the init response is refused as on the general path
    bad = pair.client.send(GetInit(2, 6, req))  # another live ioid on the client side
    pair.server.receive_data(bad)
    list(pair.server.events())
    raw = bytearray(pair.server.send(GetInitResponse(6, type=NT.type)))
    assert bytes(raw[8:]) == (
        (6).to_bytes(4, "big" if pair.server.big_endian else "little")
        + b"\x08\xff"
        + encode_type(NT.type, pair.server.big_endian)
    )
    with pytest.raises(RemoteProtocolError, match="before its init completed"):
        pair.server.receive_data(_raw_get(pair, 2, 5))
        list(pair.server.events())


@pytest.mark.parametrize(
    ("bad", "error"),
    [
        (lambda p, req: _raw_init(p, 2, 7, req), "already in use"),  # ioid 7 is live
        (lambda p, req: _raw_init(p, 9, 8, req), "unknown channel"),
        (lambda p, req: _raw_destroy(p, 2, 99), "unknown ioid"),
    ],
    ids=["reused ioid", "unknown channel", "unknown ioid"],
)
def test_fast_path_refuses_reused_ioids_and_unknown_channels(
    make_pair: Any, bad: Any, error: str
) -> None:
    req = pv_request("field(value)")
    pair = make_pair()
    pair.channel(1, "x", 2)
    _get_cycle(pair, 1, req)
    pair.c2s(GetInit(2, 7, req))
    with pytest.raises(RemoteProtocolError, match=error):
        pair.server.receive_data(bad(pair, req))
        list(pair.server.events())


def test_destroy_races_still_dropped_quietly(pair: Any) -> None:
    pair.channel(1, "x", 2)
    _get_cycle(pair, 1, pv_request("field(value)"))
    pair.server.receive_data(_raw_destroy(pair, 2, 1))  # destroyed twice: a normal race
    assert list(pair.server.events()) == []


def test_put_cycle_with_read_back(pair: Any) -> None:
    pair.channel(1, "x", 2)
    req = pv_request("field(value)")
    for ioid in (1, 2):
        [init] = pair.c2s(PutInit(2, ioid, req))
        assert init == PutInit(2, ioid, req)
        [r] = pair.s2c(PutInitResponse.unchecked(ioid, Status.OK, NT.type))
        assert r.type == NT.type
        assert pair.c2s(PutRead(2, ioid)) == [PutRead(2, ioid)]
        [got] = pair.s2c(PutReadResponse(ioid, value=NT.wrap(3.0)))
        assert got.value["value"] == 3.0
        [put] = pair.c2s(Put(2, ioid, NT.wrap(4.0), BitSet([NT.type.offset_of("value")])))
        assert put.value["value"] == 4.0
        assert pair.s2c(PutResponse(ioid)) == [PutResponse(ioid)]
        pair.c2s(DestroyRequest(2, ioid))
    assert not pair.server.requests


def test_type_cache_references_are_not_taken_for_repeats(make_pair: Any) -> None:
    pair = make_pair(cache_types=True)
    pair.channel(1, "x", 2)
    req = pv_request("field(value)")
    for ioid in (1, 2, 3):  # the first carries 0xFD (define), the others 0xFE (reuse)
        [init] = pair.c2s(GetInit(2, ioid, req))
        assert init.pv_request == req
        pair.s2c(GetInitResponse(ioid, type=NT.type))
        pair.c2s(DestroyRequest(2, ioid))


def _ids(pair: Any, sid: int, ioid: int) -> bytes:
    order = "big" if pair.client.big_endian else "little"
    return sid.to_bytes(4, order) + ioid.to_bytes(4, order)


def _frame(pair: Any, cmd: int, payload: bytes) -> bytes:
    be = pair.client.big_endian
    return (
        bytes([0xCA, 2, 0x80 if be else 0, cmd])
        + len(payload).to_bytes(4, "big" if be else "little")
        + payload
    )


def _raw_get(pair: Any, sid: int, ioid: int) -> bytes:
    return _frame(pair, 0x0A, _ids(pair, sid, ioid) + b"\x00")


def _raw_destroy(pair: Any, sid: int, ioid: int) -> bytes:
    return _frame(pair, 0x0F, _ids(pair, sid, ioid))


def _raw_init(pair: Any, sid: int, ioid: int, req: Any) -> bytes:
    be = pair.client.big_endian
    body = encode_type(req.type, be) + encode_value(req.type, req.value, big_endian=be)
    return _frame(pair, 0x0A, _ids(pair, sid, ioid) + b"\x08" + body)


def test_structure_default_is_fresh_each_time() -> None:
    from reckon.pva.protocol import Structure

    t = nt.NTScalarArray("d").type
    a, b = t.default(), t.default()
    assert a["alarm"] == {"severity": 0, "status": 0, "message": ""}
    a["alarm"]["severity"] = 2
    a["value"] = None
    assert b["alarm"]["severity"] == 0 and t.default()["alarm"]["severity"] == 0
    assert len(t.default()["value"]) == 0
    odd = Structure([("it's", "s"), ("b", "?"), ("n", Structure([("x", "i")]))])
    assert odd.default() == {"it's": "", "b": False, "n": {"x": 0}}
    wide = Structure([(f"f{i}", "i") for i in range(2500)])  # over the generated-code limit
    assert wide.default()["f2499"] == 0


def test_type_descriptions_are_recognised_across_connections(make_pair: Any) -> None:
    from reckon.pva.protocol import ConnectionValidationResponse

    a, b = make_pair(), make_pair()  # both validated with "ca": a structure of user and host
    assert a.server.state == b.server.state
    for p in (a, b):
        p.channel(1, "x", 2)
    t1 = a.c2s(PutInit(2, 1, pv_request("field(value,alarm.severity)")))[0].pv_request.type
    t2 = b.c2s(PutInit(2, 1, pv_request("field(value,alarm.severity)")))[0].pv_request.type
    assert t1 is t2
    assert ConnectionValidationResponse.ca("u", "h") == ConnectionValidationResponse.ca("u", "h")


@settings(max_examples=200, deadline=None)
@given(
    big=st.booleans(),
    guid=st.binary(min_size=12, max_size=12),
    address=st.sampled_from(["127.0.0.1", "10.1.2.3", "0.0.0.0", "::1", "fe80::1"]),
    port=st.integers(0, 0xFFFF),
    protocol=st.sampled_from(["tcp", "tls"]),
    sequence=st.integers(0, 0xFFFFFFFF),
    found=st.booleans(),
    cids=st.one_of(
        st.lists(st.integers(0, 0xFFFFFFFF), min_size=1, max_size=1),  # a connect's answer
        st.lists(st.integers(0, 0xFFFFFFFF), max_size=20),
    ),
)
def test_search_answers_are_the_encoded_response(
    big: bool,
    guid: bytes,
    address: str,
    port: int,
    protocol: str,
    sequence: int,
    found: bool,
    cids: list[int],
) -> None:
    """The responder's precomputed answer is the datagram encode(SearchResponse(...)) gives."""
    d = Discovery(big_endian=big)
    answer = d.search_answers(guid, address, port, protocol)
    expect = d.encode(SearchResponse(guid, sequence, address, port, found, tuple(cids), protocol))
    assert answer(sequence, found, tuple(cids)) == expect
    [back] = Discovery().decode(expect)
    assert isinstance(back, SearchResponse) and back.cids == tuple(cids)


_names = st.text(st.characters(codec="utf-8"), max_size=40)
_searches = st.builds(
    SearchRequest,
    sequence=st.integers(0, 0xFFFFFFFF),
    channels=st.one_of(
        st.lists(st.tuples(st.integers(0, 0xFFFFFFFF), _names), min_size=1, max_size=1),
        st.lists(st.tuples(st.integers(0, 0xFFFFFFFF), _names), max_size=6),
    ),
    response_address=st.sampled_from(["0.0.0.0", "127.0.0.1", "10.1.2.3", "::1", "fe80::1"]),
    response_port=st.integers(0, 0xFFFF),
    reply_required=st.booleans(),
    unicast=st.booleans(),
    protocols=st.sampled_from([("tcp",), ("tls",), ("tcp", "tls"), ()]),
)


def _decoded(data: bytes) -> list[Any] | None:
    try:
        return Discovery().decode(data)
    except RemoteProtocolError:
        return None


def _agrees(taken: tuple[int, int, str, str, int, bool] | None, data: bytes) -> bool:
    """``search_one``'s reading of ``data`` is None or what ``decode`` reads in it."""
    if taken is None:
        return True
    decoded = _decoded(data)
    if decoded is None or len(decoded) != 1 or not isinstance(decoded[0], SearchRequest):
        return False
    ev = decoded[0]
    sequence, cid, name, address, port, required = taken
    return (
        ev.channels == ((cid, name),)
        and (ev.sequence, ev.response_address, ev.response_port) == (sequence, address, port)
        and ev.reply_required == required
        and ev.protocols == ("tcp",)
    )


@settings(max_examples=300, deadline=None)
@given(
    search=_searches,
    big=st.booleans(),
    how=damage(200),
)
def test_the_search_shortcut_reads_what_decode_reads(
    search: SearchRequest, big: bool, how: Damage
) -> None:
    """``search_one`` (the responder's short path) gives, for any datagram, either None or
    what ``decode`` reads in it: valid searches of every shape, then bytes changed, cut short
    or lengthened. It takes the usual shape (one name, protocol "tcp"): a shortcut that took
    nothing would pass the first assertion, not the second."""
    data = bytearray(Discovery(big_endian=big).encode(search))
    usual = search.protocols == ("tcp",)
    taken = Discovery().search_one(bytes(data))
    assert _agrees(taken, bytes(data))
    if usual and len(search.channels) == 1 and len(search.channels[0][1].encode()) < 254:
        [(cid, name)] = search.channels
        assert taken == (
            search.sequence,
            cid,
            name,
            search.response_address,
            search.response_port,
            search.reply_required,
        )
    near = damaged(data, how)
    assert _agrees(Discovery().search_one(near), near)


def test_search_answers_check_what_they_encode_once() -> None:
    with pytest.raises(LocalProtocolError):
        Discovery().search_answers(b"short", "127.0.0.1", 5075)
    with pytest.raises(LocalProtocolError):
        Discovery().search_answers(b"g" * 12, "127.0.0.1", 70000)


def test_init_ok_is_the_init_response_sent(make_pair: Any) -> None:
    """send_init_ok gives the bytes send() gives for the same response, segmented or not, and
    refuses what send() refuses."""
    for kw in ({}, {"segment_size": 16}, {"big_endian": True}):
        p, q = make_pair(**kw), make_pair(**kw)
        for x in (p, q):
            x.channel(1, "x", 2)
            x.c2s(GetInit(2, 7))
        data = p.server.send_init_ok(7, int(Command.GET), NT.type)
        assert data == q.server.send(GetInitResponse(7, type=NT.type))
        p.client.receive_data(data)
        assert list(p.client.events()) == [GetInitResponse(7, type=NT.type)]
        with pytest.raises(LocalProtocolError):
            p.server.send_init_ok(7, int(Command.GET), NT.type)  # answered already
        with pytest.raises(LocalProtocolError):
            p.server.send_init_ok(8, int(Command.GET), NT.type)  # no such request
        # the prepared reply again (another ioid), for a put, and for another type
        other = nt.NTScalar("i").type
        for ioid, init, reply, cmd, t in (
            (9, GetInit(2, 9), GetInitResponse, Command.GET, NT.type),
            (11, PutInit(2, 11), PutInitResponse, Command.PUT, NT.type),
            (13, GetInit(2, 13), GetInitResponse, Command.GET, other),
        ):
            for x in (p, q):
                x.c2s(init)
            data = p.server.send_init_ok(ioid, int(cmd), t)
            assert data == q.server.send(reply(ioid, type=t))
            p.client.receive_data(data)
            assert list(p.client.events()) == [reply(ioid, type=t)]


def test_every_response_starts_with_its_ioid() -> None:
    """A prepared reply leaves the ioid as a hole right after the header: every message a
    server sends about an operation writes it first."""
    from reckon.pva.protocol import MESSAGES

    for row in MESSAGES:
        if row.sender == "server" and "ioid" in row.layout:
            assert row.layout.startswith("ioid:u32"), row.event.__name__
