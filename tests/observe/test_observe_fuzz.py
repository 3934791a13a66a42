"""Malformed frames fuzzed against a real server: every one gets an error reply, the connection
and the server stay up."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.sync.client import ClientConnection
from websockets.sync.client import connect as ws_connect

from reckon.core import Engine
from reckon.observe import Client, ServerHandle, serve
from reckon.observe import protocol as p


@pytest.fixture(scope="module")
def fuzz_server() -> Iterator[ServerHandle]:
    engine = Engine(name="fuzz")
    handle = serve(engine)
    yield handle
    handle.stop()
    engine.close()


@pytest.fixture(scope="module")
def conn(fuzz_server: ServerHandle) -> Iterator[ClientConnection]:
    with ws_connect(fuzz_server.ws_url, max_size=None) as ws:
        yield ws


def _roundtrip(ws: ClientConnection, frame: bytes | str) -> dict[str, Any]:
    ws.send(frame)
    reply = p.loads(ws.recv(timeout=10))
    assert reply["v"] == p.PROTOCOL_VERSION
    return reply


_FUZZ = settings(
    max_examples=int(os.environ.get("RECKON_FUZZ_EXAMPLES", "150")),
    deadline=None,
    suppress_health_check=list(HealthCheck),
)

_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats()
    | st.text(max_size=20)
)
_values = st.recursive(
    _scalars | st.binary(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=10,
)
_json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=10,
)
# Messages that look almost right: a real type with random fields and values.
_near_misses = st.fixed_dictionaries(
    {
        "v": st.sampled_from([1, 1, 1, 0, 2, "1", None]),
        "id": st.one_of(st.integers(-5, 2**64 - 1), st.text(max_size=3), st.none()),
        "type": st.one_of(st.sampled_from(sorted(p.REQUEST_TYPES)), st.text(max_size=10)),
    },
    optional={
        "task_id": _values,
        "state": _values,
        "title": _values,
        "limit": _values,
        "level": _values,
        "enabled": _values,
        "status_interval": _values,
        "queue": _values,
        "sub": _values,
        "token": _values,
        "junk": _values,
    },
)

# Near misses that are in fact valid would change server state in unbounded ways (a huge queue
# subscription, capture off): keep the fuzz to reads plus errors.
_SAFE = {"hello", "status", "tasks", "task", "ping", "unsubscribe"}


@_FUZZ
@given(frame=st.binary(max_size=512))
def test_random_bytes(conn: ClientConnection, frame: bytes) -> None:
    reply = _roundtrip(conn, frame)
    assert reply["type"] in ("error", "result")
    if reply["type"] == "result":  # the bytes happened to be a valid request
        p.decode_request(frame)


@_FUZZ
@given(obj=_values)
def test_random_msgpack_values(conn: ClientConnection, obj: Any) -> None:
    frame = msgpack.packb(obj, use_bin_type=True)
    reply = _roundtrip(conn, frame)
    assert reply["type"] == "error"


@_FUZZ
@given(obj=_json_values)
def test_random_json_values(conn: ClientConnection, obj: Any) -> None:
    import json

    reply = _roundtrip(conn, json.dumps(obj))
    assert reply["type"] == "error"


@_FUZZ
@given(message=_near_misses)
def test_near_miss_requests(conn: ClientConnection, message: dict[str, Any]) -> None:
    try:
        request = p.parse_request(message)
    except p.ProtocolViolation as exc:
        reply = _roundtrip(conn, msgpack.packb(message, use_bin_type=True))
        assert reply["type"] == "error"
        assert reply["code"] == exc.code
        return
    if request.type not in _SAFE:
        return
    reply = _roundtrip(conn, msgpack.packb(message, use_bin_type=True))
    assert reply["id"] == request.id
    assert reply["type"] in ("result", "error")
    if reply["type"] == "error":
        assert reply["code"] in ("not_found",)


def test_server_is_still_fine_after_the_fuzz(
    fuzz_server: ServerHandle, conn: ClientConnection
) -> None:
    assert _roundtrip(conn, p.encode_request(p.Request(1, "ping")))["type"] == "result"
    with Client(fuzz_server.url) as client:
        assert client.status()["engine"]["name"] == "fuzz"
