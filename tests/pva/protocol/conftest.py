"""Helpers shared by the protocol tests: an in-memory client/server pair."""

from __future__ import annotations

from typing import Any

import pytest

from reckon.pva.protocol import (
    ClientConnection,
    ConnectionValidated,
    ConnectionValidationResponse,
    CreateChannelRequest,
    CreateChannelResponse,
    Event,
    ServerConnection,
)


class Pair:
    """A validated server/client pair; ``c2s``/``s2c`` send an event and return what arrived."""

    def __init__(self, **kwargs: Any) -> None:
        ckw = {k: v for k, v in kwargs.items() if k != "big_endian"}
        self.server = ServerConnection(**kwargs)
        self.client = ClientConnection(**ckw)
        self.client.receive_data(self.server.initiate())
        list(self.client.events())
        self.c2s(ConnectionValidationResponse.ca("alice", "box"))
        self.s2c(ConnectionValidated())

    def c2s(self, ev: Event) -> list[Event]:
        self.server.receive_data(self.client.send(ev))
        return list(self.server.events())

    def s2c(self, ev: Event) -> list[Event]:
        self.client.receive_data(self.server.send(ev))
        return list(self.client.events())

    def channel(self, cid: int, name: str, sid: int) -> None:
        assert self.c2s(CreateChannelRequest(cid, name)) == [CreateChannelRequest(cid, name)]
        assert self.s2c(CreateChannelResponse(cid, sid)) == [CreateChannelResponse(cid, sid)]


@pytest.fixture(params=[False, True], ids=["little", "big"])
def pair(request: pytest.FixtureRequest) -> Pair:
    return Pair(big_endian=request.param)


@pytest.fixture
def make_pair() -> type[Pair]:
    return Pair
