"""ServerConnection.receive_message for a client's connect: the validation response (no
credentials, a null variant, or pvxs's "ca" user and host) and one channel's creation are read
by a short path, and ConnectionValidated and CreateChannelResponse are written without the
encoder. Each is held to the general path: the same events, the same bytes, the same effect,
and anything else is declined untouched."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st
from pva_protocol_strategies import Damage, damage, damaged  # type: ignore[import-not-found]

from reckon.pva.protocol import (
    NEED_DATA,
    ClientConnection,
    ConnectionState,
    ConnectionValidated,
    ConnectionValidationResponse,
    CreateChannelRequest,
    CreateChannelResponse,
    RemoteProtocolError,
    ServerConnection,
    Status,
    Structure,
    VariantValue,
)

CREDENTIALS = {
    "ca": ConnectionValidationResponse.ca("alice", "box.example"),
    "anonymous": ConnectionValidationResponse(),
    "unicode ca": ConnectionValidationResponse.ca("zoë", "hôte"),
    "tuned": ConnectionValidationResponse("anonymous", None, 1 << 20, 100, 3),
}


def _asked(big: bool, **kw: Any) -> tuple[ServerConnection, ClientConnection]:
    """A server that asked a new client to validate, and that client. ``segment_size`` makes
    the server's send() take its general path (the shortcuts skip segmenting connections)."""
    server = ServerConnection(big_endian=big, **kw)
    client = ClientConnection()
    client.receive_data(server.initiate())
    list(client.events())
    return server, client


def _validated(big: bool, **kw: Any) -> tuple[ServerConnection, ClientConnection]:
    server, client = _asked(big, **kw)
    server.receive_data(client.send(ConnectionValidationResponse.ca("alice", "box")))
    list(server.events())
    client.receive_data(server.send(ConnectionValidated()))
    list(client.events())
    return server, client


def _effect(server: ServerConnection) -> Any:
    return (
        server.state,
        server.bytes_received,
        server.buffered,
        server.bytes_sent,
        {sid: (c.cid, c.name, c.sid, c.state) for sid, c in server.channels.items()},
    )


def test_a_connect_is_read_and_answered_as_the_general_path_does() -> None:
    for big in (False, True):
        for name, credentials in CREDENTIALS.items():
            fast, client = _asked(big)
            slow, _ = _asked(big, segment_size=4096)
            data = client.send(credentials)
            ev = fast.receive_message(data)
            assert ev == credentials, name
            assert fast.state is ConnectionState.VALIDATION_ANSWERED
            slow.receive_data(data)
            assert slow.next_event() == credentials
            assert _effect(fast) == _effect(slow)
            reply = fast.send(ConnectionValidated())
            assert reply == slow.send(ConnectionValidated())
            assert _effect(fast)[0] is ConnectionState.VALIDATED and _effect(fast) == _effect(slow)
            client.receive_data(reply)
            assert list(client.events()) == [ConnectionValidated()]
            for cid, sid, pv in ((1, 10, "pv:one"), (0xFFFFFFFF, 0xFFFFFFFF, "pv:två")):
                data = client.send(CreateChannelRequest(cid, pv))
                assert fast.receive_message(data) == CreateChannelRequest(cid, pv)
                slow.receive_data(data)
                assert slow.next_event() == CreateChannelRequest(cid, pv)
                reply = fast.send(CreateChannelResponse(cid, sid))
                assert reply == slow.send(CreateChannelResponse(cid, sid))
                assert _effect(fast) == _effect(slow) and fast.channels[sid].name == pv
                client.receive_data(reply)
                assert list(client.events()) == [CreateChannelResponse(cid, sid)]
            assert fast.next_event() is NEED_DATA


def test_the_ca_credentials_reach_the_event() -> None:
    fast, client = _asked(False)
    ev = fast.receive_message(client.send(CREDENTIALS["unicode ca"]))
    assert isinstance(ev, ConnectionValidationResponse)
    assert (ev.auth_method, ev.user, ev.host) == ("ca", "zoë", "hôte")


def test_failures_and_refusals_take_the_general_path() -> None:
    """A refused validation or channel goes out as the encoder writes it, with its message."""
    fast, client = _asked(False)
    slow, _ = _asked(False, segment_size=4096)
    data = client.send(ConnectionValidationResponse())
    fast.receive_message(data)
    slow.receive_data(data)
    slow.next_event()
    refusal = ConnectionValidated(Status.error("no anonymous users here"))
    assert fast.send(refusal) == slow.send(refusal)
    assert fast.state is ConnectionState.VALIDATION_ANSWERED
    fast, client = _validated(False)
    slow, _ = _validated(False, segment_size=4096)
    data = client.send(CreateChannelRequest(4, "nobody"))
    fast.receive_message(data)
    slow.receive_data(data)
    slow.next_event()
    missing = CreateChannelResponse(4, 0xFFFFFFFF, Status.error("no PV named 'nobody'"))
    assert fast.send(missing) == slow.send(missing)
    assert fast.channels == {}


def _validation(credentials: ConnectionValidationResponse) -> bytes:
    """The bytes of a validation response, from a new client's own encoder."""
    return _asked(False)[1].send(credentials)


def test_everything_else_is_declined_untouched() -> None:
    asked, _ = _asked(False)
    ca = _validation(CREDENTIALS["ca"])
    swapped = ConnectionValidationResponse(
        "ca", VariantValue(Structure([("host", "s"), ("user", "s")]), {"host": "b", "user": "a"})
    )
    other_type = ConnectionValidationResponse("x", VariantValue.of({"user": "a", "n": 1}))
    longer = ca[:4] + (len(ca) - 7).to_bytes(4, "little") + ca[8:] + b"\0"
    cases = {
        "two messages in one read": ca + ca,
        "half a message": ca[:20],
        "a size a byte short": ca[:4] + (len(ca) - 9).to_bytes(4, "little") + ca[8:],
        "trailing bytes after the credentials": longer,
        "other credentials' type": _validation(other_type),
        "the ca fields in the other order": _validation(swapped),
        "a user of 254 bytes": _validation(ConnectionValidationResponse.ca("u" * 254, "h")),
        "header version 0": ca[:1] + b"\0" + ca[2:],
        "a control message": ca[:2] + bytes([ca[2] | 1]) + ca[3:],
        "a message from a server": ca[:2] + bytes([ca[2] | 0x40]) + ca[3:],
    }
    for name, data in cases.items():
        before = _effect(asked)
        assert asked.receive_message(data) is None, name
        assert _effect(asked) == before, name
    validated, client = _validated(False)
    create = client.send(CreateChannelRequest(1, "pv"))
    assert asked.receive_message(create) is None  # a creation before the validation
    validated.receive_data(create)
    assert validated.next_event() == CreateChannelRequest(1, "pv")
    fresh = client.send(CreateChannelRequest(2, "pv"))  # a cid not in use
    cases = {
        "the same cid again, still being created": create,
        "two channels in one message": _two_channels(fresh),
        "a count of two, one channel's bytes": fresh[:8] + b"\x02" + fresh[9:],
        "an empty name": fresh[:4] + (7).to_bytes(4, "little") + fresh[8:14] + b"\0",
        # a second validation on a validated connection is the general path's (it re-opens it)
        "a validation when validated": ca,
        "a name of 254 bytes": _renamed(fresh, "n" * 254),
    }
    for name, data in cases.items():
        before = _effect(validated)
        assert validated.receive_message(data) is None, name
        assert _effect(validated) == before, name
    validated.receive_data(fresh[:5])  # bytes buffered ahead: the next message is after them
    assert validated.receive_message(fresh) is None
    # a cid in use on a connected channel: the general path refuses it
    connected, client = _validated(False)
    assert connected.receive_message(create) == CreateChannelRequest(1, "pv")
    connected.send(CreateChannelResponse(1, 3))
    before = _effect(connected)
    assert connected.receive_message(create) is None
    assert _effect(connected) == before
    connected.receive_data(create)
    with pytest.raises(RemoteProtocolError, match="already in use"):
        connected.next_event()
    # an event decoded and not yet taken: the next message belongs after it
    pending, client = _validated(False)
    pending.receive_data(_two_channels(client.send(CreateChannelRequest(5, "pv"))))
    assert pending.next_event() == CreateChannelRequest(5, "pv")
    before = _effect(pending)
    assert pending.receive_message(client.send(CreateChannelRequest(6, "other"))) is None
    assert _effect(pending) == before
    assert pending.next_event() == CreateChannelRequest(9, "pv")
    full, client = _validated(False, max_channels=1)
    full.receive_data(client.send(CreateChannelRequest(1, "pv")))
    full.next_event()
    before = _effect(full)
    assert full.receive_message(client.send(CreateChannelRequest(2, "pv"))) is None
    assert _effect(full) == before


def _two_channels(create: bytes) -> bytes:
    """A little-endian creation of one channel "pv" turned into a creation of two."""
    body = create[8:]
    one = body[2:]
    two = (2).to_bytes(2, "little") + one + (9).to_bytes(4, "little") + one[4:]
    return create[:4] + len(two).to_bytes(4, "little") + two


def _renamed(create: bytes, name: str) -> bytes:
    """A creation of cid 2 with a name of 254 bytes or more (its size in five bytes)."""
    raw = name.encode()
    body = (1).to_bytes(2, "little") + (2).to_bytes(4, "little") + b"\xfe"
    body += len(raw).to_bytes(4, "little") + raw
    return create[:4] + len(body).to_bytes(4, "little") + body


@settings(max_examples=400, deadline=None)
@given(
    kind=st.sampled_from([*CREDENTIALS, "create"]),
    big_server=st.booleans(),
    how=damage(60, cut=(-3, 2)),
)
def test_the_shortcut_agrees_with_the_general_path(
    kind: str, big_server: bool, how: Damage
) -> None:
    """Any bytes near a connect's message: taken only if the general path makes the same event
    of them, and then with the same effect (and the same reply)."""
    opened = _validated if kind == "create" else _asked
    fast, client = opened(big_server)
    slow, _ = opened(big_server)
    if kind == "create":
        data = damaged(client.send(CreateChannelRequest(7, "some:pv")), how)
    else:
        data = damaged(client.send(CREDENTIALS[kind]), how)
    before = _effect(fast)
    ev = fast.receive_message(bytes(data))
    event(f"{kind}: {'declined' if ev is None else 'taken'}")
    if ev is None:
        assert _effect(fast) == before
        return
    slow.receive_data(bytes(data))
    expect = slow.next_event()
    assert type(expect) is type(ev) and expect == ev
    assert slow.next_event() is NEED_DATA
    assert _effect(fast) == _effect(slow)
    reply: ConnectionValidated | CreateChannelResponse = ConnectionValidated()
    if isinstance(ev, CreateChannelRequest):
        reply = CreateChannelResponse(ev.cid, 5)
    assert fast.send(reply) == slow.send(reply)
    assert _effect(fast) == _effect(slow)
