"""Messages over ``max_message_size``: read past without buffering, and answered. A request
too big for the server gets its operation's error reply (the connection stays up); a reply
too big for the client fails its operation once, with a status that says so."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from reckon.pva.protocol import (
    NEED_DATA,
    BitSet,
    ClientConnection,
    ConnectionValidated,
    ConnectionValidationResponse,
    CreateChannelRequest,
    CreateChannelResponse,
    Get,
    GetInit,
    GetInitResponse,
    GetResponse,
    MessageTooBig,
    MonitorFinish,
    MonitorInit,
    MonitorInitResponse,
    MonitorStart,
    MonitorUpdate,
    Put,
    PutInit,
    PutInitResponse,
    PutResponse,
    RequestState,
    ServerConnection,
    nt,
)

ARRAY = nt.NTScalarArray("d")
BIG = np.arange(2000, dtype=np.float64)  # 16,000 bytes of value: over the 4,000 byte limit


def _pair(server_limit: int, client_limit: int, segment: int | None = None) -> Any:
    server = ServerConnection(max_message_size=server_limit, segment_size=segment)
    client = ClientConnection(max_message_size=client_limit, segment_size=segment)
    client.receive_data(server.initiate())
    list(client.events())
    server.receive_data(client.send(ConnectionValidationResponse()))
    list(server.events())
    client.receive_data(server.send(ConnectionValidated()))
    list(client.events())
    server.receive_data(client.send(CreateChannelRequest(1, "x")))
    list(server.events())
    client.receive_data(server.send(CreateChannelResponse(1, 2)))
    list(client.events())
    return server, client


def _feed(conn: Any, data: bytes, chunk: int = 700) -> list[Any]:
    """``data`` in small reads, as a socket delivers a big message; the events it gives."""
    out: list[Any] = []
    for i in range(0, len(data), chunk):
        conn.receive_data(data[i : i + chunk])
        assert conn.buffered <= 4000 + 2 * chunk  # the limit at most: never the whole message
        out.extend(conn.events())
    return out


@pytest.mark.parametrize("segment", [None, 1024])
def test_a_put_over_the_servers_limit_gets_an_error_reply(segment: int | None) -> None:
    server, client = _pair(4000, 1 << 20, segment)
    server.receive_data(client.send(PutInit(2, 5)))
    list(server.events())
    client.receive_data(server.send(PutInitResponse(5, type=ARRAY.type)))
    list(client.events())
    [ev] = _feed(server, client.send(Put(2, 5, ARRAY.wrap(BIG), BitSet([1]))))
    assert isinstance(ev, MessageTooBig) and ev.ioid == 5 and ev.size > 16000
    assert isinstance(ev.reply, PutResponse)
    client.receive_data(server.send(ev.reply))
    [answer] = client.events()
    assert isinstance(answer, PutResponse) and not answer.status.success
    assert "max_message_size" in answer.status.message
    # the operation and the connection go on: a small put works
    server.receive_data(client.send(Put(2, 5, ARRAY.wrap([1.0]), BitSet([1]))))
    [put] = server.events()
    assert isinstance(put, Put) and list(put.value["value"]) == [1.0]


@pytest.mark.parametrize("segment", [None, 1024])
def test_a_get_reply_over_the_clients_limit_fails_that_get_once(segment: int | None) -> None:
    server, client = _pair(1 << 20, 4000, segment)
    server.receive_data(client.send(GetInit(2, 5)))
    list(server.events())
    client.receive_data(server.send(GetInitResponse(5, type=ARRAY.type)))
    list(client.events())
    server.receive_data(client.send(Get(2, 5)))
    list(server.events())
    [ev] = _feed(client, server.send(GetResponse(5, value=ARRAY.wrap(BIG))))
    assert isinstance(ev, GetResponse) and not ev.status.success
    assert "4000" in ev.status.message and "max_message_size" in ev.status.message
    assert client.requests[5].state is RequestState.READY
    assert client.next_event() is NEED_DATA
    # a small value on the same operation arrives as usual
    server.receive_data(client.send(Get(2, 5)))
    list(server.events())
    client.receive_data(server.send(GetResponse(5, value=ARRAY.wrap([2.0]))))
    [ok] = client.events()
    assert ok.status.success and list(ok.value["value"]) == [2.0]


def test_a_monitor_update_over_the_clients_limit_ends_the_subscription_with_why() -> None:
    server, client = _pair(1 << 20, 4000)
    server.receive_data(client.send(MonitorInit(2, 5)))
    list(server.events())
    client.receive_data(server.send(MonitorInitResponse(5, type=ARRAY.type)))
    list(client.events())
    server.receive_data(client.send(MonitorStart(2, 5)))
    list(server.events())
    [ev] = _feed(client, server.send(MonitorUpdate(5, ARRAY.wrap(BIG))))
    assert isinstance(ev, MonitorFinish) and "max_message_size" in ev.status.message
    # later updates for it are read past and dropped silently
    assert _feed(client, server.send(MonitorUpdate(5, ARRAY.wrap(BIG)))) == []
    assert 5 not in client.requests
