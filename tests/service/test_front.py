"""The one port's decision (reckon.service.front.Sniff), sans I/O: real HTTP/2 client bytes from
the h2 library, the settings exchange a grpcio client waits for, and fuzzed input. What serves
gRPC once decided: test_h2grpc.py."""

from __future__ import annotations

import h2.config
import h2.connection
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reckon.service.front import PREFACE, SERVER_SETTINGS, SNIFF_LIMIT, Sniff


def client(content_type: str, *, padded: bool = False) -> tuple[bytes, bytes]:
    """An HTTP/2 client's opening (preface, SETTINGS) and its first request's HEADERS."""
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    conn.initiate_connection()
    opening = conn.data_to_send()
    headers = [
        (":method", "POST"),
        (":scheme", "http"),
        (":path", "/rtest.Feed/Count"),
        (":authority", "127.0.0.1"),
        ("content-type", content_type),
        ("te", "trailers"),
    ]
    conn.send_headers(1, headers)
    request = conn.data_to_send()
    if padded:  # the same header block, padded and with a priority (flags PADDED, PRIORITY)
        block = request[9:]
        body = bytes([7]) + bytes(5) + block + bytes(7)
        flags = request[4] | 0x8 | 0x20
        request = len(body).to_bytes(3, "big") + bytes([1, flags]) + request[5:9] + body
    return opening, request


@pytest.mark.parametrize(
    ("content_type", "where"),
    [
        ("application/grpc", "grpc"),
        ("application/grpc+proto", "grpc"),
        ("application/grpc; charset=utf-8", "grpc"),
        ("application/grpc+json", "http"),  # connectrpc's codecs, behind hypercorn
        ("application/grpc-web+proto", "http"),
        ("application/proto", "http"),  # Connect
        ("application/json", "http"),
    ],
)
@pytest.mark.parametrize("padded", [False, True])
def test_the_first_request_decides(content_type: str, where: str, padded: bool) -> None:
    opening, request = client(content_type, padded=padded)
    sniff = Sniff()
    assert sniff.feed(opening + request) == b""  # all there: nothing to send, no waiting
    assert sniff.route == where
    assert sniff.replay() == opening + request


def test_a_client_waiting_for_settings_gets_them_and_the_answer_is_cut() -> None:
    """grpcio's C core sends its first request only after the server's SETTINGS."""
    opening, request = client("application/grpc")
    sniff = Sniff()
    assert sniff.feed(opening) == SERVER_SETTINGS
    assert sniff.route is None
    ack = bytes([0, 0, 0, 4, 1, 0, 0, 0, 0])
    assert sniff.feed(request) == b"" and sniff.route is None  # the acknowledgement is due
    assert sniff.feed(ack) == b"" and sniff.route == "grpc"
    assert sniff.replay() == opening + request  # the server never sees an answer to our settings
    # the same in another order, byte by byte
    sniff = Sniff()
    sent = b"".join(sniff.feed(bytes([b])) for b in opening)
    assert sent == SERVER_SETTINGS
    for b in ack + request:
        sniff.feed(bytes([b]))
    assert sniff.route == "grpc" and sniff.replay() == opening + request


@pytest.mark.parametrize(
    "head",
    [b"POST /rtest.Feed/Count HTTP/1.1\r\n", b"G", b"\x16\x03\x01", PREFACE[:5] + b"x"],
)
def test_anything_else_goes_to_hypercorn_at_once(head: bytes) -> None:
    sniff = Sniff()
    assert sniff.feed(head) == b"" and sniff.route == "http" and sniff.replay() == head


def test_a_connection_that_never_shows_a_request_goes_to_hypercorn() -> None:
    sniff = Sniff()
    sniff.feed(PREFACE)
    ping = bytes([0, 0, 8, 6, 0, 0, 0, 0, 0]) + b"\0" * 8
    while sniff.route is None:
        sniff.feed(ping)
    assert sniff.route == "http" and len(sniff.replay()) >= SNIFF_LIMIT


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=300), st.lists(st.integers(1, 40), max_size=8))
def test_any_bytes_make_a_decision_or_wait_and_never_raise(tail: bytes, cuts: list[int]) -> None:
    data = PREFACE + tail
    sniff = Sniff()
    pos = 0
    for cut in [*cuts, len(data)]:
        sniff.feed(data[pos : pos + cut])
        pos += cut
    sniff.feed(data[pos:])
    assert sniff.route in (None, "grpc", "http")
    if sniff.route is not None:
        replay = sniff.replay()
        assert len(replay) in (len(data), len(data) - 9)  # at most our settings' answer is cut


@given(st.binary(max_size=200))
def test_fuzzed_first_bytes_never_raise(head: bytes) -> None:
    sniff = Sniff()
    sniff.feed(head)
    assert sniff.route in (None, "grpc", "http")
