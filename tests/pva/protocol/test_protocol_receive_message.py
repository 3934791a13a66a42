"""ServerConnection.receive_message: a read that holds exactly one whole request skips the
framer and the event queue, and nothing else differs. It takes exactly those bytes and gives
the events and the effect ``receive_data`` then ``next_event`` give (errors included, sticky),
and declines everything else without changing anything."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pva_protocol_strategies import Damage, damage, damaged  # type: ignore[import-not-found]

from reckon.pva.protocol import (
    NEED_DATA,
    BitSet,
    ClientConnection,
    ConnectionValidated,
    ConnectionValidationResponse,
    CreateChannelRequest,
    DestroyRequest,
    Get,
    GetInit,
    GetInitResponse,
    ProtocolError,
    Put,
    PutInit,
    PutInitResponse,
    ServerConnection,
    nt,
    pv_request,
)

NT = nt.NTScalar("d")
REQ = pv_request("field()")


def _ready(pair: Any) -> None:
    """A get operation (ioid 7) and a put operation (ioid 8), both ready, on channel sid 2."""
    pair.channel(1, "x", 2)
    pair.c2s(GetInit(2, 7, REQ))
    pair.s2c(GetInitResponse(7, type=NT.type))
    pair.c2s(PutInit(2, 8, REQ))
    pair.s2c(PutInitResponse(8, type=NT.type))


def _snapshot(pair: Any) -> Any:
    s = pair.server
    return (
        s.bytes_received,
        s.buffered,
        s.state,
        dict(s.channels),
        {i: (r.command, r.sid, r.state, r.last, r.cancelled) for i, r in s.requests.items()},
    )


def _messages(pair: Any) -> dict[str, bytes]:
    c = pair.client
    value_bit = BitSet.from_mask(1 << NT.type.offset_of("value"))
    return {
        "get": c.send(Get(2, 7)),
        "put": c.send(Put(2, 8, NT.wrap(2.5), value_bit)),
        "init": c.send(GetInit(2, 9, REQ)),
        "destroy": c.send(DestroyRequest(2, 7)),
        "create": c.send(CreateChannelRequest(5, "other")),
    }


def _outcome(server: Any) -> Any:
    """Every event the server has now, or the kind of error it raises (the text of a low-level
    one depends on whether the value's decoder was compiled yet)."""
    try:
        return list(server.events())
    except ProtocolError as exc:
        return type(exc)


def _taken(server: Any, data: bytes) -> Any:
    """What receive_message gives: the events, the kind of error it raises, or None."""
    try:
        return server.receive_message(data)
    except ProtocolError as exc:
        return type(exc)


def test_a_connect_and_a_get_are_the_general_paths_events() -> None:
    for big in (False, True):
        whole, buffered = ServerConnection(big_endian=big), ServerConnection(big_endian=big)
        client = ClientConnection()
        client.receive_data(whole.initiate())
        buffered.initiate()
        list(client.events())
        for ev in (
            ConnectionValidationResponse.ca("alice", "box"),
            CreateChannelRequest(1, "x"),
            GetInit(2, 7, REQ),
        ):
            data = client.send(ev)
            assert whole.receive_message(data) == [ev]
            assert whole.next_event() is NEED_DATA  # (given, not queued)
            buffered.receive_data(data)
            assert _outcome(buffered) == [ev]
            if isinstance(ev, ConnectionValidationResponse):
                client.receive_data(whole.send(ConnectionValidated()))
                buffered.send(ConnectionValidated())
                list(client.events())
            elif isinstance(ev, CreateChannelRequest):
                from reckon.pva.protocol import CreateChannelResponse

                client.receive_data(whole.send(CreateChannelResponse(1, 2)))
                buffered.send(CreateChannelResponse(1, 2))
                list(client.events())
        assert whole.bytes_received == buffered.bytes_received


def test_everything_else_is_declined_untouched(make_pair: Any) -> None:
    p = make_pair()
    _ready(p)
    get = _messages(p)["get"]
    cases = {
        "two gets in one read": get + get,
        "a get and a byte": get + b"\0",
        "half a get": get[:9],
        "a control message": bytes([0xCA, 2, 0x01, 3, 0, 0, 0, 0]),
        "a segment": get[:2] + bytes([get[2] | 0x10]) + get[3:],
        "a server's message": get[:2] + bytes([get[2] | 0x40]) + get[3:],
    }
    for name, data in cases.items():
        before = _snapshot(p)
        assert p.server.receive_message(data) is None, name
        assert _snapshot(p) == before, name
    # bytes already buffered: the next GET belongs after them
    p.server.receive_data(get[:5])
    assert p.server.receive_message(get) is None
    p.server.receive_data(get[5:])
    [ev] = list(p.server.events())
    assert isinstance(ev, Get)


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    kind=st.sampled_from(["get", "put", "init", "destroy", "create"]),
    big=st.booleans(),
    how=damage(40, cut=(-3, 3)),
)
def test_any_bytes_give_what_the_general_path_gives(
    make_pair: Any, kind: str, big: bool, how: Damage
) -> None:
    """Any bytes near a valid request: declined untouched, or taken with the same events (or
    the same error) and the same effect as the general path."""
    whole, buffered = make_pair(big_endian=big), make_pair(big_endian=big)
    for p in (whole, buffered):
        _ready(p)
    data = damaged(_messages(whole)[kind], how)
    before = _snapshot(whole)
    taken = _taken(whole.server, data)
    if taken is None:
        assert _snapshot(whole) == before
        return
    buffered.server.receive_data(data)
    assert taken == _outcome(buffered.server)
    if not isinstance(taken, list):  # an error stays: the next call raises it again
        assert _outcome(whole.server) == taken
    if whole.server.state == buffered.server.state and "ERROR" not in str(whole.server.state):
        assert _snapshot(whole) == _snapshot(buffered)
        assert whole.server.next_event() is NEED_DATA


def test_a_segmented_message_under_way_declines_until_its_last_segment(make_pair: Any) -> None:
    """The first segment of a message, once read, leaves nothing buffered but the message
    under way: a whole request is declined until the last segment ends it (the framer's idle
    state), then taken again."""
    import struct

    p = make_pair()
    _ready(p)
    msgs = _messages(p)
    get, put = msgs["get"], msgs["put"]
    payload, k = get[8:], 4

    def segment(flag: int, part: bytes) -> bytes:
        return bytes([get[0], get[1], get[2] | flag, get[3]]) + struct.pack("<I", len(part)) + part

    p.server.receive_data(segment(0x10, payload[:k]))  # the first segment
    assert list(p.server.events()) == []
    assert p.server.receive_message(put) is None  # it belongs after the message under way
    p.server.receive_data(segment(0x20, payload[k:]))  # the last
    assert [type(ev) for ev in p.server.events()] == [Get]
    assert [type(ev) for ev in p.server.receive_message(put) or []] == [Put]
