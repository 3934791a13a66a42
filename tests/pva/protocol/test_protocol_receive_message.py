"""ServerConnection.receive_message, the server's shortcut for a read that holds exactly one
request of a polling or writing client (INIT with a known pvRequest, GET, PUT, a put's read,
DESTROY_REQUEST): it takes exactly what the general path (receive_data, next_event) turns into
the same event, with the same effect, and declines everything else without changing anything.

ServerConnection.receive_get is the same shortcut for a get operation's three messages, giving
a tuple instead of an event; it is held to the same contract."""

from __future__ import annotations

import uuid
from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from pva_protocol_strategies import Damage, damage, damaged  # type: ignore[import-not-found]

from reckon.pva.protocol import (
    GET_DESTROY,
    GET_EXECUTE,
    GET_INIT,
    NEED_DATA,
    BitSet,
    DestroyRequest,
    Get,
    GetInit,
    GetInitResponse,
    GetResponse,
    Put,
    PutInit,
    PutInitResponse,
    RequestState,
    nt,
    pv_request,
)

NT = nt.NTScalar("d")
REQ = pv_request("field()")


def _ready(pair: Any) -> None:
    """A get operation (ioid 7) and a put operation (ioid 8), both ready, on channel sid 2; the
    pvRequest ``REQ`` has been seen (so a new INIT with it can take the shortcut)."""
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
        {i: (r.command, r.sid, r.state, r.last, r.cancelled) for i, r in s.requests.items()},
    )


def _messages(pair: Any) -> dict[str, bytes]:
    """One valid message of each kind the shortcut takes, from the client's own encoder."""
    c = pair.client
    value_bit = BitSet.from_mask(1 << NT.type.offset_of("value"))
    put = c.send(Put(2, 8, NT.wrap(2.5), value_bit))
    return {
        "get": c.send(Get(2, 7)),
        "put": put,
        "init": c.send(GetInit(2, 9, REQ)),
        "destroy": c.send(DestroyRequest(2, 7)),
    }


def _event_of(got: tuple[int, int, int, Any] | None) -> Any:
    """receive_get's tuple as the event receive_message gives for the same bytes."""
    if got is None:
        return None
    step, sid, ioid, detail = got
    if step == GET_INIT:
        return GetInit(sid, ioid, detail)
    if step == GET_EXECUTE:
        return Get(sid, ioid, detail)
    assert step == GET_DESTROY and detail is None
    return DestroyRequest(sid, ioid)


def _receive(pair: Any, method: str, data: bytes) -> Any:
    """The event the shortcut ``method`` makes of ``data``, or None."""
    if method == "get":
        return _event_of(pair.server.receive_get(data))
    return pair.server.receive_message(data)


def _u32(data: bytes, offset: int, value: int) -> bytes:
    """``data`` with a little-endian u32 (a sid, an ioid) replaced: requests the client's
    encoder would refuse to make."""
    return data[:offset] + value.to_bytes(4, "little") + data[offset + 4 :]


def test_a_plain_get_is_taken_and_answered(pair: Any) -> None:
    _ready(pair)
    for _ in range(3):
        data = pair.client.send(Get(2, 7))
        before = pair.server.bytes_received
        ev = pair.server.receive_message(data)
        assert isinstance(ev, Get) and ev.ioid == 7 and not ev.destroy
        assert pair.server.requests[7].state is RequestState.EXECUTING
        assert pair.server.bytes_received == before + len(data)
        assert pair.server.next_event() is NEED_DATA  # consumed, nothing left over
        [r] = pair.s2c(GetResponse(7, value=NT.wrap(1.5)))
        assert isinstance(r, GetResponse) and r.value["value"] == 1.5


def test_a_get_cycle_of_new_operations_is_taken_whole(pair: Any) -> None:
    """p4p's get: INIT, GET, DESTROY on a new ioid each time, every message by the shortcut."""
    _ready(pair)
    for ioid in (20, 21, 22):
        ev = pair.server.receive_message(pair.client.send(GetInit(2, ioid, REQ)))
        assert isinstance(ev, GetInit) and ev.ioid == ioid and ev.pv_request == REQ
        assert pair.server.requests[ioid].state is RequestState.INIT_PENDING
        [resp] = pair.s2c(GetInitResponse(ioid, type=NT.type))
        assert resp.status.success
        assert isinstance(pair.server.receive_message(pair.client.send(Get(2, ioid))), Get)
        pair.s2c(GetResponse(ioid, value=NT.wrap(1.0)))
        ev = pair.server.receive_message(pair.client.send(DestroyRequest(2, ioid)))
        assert isinstance(ev, DestroyRequest) and ioid not in pair.server.requests


def test_receive_get_takes_p4ps_get_cycle_and_nothing_else(pair: Any) -> None:
    """INIT, GET, DESTROY as tuples, each with the general path's effect; a put, a GET that
    destroys and the messages of other operations are not its to take."""
    _ready(pair)
    s = pair.server
    for ioid in (20, 21):
        data = pair.client.send(GetInit(2, ioid, REQ))
        before = s.bytes_received
        assert s.receive_get(data) == (GET_INIT, 2, ioid, REQ)
        assert s.requests[ioid].state is RequestState.INIT_PENDING
        assert s.bytes_received == before + len(data)
        assert s.next_event() is NEED_DATA
        pair.s2c(GetInitResponse(ioid, type=NT.type))
        assert s.receive_get(pair.client.send(Get(2, ioid))) == (GET_EXECUTE, 2, ioid, False)
        assert s.requests[ioid].state is RequestState.EXECUTING
        pair.s2c(GetResponse(ioid, value=NT.wrap(1.0)))
        assert s.receive_get(pair.client.send(DestroyRequest(2, ioid))) == (
            GET_DESTROY,
            2,
            ioid,
            None,
        )
        assert ioid not in s.requests
    value_bit = BitSet.from_mask(1 << NT.type.offset_of("value"))
    put = pair.client.send(Put(2, 8, NT.wrap(2.5), value_bit))
    before = _snapshot(pair)
    assert s.receive_get(put) is None
    assert s.receive_get(pair.client.send(PutInit(2, 30, REQ))) is None
    assert _snapshot(pair) == before
    # a GET that also destroys its operation is taken, and says so
    assert s.receive_get(pair.client.send(Get(2, 7, destroy=True))) == (GET_EXECUTE, 2, 7, True)
    assert s.requests[7].last


def test_everything_else_is_declined_untouched(make_pair: Any) -> None:
    p, q = make_pair(), make_pair()
    _ready(p)
    _ready(q)
    msgs = _messages(p)
    get = msgs["get"]
    unseen = f"field(value,unseen{uuid.uuid4().hex})"
    cases = {
        "two gets in one read": get + get,
        "half a get": get[:9],
        "a get with a byte too many": get[:4] + (10).to_bytes(4, "little") + get[8:] + b"\0",
        "a put's get": get[:12] + (8).to_bytes(4, "little") + get[16:],
        "an init of a live ioid": _u32(msgs["init"], 12, 7),
        # (the decoded pvRequests are shared by connections: a new name is one never seen)
        "an init with an unseen pvRequest": q.client.send(GetInit(2, 9, pv_request(unseen))),
        "an init on an unknown channel": _u32(msgs["init"], 8, 5),
        "a destroy of another channel's ioid": _u32(msgs["destroy"], 8, 3),
        "a put that does not decode": msgs["put"][:-3],
    }
    for name, data in cases.items():
        for method in ("message", "get"):
            before = _snapshot(p)
            assert _receive(p, method, data) is None, (name, method)
            assert _snapshot(p) == before, (name, method)
    # bytes already buffered: the next GET belongs after them
    p.server.receive_data(get[:5])
    assert p.server.receive_message(get) is None
    assert p.server.receive_get(get) is None
    p.server.receive_data(get[5:])
    [ev] = list(p.server.events())
    assert isinstance(ev, Get)
    # executing: a second GET before the reply is the general path's to reject
    assert p.server.receive_message(get) is None
    assert p.server.receive_get(get) is None


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    kind=st.sampled_from(["get", "put", "init", "destroy"]),
    method=st.sampled_from(["message", "get"]),
    big=st.booleans(),
    how=damage(40, cut=(-3, 0)),
)
def test_shortcut_agrees_with_the_general_path(
    make_pair: Any, kind: str, method: str, big: bool, how: Damage
) -> None:
    """Any bytes near a valid request: taken only if the general path makes the same event of
    them, and then with the same effect on the connection."""
    fast, slow = make_pair(big_endian=big), make_pair(big_endian=big)
    for p in (fast, slow):
        _ready(p)
    data = damaged(_messages(fast)[kind], how)
    before = _snapshot(fast)
    ev = _receive(fast, method, bytes(data))
    event(f"{kind} by receive_{method}: {'declined' if ev is None else 'taken'}")
    if ev is None:
        assert _snapshot(fast) == before
        return
    slow.server.receive_data(bytes(data))
    expect = slow.server.next_event()
    assert type(expect) is type(ev) and expect == ev
    assert slow.server.next_event() is NEED_DATA
    assert _snapshot(fast) == _snapshot(slow)
