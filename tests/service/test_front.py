"""The one port's decision (reckon.service.front.Sniff), sans I/O: real HTTP/2 client bytes from
the h2 library, the settings exchange a grpcio client waits for, and fuzzed input; and the relay
of a gRPC connection, with a real grpcio server and client."""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
import threading
import time

import grpc
import grpc.aio
import h2.config
import h2.connection
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reckon.service.front import PREFACE, SERVER_SETTINGS, SNIFF_LIMIT, Front, Sniff


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


async def _echo(request: bytes, context: object) -> bytes:
    return request


async def test_a_relayed_grpc_connection_carries_big_messages_and_its_thread_ends_with_it() -> None:
    """The relay of a plain gRPC connection (a thread splicing the server's bytes, the loop
    relaying the client's): a message larger than a pipe or a socket buffer holds goes through
    both ways intact, and the thread ends once the client closes its connection."""

    def relays() -> list[threading.Thread]:
        return [t for t in threading.enumerate() if t.name == "reckon-relay"]

    server = grpc.aio.server()
    server.add_generic_rpc_handlers(
        [
            grpc.method_handlers_generic_handler(
                "rtest.Echo", {"Say": grpc.unary_unary_rpc_method_handler(_echo)}
            )
        ]
    )
    name = f"reckon-test-{os.getpid()}-{secrets.token_hex(4)}"
    server.add_insecure_port(f"unix-abstract:{name}")
    await server.start()
    front = Front(None, "\0" + name)
    await front.start()
    before = len(relays())
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{front.port}") as channel:
            say = channel.unary_unary("/rtest.Echo/Say")
            big = os.urandom(1 << 20)
            assert await say(big, timeout=10) == big
            assert await say(b"small", timeout=10) == b"small"
            assert len(relays()) == before + 1  # the server-to-client direction's
        for _ in range(200):  # the client closed: both directions end, the thread with them
            if len(relays()) == before:
                break
            await asyncio.sleep(0.05)
        assert len(relays()) == before
    finally:
        await front.stop()
        await server.stop(0)


async def test_the_relay_holds_back_a_side_that_reads_nothing_and_loses_no_byte() -> None:
    """A server that reads nothing while the client sends megabytes (and the reverse): each
    direction waits for the other side's buffer instead of buffering without bound, every byte
    arrives in order, and each side's end of stream reaches the other."""
    name = f"reckon-test-{os.getpid()}-{secrets.token_hex(4)}"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind("\0" + name)
    listener.listen(1)
    listener.settimeout(10)
    front = Front(None, "\0" + name)
    await front.start()
    opening, request = client("application/grpc")
    # far more than the buffers of a connection nobody reads hold (Linux grows a receive
    # buffer only as its reader reads)
    up, down = os.urandom(24 << 20), os.urandom(24 << 20)

    def read_all(sock: socket.socket) -> bytes:
        chunks = []
        while chunk := sock.recv(1 << 16):
            chunks.append(chunk)
        return b"".join(chunks)

    def scenario() -> tuple[bytes, bytes]:
        with socket.create_connection(("127.0.0.1", front.port), timeout=10) as c:
            c.sendall(opening + request)  # the first request: gRPC, so the relay takes it
            server, _ = listener.accept()
            with server:
                server.settimeout(10)
                head = b""
                while len(head) < len(opening + request):
                    head += server.recv(1 << 16)
                assert head == opening + request
                # the client sends 24 MiB nobody reads yet: the relay must stop reading it
                sender = threading.Thread(target=lambda: (c.sendall(up), c.shutdown(1)))
                sender.start()
                time.sleep(0.5)
                assert sender.is_alive()  # held back: the bytes did not all fit in buffers
                got_up = read_all(server)
                sender.join(10)
                # and the other way round
                replier = threading.Thread(target=lambda: (server.sendall(down), server.close()))
                replier.start()
                time.sleep(0.5)
                got_down = read_all(c)
                replier.join(10)
        return got_up, got_down

    try:
        got_up, got_down = await asyncio.to_thread(scenario)
        assert got_up == up
        assert got_down == down
    finally:
        listener.close()
        await front.stop()


def test_a_relayed_connection_ends_with_its_server_after_the_loop_is_gone() -> None:
    """The loop relays what the client sends; once that loop has closed (the unit's
    ``asyncio.run`` returned) a live connection still ends when its server closes: what the
    server sent last arrives, then the end, and the relay lets go of the connection."""
    name = f"reckon-test-{os.getpid()}-{secrets.token_hex(4)}"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind("\0" + name)
    listener.listen(1)
    listener.settimeout(10)
    opening, request = client("application/grpc")
    held: dict[str, object] = {}

    async def relay_one() -> None:
        front = Front(None, "\0" + name)
        await front.start()
        c = socket.create_connection(("127.0.0.1", front.port), timeout=10)
        c.sendall(opening + request)
        server, _ = await asyncio.to_thread(listener.accept)
        server.settimeout(10)
        head = b""
        while len(head) < len(opening + request):
            head += await asyncio.to_thread(server.recv, 1 << 16)
        held.update(front=front, client=c, server=server)
        await front.stop()

    asyncio.run(relay_one())  # the loop closes; the connection stays open
    front, c, server = held["front"], held["client"], held["server"]
    assert isinstance(front, Front) and isinstance(c, socket.socket)
    assert isinstance(server, socket.socket)
    try:
        assert front.spliced == 1
        server.sendall(b"last words")
        server.close()
        got = b""
        while chunk := c.recv(1 << 16):
            got += chunk
        assert got == b"last words"
        for _ in range(200):
            if front.spliced == 0:
                break
            time.sleep(0.05)
        assert front.spliced == 0  # both sockets closed, the thread gone
    finally:
        c.close()
        listener.close()
