"""gRPC served on the event loop at the one port (reckon.service.h2grpc): its message framing
(sans I/O, property-tested), flow control both ways with a real HTTP/2 client that stops
reading, messages larger than every window, the service's message size limit from a client
that does not check it, and fuzzed bytes after a valid opening."""

from __future__ import annotations

import asyncio
import logging
import socket
import time
import urllib.parse
import zlib
from pathlib import Path
from typing import Any

import grpc
import grpc.aio
import h2.config
import h2.connection
import h2.events
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rtest_gen import rtest_pb2 as pb
from svc_helpers import make_deployment

from reckon.errors import ServiceCallError
from reckon.service import Deployment, Unit
from reckon.service.h2grpc import (
    STREAM_WINDOW,
    UNREAD_MAX,
    GrpcConnection,
    Messages,
    frame,
    parse_timeout,
    status_message,
)

FEED = {"definition": "rtest_gen.rtest_reckon:Feed", "implementation": "svc_impls:FeedService"}


def feed_unit(tmp_path: Path, **extra: Any) -> Deployment:
    services = {"feed": {**FEED, "expose": True, **extra}}
    return Deployment.from_dict(make_deployment(services, tmp_path=tmp_path))


# -- sans I/O ---------------------------------------------------------------------------------


@given(
    st.lists(st.binary(max_size=300), max_size=8),
    st.lists(st.integers(min_value=1, max_value=400), max_size=20),
)
def test_messages_come_out_whole_however_the_bytes_are_cut(
    messages: list[bytes], cuts: list[int]
) -> None:
    wire = b"".join(frame(m) for m in messages)
    reader = Messages(limit=300)
    got: list[bytes] = []
    pos = 0
    for cut in cuts:
        got += reader.feed(wire[pos : pos + cut])
        pos += cut
    got += reader.feed(wire[pos:])
    assert got == messages
    assert not reader.pending


def test_a_message_over_the_limit_is_refused_from_its_prefix_alone() -> None:
    reader = Messages(limit=100)
    with pytest.raises(ServiceCallError) as info:
        reader.feed(b"\0" + (101).to_bytes(4, "big"))  # no body yet
    assert info.value.code == "RESOURCE_EXHAUSTED"
    assert "max_message_bytes" in str(info.value)
    with pytest.raises(ServiceCallError) as info:
        Messages(limit=100).feed(b"\1" + (3).to_bytes(4, "big") + b"abc")  # no grpc-encoding
    assert info.value.code == "UNIMPLEMENTED"
    with pytest.raises(ServiceCallError) as info:
        Messages(limit=100, encoding="br").feed(b"\1" + (3).to_bytes(4, "big") + b"abc")
    assert info.value.code == "UNIMPLEMENTED"
    with pytest.raises(ServiceCallError) as info:
        Messages(limit=100, encoding="gzip").feed(b"\1" + (3).to_bytes(4, "big") + b"abc")
    assert info.value.code == "INTERNAL"  # not gzip at all


def _compressed(message: bytes, encoding: str) -> bytes:
    z = zlib.compressobj(wbits=16 + zlib.MAX_WBITS if encoding == "gzip" else zlib.MAX_WBITS)
    body = z.compress(message) + z.flush()
    return b"\1" + len(body).to_bytes(4, "big") + body


#: 10 MB of zeros in about 10 KB each way: what a small message may inflate to.
_BOMBS = {e: _compressed(bytes(10_000_000), e) for e in ("gzip", "deflate")}


@given(st.lists(st.binary(max_size=300), max_size=5), st.sampled_from(["gzip", "deflate"]))
def test_compressed_messages_come_out_as_sent_and_bombs_are_refused(
    messages: list[bytes], encoding: str
) -> None:
    reader = Messages(limit=300, encoding=encoding)
    assert reader.feed(b"".join(_compressed(m, encoding) for m in messages)) == messages
    # a message that inflates far past the limit: refused as too long, not inflated whole
    assert len(_BOMBS[encoding]) < 20_000
    with pytest.raises(ServiceCallError) as info:
        Messages(limit=20_000, encoding=encoding).feed(_BOMBS[encoding])
    assert info.value.code == "RESOURCE_EXHAUSTED"


def test_grpc_timeouts_and_status_messages() -> None:
    assert parse_timeout("250m") == pytest.approx(0.25)
    assert parse_timeout("2S") == 2.0
    assert parse_timeout("1H") == 3600.0
    assert parse_timeout("99999999n") == pytest.approx(0.099999999)
    for bad in ("", "5", "m", "123456789S", "1.5S", "-1S", "5x"):
        with pytest.raises(ValueError):
            parse_timeout(bad)


@given(st.text())
def test_status_messages_are_printable_ascii_and_decode_back(text: str) -> None:
    encoded = status_message(text)
    assert all(0x20 <= ord(c) <= 0x7E for c in encoded)
    assert urllib.parse.unquote(encoded, errors="surrogatepass") == text


# -- a real connection --------------------------------------------------------------------


async def test_messages_larger_than_every_window_go_both_ways(tmp_path: Path) -> None:
    """A 3 MiB message each way (the client's window is 64 KiB, the server's 1 MiB): both sides
    wait for the other's window updates, and the bytes arrive intact."""
    async with Unit(feed_unit(tmp_path, max_message_bytes=8 << 20)) as unit:
        address = unit.addresses["feed"].grpc
        options = [("grpc.max_receive_message_length", 8 << 20)]
        async with grpc.aio.insecure_channel(address, options=options) as channel:
            echo = channel.stream_stream(
                "/rtest.Feed/Echo", pb.Item.SerializeToString, pb.Item.FromString
            )
            big = "x" * (3 << 20)

            async def requests() -> Any:
                for i in range(3):
                    yield pb.Item(id=big, count=i)

            got = [r async for r in echo(requests(), timeout=30)]
            assert [(len(r.id), r.count) for r in got] == [(3 << 20, 0), (3 << 20, 2), (3 << 20, 4)]


async def test_a_message_over_the_limit_plain_or_compressed_from_a_client_that_sends_it_anyway(
    tmp_path: Path,
) -> None:
    """grpcio's client checks no limit of the server's: the server refuses the message with
    RESOURCE_EXHAUSTED from its prefix, or a compressed one once it inflates past the limit,
    and the connection goes on serving."""
    async with Unit(feed_unit(tmp_path, max_message_bytes=10_000)) as unit:
        async with grpc.aio.insecure_channel(unit.addresses["feed"].grpc) as channel:
            count = channel.unary_unary(
                "/rtest.Feed/Count", pb.Key.SerializeToString, pb.Item.FromString
            )
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await count(pb.Key(id="x" * 20_000), timeout=10)
            assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert "max_message_bytes" in (info.value.details() or "")
            assert (await count(pb.Key(id="abc"), timeout=10)).count == 3
            # compressed requests are read (gzip, deflate), and their size is the one inflated
            for how in (grpc.Compression.Gzip, grpc.Compression.Deflate):
                assert (
                    await count(pb.Key(id="z" * 5000), timeout=10, compression=how)
                ).count == 5000
                with pytest.raises(grpc.aio.AioRpcError) as info:
                    await count(pb.Key(id="z" * 20_000), timeout=10, compression=how)
                assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert (await count(pb.Key(id="abc"), timeout=10)).count == 3


def _h2_client() -> h2.connection.H2Connection:
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    conn.initiate_connection()
    return conn


def _request_headers(path: str) -> list[tuple[str, str]]:
    return [
        (":method", "POST"),
        (":scheme", "http"),
        (":path", path),
        (":authority", "127.0.0.1"),
        ("content-type", "application/grpc"),
        ("te", "trailers"),
    ]


def _hold_back_scenario(port: int) -> tuple[int, int, int, str]:
    """A client that streams requests to Echo and reads none of the answers: how many bytes it
    could send before the server stopped opening its window; then it reads everything."""
    item = pb.Item(id="y" * 60_000)
    message = frame(item.SerializeToString())
    conn = _h2_client()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.settimeout(0.5)
        conn.send_headers(1, _request_headers("/rtest.Feed/Echo"))
        sock.sendall(conn.data_to_send())
        sent = 0
        quiet_since = time.monotonic()
        responses = bytearray()
        while time.monotonic() - quiet_since < 1.5 and sent < 64 << 20:
            while conn.local_flow_control_window(1) >= len(message):
                for at in range(0, len(message), conn.max_outbound_frame_size):
                    conn.send_data(1, message[at : at + conn.max_outbound_frame_size])
                sent += len(message)
                quiet_since = time.monotonic()
            sock.sendall(conn.data_to_send())
            try:
                data = sock.recv(1 << 16)
            except TimeoutError:
                continue
            assert data, "the server closed the connection"
            for event in conn.receive_data(data):
                if isinstance(event, h2.events.DataReceived):
                    assert not event.flow_controlled_length - len(event.data)  # no padding
                    responses += event.data  # read off the socket, not acknowledged yet
            sock.sendall(conn.data_to_send())  # pings and settings acknowledged, no windows
        held_at = sent
        # now read: acknowledge every answer, end the request stream, collect all answers
        conn.end_stream(1)
        sock.sendall(conn.data_to_send())
        status = ""
        sock.settimeout(10)
        pending_ack = len(responses)  # what it read and never acknowledged
        while not status:
            if pending_ack:
                conn.acknowledge_received_data(pending_ack, 1)
                pending_ack = 0
                sock.sendall(conn.data_to_send())
            data = sock.recv(1 << 16)
            assert data, "the server closed the connection"
            for event in conn.receive_data(data):
                if isinstance(event, h2.events.DataReceived):
                    responses += event.data
                    pending_ack += event.flow_controlled_length
                elif isinstance(event, h2.events.TrailersReceived):
                    status = dict(event.headers)[b"grpc-status"].decode()
            sock.sendall(conn.data_to_send())
    answers = Messages(limit=1 << 20).feed(bytes(responses))
    return held_at, sent // len(message), len(answers), status


async def test_a_client_that_reads_nothing_is_held_back_and_then_gets_every_answer(
    tmp_path: Path,
) -> None:
    """HTTP/2 flow control both ways: the handler's answers wait for the client's window, so it
    stops reading requests; the server then stops opening the client's window past what it
    holds unread, so the client cannot send without bound. Once the client reads, every
    request gets its answer, in full, and the call ends OK."""
    async with Unit(feed_unit(tmp_path)) as unit:
        port = int(unit.addresses["feed"].grpc.rpartition(":")[2])
        held_at, requests, answers, status = await asyncio.to_thread(_hold_back_scenario, port)
    assert held_at <= UNREAD_MAX + 2 * STREAM_WINDOW  # far below the 64 MiB it tried
    assert requests > 3
    assert answers == requests
    assert status == "0"


class _Collecting(asyncio.Transport):
    """The socket side of a protocol under fuzzing: what it writes is kept, closing is noted."""

    def __init__(self) -> None:
        super().__init__()
        self.written = bytearray()
        self.closed = False
        self._protocol: asyncio.BaseProtocol | None = None

    def write(self, data: Any) -> None:
        self.written += data

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            if self._protocol is not None:
                self._protocol.connection_lost(None)

    def is_closing(self) -> bool:
        return self.closed

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default


class _Joined:
    """The gRPC server's protocol and an h2 client joined in memory: no socket, so a test
    steps the exchange itself. Made inside a running loop (the server schedules its pings)."""

    def __init__(self, max_message_bytes: int = 1 << 16) -> None:
        self.client = _h2_client()
        self.server = GrpcConnection({}, max_message_bytes=max_message_bytes)
        self.wire = _Collecting()
        self.wire._protocol = self.server
        self.server.connection_made(self.wire)

    def exchange(self) -> list[h2.events.Event]:
        """What the client sent goes to the server; what the server wrote, to the client (its
        events are returned)."""
        self.server.data_received(self.client.data_to_send())
        events = self.client.receive_data(bytes(self.wire.written))
        self.wire.written.clear()
        return events


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=400), st.sampled_from(["/rtest.Feed/Echo", "/rtest.Feed/Count", "/x"]))
def test_fuzzed_bytes_after_a_valid_opening_never_raise(tail: bytes, path: str) -> None:
    """Whatever follows a client's opening and first request, the protocol answers, refuses or
    closes the connection; nothing escapes into the loop, and no call is left running."""

    async def scenario() -> None:
        joined = _Joined()
        protocol, wire = joined.server, joined.wire
        joined.client.send_headers(1, _request_headers(path))
        protocol.data_received(joined.client.data_to_send())
        protocol.data_received(tail)
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        protocol.data_received(frame(b"") + tail)
        await asyncio.sleep(0)
        wire.close()
        await asyncio.sleep(0)
        assert not protocol.calls
        assert all(t.done() for t in asyncio.all_tasks() if t is not asyncio.current_task())

    asyncio.run(scenario())


async def test_stopping_lets_short_calls_finish_and_ends_long_ones_with_unavailable(
    tmp_path: Path,
) -> None:
    """When the unit stops, the server takes no new calls (GOAWAY) but a call that ends within
    the grace still gets all its answers and OK; one that would run on ends with UNAVAILABLE,
    soon, rather than holding the stop up."""
    unit = Unit(feed_unit(tmp_path))
    await unit.start()
    stopped = False
    try:
        async with grpc.aio.insecure_channel(unit.addresses["feed"].grpc) as channel:
            ticks = channel.unary_stream(
                "/rtest.Feed/Ticks", pb.TickRequest.SerializeToString, pb.Item.FromString
            )
            short = ticks(pb.TickRequest(count=3, interval=0.05), timeout=20)
            long = ticks(pb.TickRequest(count=1000, interval=0.05), timeout=20)
            assert (await short.read()).count == 0
            assert (await long.read()).count == 0
            t0 = time.monotonic()
            stopping = asyncio.ensure_future(unit.stop())
            assert [(await short.read()).count for _ in range(2)] == [1, 2]
            assert await short.read() is grpc.aio.EOF
            assert await short.code() == grpc.StatusCode.OK
            with pytest.raises(grpc.aio.AioRpcError) as info:
                while await long.read() is not grpc.aio.EOF:
                    pass
            assert info.value.code() == grpc.StatusCode.UNAVAILABLE
            await stopping
            stopped = True
            assert time.monotonic() - t0 < 5
    finally:
        if not stopped:
            await unit.stop()


def _pings_seen(port: int, seconds: float) -> int:
    """PINGs the server sends an idle client (which answers them) within ``seconds``."""
    conn = _h2_client()
    conn.send_headers(1, _request_headers("/rtest.Feed/Count"))
    conn.send_data(1, frame(pb.Key(id="a").SerializeToString()), end_stream=True)
    pings = 0
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(conn.data_to_send())
        sock.settimeout(0.1)
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            try:
                data = sock.recv(1 << 16)
            except TimeoutError:
                continue
            assert data, "the server closed the connection"
            pings += sum(isinstance(e, h2.events.PingReceived) for e in conn.receive_data(data))
            sock.sendall(conn.data_to_send())  # h2 answers each ping
    return pings


async def test_keepalive_pings_idle_clients(tmp_path: Path) -> None:
    async with Unit(feed_unit(tmp_path, keepalive=0.2)) as unit:
        port = int(unit.addresses["feed"].grpc.rpartition(":")[2])
        assert await asyncio.to_thread(_pings_seen, port, 1.5) >= 3
    async with Unit(feed_unit(tmp_path)) as unit:  # no keepalive: no pings
        port = int(unit.addresses["feed"].grpc.rpartition(":")[2])
        assert await asyncio.to_thread(_pings_seen, port, 0.5) == 0


async def test_more_calls_at_once_than_a_connection_takes_wait_their_turn(tmp_path: Path) -> None:
    """A connection takes MAX_CALLS calls at once (HTTP/2's concurrent streams); a client with
    more queues them, and every one completes."""
    from reckon.service.h2grpc import MAX_CALLS

    async with Unit(feed_unit(tmp_path)) as unit:
        async with grpc.aio.insecure_channel(unit.addresses["feed"].grpc) as channel:
            ticks = channel.unary_stream(
                "/rtest.Feed/Ticks", pb.TickRequest.SerializeToString, pb.Item.FromString
            )

            async def one() -> list[int]:
                call = ticks(pb.TickRequest(count=2, interval=0.2), timeout=30)
                return [t.count async for t in call]

            got = await asyncio.gather(*(one() for _ in range(MAX_CALLS + 50)))
            assert got == [[0, 1]] * (MAX_CALLS + 50)


def test_calls_that_end_unread_give_the_connections_window_back() -> None:
    """Calls that end without reading what they were sent (here: an unknown method, refused at
    once) leave nothing of the connection's window behind: forty of them, each ending with about
    half a stream window of bytes the server never acknowledged (more than the connection's
    window in all), and the connection still takes more."""

    async def scenario() -> None:
        joined = _Joined(max_message_bytes=1 << 20)
        client, protocol, exchange = joined.client, joined.server, joined.exchange
        exchange()
        chunk = frame(b"z" * (16_384 - 5 - 9))
        sent = 0
        for i in range(40):
            sid = 1 + 2 * i
            client.send_headers(sid, _request_headers("/rtest.Nothing/Here"))
            exchange()  # the call's task is made; it has not run yet
            while client.local_flow_control_window(sid) >= len(chunk):
                client.send_data(sid, chunk)
                sent += len(chunk)
                exchange()  # acknowledged while the call holds little unread, then not
            for _ in range(3):
                await asyncio.sleep(0)  # the call runs: UNIMPLEMENTED, its bytes released
            exchange()
            assert not protocol.calls
        assert sent > 3 * (1 << 24)
        client.send_headers(101, _request_headers("/rtest.Nothing/Here"))
        exchange()
        assert client.local_flow_control_window(101) > 0

    asyncio.run(scenario())


def test_a_peer_that_breaks_http2_is_logged_and_dropped(caplog: pytest.LogCaptureFixture) -> None:
    """Bytes that are not HTTP/2 after the opening end that connection with a GOAWAY and one
    log line naming what was wrong; the server itself goes on."""

    async def scenario() -> None:
        joined = _Joined()
        protocol, wire = joined.server, joined.wire
        protocol.data_received(joined.client.data_to_send())
        # a DATA frame on stream 0, which HTTP/2 forbids (a connection error)
        protocol.data_received(b"\x00\x00\x01\x00\x00\x00\x00\x00\x00x")
        assert wire.closed

    with caplog.at_level(logging.INFO, logger="reckon.service"):
        asyncio.run(scenario())
    assert any("dropped the gRPC connection" in r.getMessage() for r in caplog.records)


def test_a_call_ended_before_the_client_finished_sending_is_reset_after_its_trailers() -> None:
    """A call the server ends while the client is still sending (here: an unknown method) gets
    its status in trailers and then RST_STREAM(NO_ERROR), so the client stops sending into a
    stream nobody reads (RFC 9113 8.1); a call whose client had ended its side gets the
    trailers alone."""

    async def scenario() -> None:
        joined = _Joined()
        client, exchange = joined.client, joined.exchange
        exchange()
        seen: dict[int, list[str]] = {1: [], 3: []}
        client.send_headers(1, _request_headers("/rtest.Nothing/Here"))  # still sending
        client.send_headers(3, _request_headers("/rtest.Nothing/Here"), end_stream=True)
        exchange()
        for _ in range(3):
            await asyncio.sleep(0)  # both calls run: UNIMPLEMENTED
        for event in exchange():
            if isinstance(event, h2.events.TrailersReceived | h2.events.ResponseReceived):
                headers = dict(event.headers)
                seen[event.stream_id].append("status " + headers[b"grpc-status"].decode())
            elif isinstance(event, h2.events.StreamReset):
                seen[event.stream_id].append(f"reset {event.error_code.name}")
        assert seen == {1: ["status 12", "reset NO_ERROR"], 3: ["status 12"]}

    asyncio.run(scenario())
