"""ServerConnection.receive_get, the server's shortcut for a plain GET: it takes exactly what the
general path (receive_data, next_event) would turn into a Get event, with the same effect, and
declines everything else without changing anything."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reckon.pva.protocol import (
    NEED_DATA,
    Get,
    GetInit,
    GetInitResponse,
    GetResponse,
    PutInit,
    PutInitResponse,
    RequestState,
    nt,
)

NT = nt.NTScalar("d")


def _ready(pair: Any) -> None:
    """A get operation (ioid 7) and a put operation (ioid 8), both ready, on channel sid 2."""
    pair.channel(1, "x", 2)
    pair.c2s(GetInit(2, 7))
    pair.s2c(GetInitResponse(7, type=NT.type))
    pair.c2s(PutInit(2, 8))
    pair.s2c(PutInitResponse(8, type=NT.type))


def _snapshot(pair: Any) -> Any:
    s = pair.server
    return (
        s.bytes_received,
        s.buffered,
        s.state,
        {i: (r.state, r.last, r.cancelled) for i, r in s.requests.items()},
    )


def test_a_plain_get_is_taken_and_answered(pair: Any) -> None:
    _ready(pair)
    for _ in range(3):
        data = pair.client.send(Get(2, 7))
        before = pair.server.bytes_received
        assert pair.server.receive_get(data) == 7
        assert pair.server.requests[7].state is RequestState.EXECUTING
        assert pair.server.bytes_received == before + len(data)
        assert pair.server.next_event() is NEED_DATA  # consumed, nothing left over
        [r] = pair.s2c(GetResponse(7, value=NT.wrap(1.5)))
        assert isinstance(r, GetResponse) and r.value["value"] == 1.5


def test_everything_else_is_declined_untouched(make_pair: Any) -> None:
    p, q = make_pair(), make_pair()
    _ready(p)
    _ready(q)
    get = p.client.send(Get(2, 7))
    cases = {
        "destroy flag": q.client.send(Get(2, 7, destroy=True)),
        "two gets in one read": get + get,
        "half a get": get[:9],
        "a put's get": b"",  # filled below
    }
    # the same bytes with the put operation's ioid: a GET on a put operation
    cases["a put's get"] = get[:12] + (8).to_bytes(4, "little") + get[16:]
    for name, data in cases.items():
        before = _snapshot(p)
        assert p.server.receive_get(data) is None, name
        assert _snapshot(p) == before, name
    # bytes already buffered: the next GET belongs after them
    p.server.receive_data(get[:5])
    assert p.server.receive_get(get) is None
    p.server.receive_data(get[5:])
    [ev] = list(p.server.events())
    assert isinstance(ev, Get)
    # executing: a second GET before the reply is the general path's to reject
    assert p.server.receive_get(get) is None


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    big=st.booleans(),
    edits=st.lists(st.tuples(st.integers(0, 16), st.integers(0, 255)), max_size=3),
)
def test_shortcut_agrees_with_the_general_path(
    make_pair: Any, big: bool, edits: list[tuple[int, int]]
) -> None:
    """Any 17 bytes near a valid GET: taken only if the general path makes the same Get of
    them, and then with the same effect on the connection."""
    fast, slow = make_pair(big_endian=big), make_pair(big_endian=big)
    for p in (fast, slow):
        _ready(p)
    data = bytearray(fast.client.send(Get(2, 7)))
    for pos, value in edits:
        data[pos] = value
    before = _snapshot(fast)
    ioid = fast.server.receive_get(bytes(data))
    if ioid is None:
        assert _snapshot(fast) == before
        return
    slow.server.receive_data(bytes(data))
    ev = slow.server.next_event()
    assert isinstance(ev, Get) and ev.ioid == ioid and not ev.destroy
    assert slow.server.next_event() is NEED_DATA
    assert _snapshot(fast) == _snapshot(slow)
