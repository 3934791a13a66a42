"""gRPC served on the event loop, on the very connection the one port accepted.

HTTP/2 is the well-kept ``h2`` library (sans I/O, the one hypercorn uses); what gRPC adds on top
is small and lives here: the length-prefixed messages (:class:`Messages`, sans I/O), the request
headers (path, ``grpc-timeout``, metadata) and the status in trailers. Each call runs as one task
on the loop that runs its handler, and nothing else: no thread, no second socket. Measured with
a grpcio client on a 2-core machine, that costs the server about 2 context switches per bidi
round trip where grpcio's own server (its C core's threads and the loop) takes about 11, so the
one port serves gRPC at least as fast as grpcio's own server does on a port of its own.

Flow control is HTTP/2's: what a call has not read yet is not acknowledged past
:data:`UNREAD_MAX` bytes, so a client that sends faster than the handler reads is held back, and
a response waits for the client's window (a client that reads nothing holds its stream back, not
the server's memory). A message longer than the service's ``max_message_bytes`` is refused with
RESOURCE_EXHAUSTED from its 5-byte prefix, before its body is buffered. So a connection holds
at most :data:`MAX_CALLS` calls, each holding at most ``UNREAD_MAX`` plus one stream window
of whole messages not read yet, and one message in the making.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import zlib
from collections.abc import AsyncIterator, Callable
from typing import Any, cast

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings
from google.protobuf.message import Message
from hyperframe.frame import GoAwayFrame

from reckon.errors import ServiceCallError
from reckon.service.definition import MethodDef
from reckon.service.endpoint import Endpoint
from reckon.service.metadata import from_pairs
from reckon.service.servers import parse_request
from reckon.service.status import CODES, from_handler_exception

log = logging.getLogger("reckon.service")

#: A method's endpoint and definition, by path (``/pkg.Service/Method``).
Routes = dict[str, tuple[Endpoint, MethodDef]]

#: Bytes a call may have received and not yet read before the server stops acknowledging them
#: (the client then waits: HTTP/2 flow control).
UNREAD_MAX = 1 << 20
#: The server's receive windows: per stream and for the connection.
STREAM_WINDOW = 1 << 20
CONNECTION_WINDOW = 1 << 24
#: Calls open at once on one connection (SETTINGS_MAX_CONCURRENT_STREAMS; clients queue more).
MAX_CALLS = 100
#: Request headers of one call, at most (grpc's own limit is 8 KiB soft, 16 KiB hard).
MAX_HEADER_BYTES = 64 * 1024
#: Seconds a stopping server lets its calls finish before it cancels them.
GRACE = 0.5

_CONFIG = h2.config.H2Configuration(
    client_side=False,
    header_encoding="utf-8",
    validate_inbound_headers=False,
    normalize_inbound_headers=False,
    validate_outbound_headers=False,  # written here, well-formed (grpc-message is escaped)
    normalize_outbound_headers=False,
)
#: Compressed request messages this server reads (``grpc-encoding``); answers go uncompressed.
ENCODINGS = ("gzip", "deflate")
#: What every response begins with.
_RESPONSE_HEADERS = [
    (":status", "200"),
    ("content-type", "application/grpc"),
    ("grpc-accept-encoding", ",".join(("identity", *ENCODINGS))),
]
_UNITS = {"H": 3600.0, "M": 60.0, "S": 1.0, "m": 1e-3, "u": 1e-6, "n": 1e-9}


class Messages:
    """gRPC's length-prefixed messages out of a byte stream (sans I/O): :meth:`feed` takes bytes
    as they arrive and returns the messages they complete, each ``limit`` bytes at most, and
    decompressed when its flag says so (``encoding``: the call's ``grpc-encoding``)."""

    def __init__(self, limit: int, encoding: str | None = None) -> None:
        self.limit = limit
        self.encoding = encoding
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        """The messages ``data`` completes; ServiceCallError when the next one is longer than
        the limit (known from its prefix, or while it is decompressed) or compressed with an
        encoding this server does not read."""
        self._buf += data
        out = []
        buf = self._buf
        while len(buf) >= 5:
            flag = buf[0]
            if flag > 1:
                raise ServiceCallError(
                    f"a request message has the flag {flag} (0 or 1)", "INTERNAL"
                )
            if flag and self.encoding not in ENCODINGS:
                raise ServiceCallError(
                    f"a request message is compressed with {self.encoding or 'no encoding'!r}; "
                    f"this server reads {', '.join(ENCODINGS)} (grpc-encoding) or uncompressed",
                    "UNIMPLEMENTED",
                )
            n = int.from_bytes(buf[1:5], "big")
            if n > self.limit:
                raise self._too_long(n)
            if len(buf) < 5 + n:
                break
            message = bytes(buf[5 : 5 + n])
            del buf[: 5 + n]
            out.append(self._inflate(message) if flag else message)
        return out

    def _inflate(self, data: bytes) -> bytes:
        """A compressed message, decompressed to ``limit`` bytes at most (a small message that
        inflates without bound is refused, not held)."""
        wbits = 16 + zlib.MAX_WBITS if self.encoding == "gzip" else zlib.MAX_WBITS
        inflater = zlib.decompressobj(wbits)
        try:
            out = inflater.decompress(data, self.limit + 1)
        except zlib.error as exc:
            raise ServiceCallError(
                f"a request message is not valid {self.encoding} ({exc})", "INTERNAL"
            ) from None
        if len(out) > self.limit:
            raise self._too_long(len(out), "at least ")
        if not inflater.eof:
            raise ServiceCallError(f"a request message is truncated {self.encoding}", "INTERNAL")
        return out

    def _too_long(self, n: int, at_least: str = "") -> ServiceCallError:
        return ServiceCallError(
            f"a request message of {at_least}{n} bytes is longer than this service's "
            f"max_message_bytes ({self.limit}); raise it in the deployment",
            "RESOURCE_EXHAUSTED",
        )

    @property
    def pending(self) -> bool:
        """Whether a message has begun and not ended."""
        return bool(self._buf)


def serves(content_type: str) -> bool:
    """Whether a request of ``content_type`` is this server's: gRPC with protobuf bodies (gRPC
    with JSON, ``application/grpc+json``, is for connectrpc's codecs, behind hypercorn)."""
    return content_type.split(";")[0].strip().lower() in (
        "application/grpc",
        "application/grpc+proto",
    )


def frame(message: bytes) -> bytes:
    """One message as gRPC sends it: not compressed, its length, its bytes."""
    return b"\0" + len(message).to_bytes(4, "big") + message


def parse_timeout(value: str) -> float:
    """Seconds of a ``grpc-timeout`` header (``"250m"``: 0.25); ValueError when malformed."""
    if not 2 <= len(value) <= 9 or value[-1] not in _UNITS or not value[:-1].isdigit():
        raise ValueError(f"not a grpc-timeout: {value!r}")
    return int(value[:-1]) * _UNITS[value[-1]]


def status_message(text: str) -> str:
    """``grpc-message``'s percent-encoding: UTF-8, with ``%`` and what is not printable ASCII
    escaped."""
    return "".join(
        chr(b) if 0x20 <= b <= 0x7E and b != 0x25 else f"%{b:02X}" for b in text.encode()
    )


class _Call:
    """One gRPC call's stream: its received messages (a queue the handler reads) and its
    sending state."""

    def __init__(self, conn: GrpcConnection, sid: int, limit: int, encoding: str | None) -> None:
        self.conn = conn
        self.sid = sid
        self.messages = Messages(limit, encoding)
        self.queue: asyncio.Queue[bytes | ServiceCallError | None] = asyncio.Queue()
        self.unread = 0  # bytes received and queued, not read by the handler yet
        self.unacked = 0  # bytes received and not acknowledged (held back: flow control)
        self.started = False  # response headers sent
        self.ended = False  # the server ended its side (trailers or reset)
        self.window = asyncio.Event()  # set when the client opens its window for responses
        self.task: asyncio.Task[None] | None = None
        self.failed = False  # a request broke the rules: nothing more is read from the stream
        self.client_done = False  # the client ended its side of the stream (END_STREAM)

    def received(self, data: bytes, length: int) -> None:
        """Bytes of the request stream arrived (``length`` counted by flow control)."""
        self.unacked += length
        if not self.failed:
            try:
                for m in self.messages.feed(data):
                    self.unread += len(m) + 5
                    self.queue.put_nowait(m)
            except ServiceCallError as exc:
                self.failed = True
                self.queue.put_nowait(exc)
        self._acknowledge()

    def _acknowledge(self) -> None:
        if self.unacked and self.unread <= UNREAD_MAX:
            n, self.unacked = self.unacked, 0
            self.conn.acknowledge(self.sid, n)

    async def read(self) -> bytes | None:
        """The next request message; None once the client ended its side."""
        item = await self.queue.get()
        if isinstance(item, ServiceCallError):
            self.queue.put_nowait(item)  # every later read fails the same way
            raise item
        if item is not None:
            self.unread -= len(item) + 5
            self._acknowledge()
        else:
            self.queue.put_nowait(None)
        return item


class GrpcConnection(asyncio.Protocol):
    """One HTTP/2 connection of gRPC calls, served by ``routes`` (which may grow while it
    serves); ``keepalive`` seconds between the server's pings when > 0 (a client that does not
    answer one within ``max(keepalive, 20)`` seconds is dropped)."""

    def __init__(
        self,
        routes: Routes,
        *,
        max_message_bytes: int,
        keepalive: float = 0.0,
    ) -> None:
        self.routes = routes
        self.limit = max_message_bytes
        self.keepalive = keepalive
        #: Called with this connection once it has closed.
        self.on_close: Callable[[GrpcConnection], None] | None = None
        self.transport: asyncio.Transport | None = None
        self.h2 = h2.connection.H2Connection(config=_CONFIG)
        self.calls: dict[int, _Call] = {}
        self._writable = asyncio.Event()
        self._writable.set()
        self._ping_sent: float | None = None
        self._ping_timer: asyncio.TimerHandle | None = None
        self.closing = False

    # -- the connection ---------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.h2.local_settings = h2.settings.Settings(
            client=False,
            initial_values={
                h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: STREAM_WINDOW,
                h2.settings.SettingCodes.MAX_HEADER_LIST_SIZE: MAX_HEADER_BYTES,
            },
        )
        self.h2.initiate_connection()
        # The limit of calls in a SETTINGS frame of its own: h2 enforces a setting from its
        # acknowledgement on, and a client may open streams before our settings reach it (it
        # saw the front's empty SETTINGS first).
        self.h2.update_settings({h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: MAX_CALLS})
        self.h2.increment_flow_control_window(CONNECTION_WINDOW - 65535)
        self.flush()
        if self.keepalive > 0:
            self._ping_timer = asyncio.get_running_loop().call_later(self.keepalive, self._ping)

    def data_received(self, data: bytes) -> None:
        try:
            events = self.h2.receive_data(data)
        except Exception as exc:  # h2's ProtocolError, or headers that are not UTF-8
            peer = self.transport.get_extra_info("peername") if self.transport else None
            log.info("dropped the gRPC connection from %s: %s", peer, exc or type(exc).__name__)
            self.flush()  # h2 wrote a GOAWAY saying what was wrong, where it could
            self._drop()
            return
        for event in events:
            if isinstance(event, h2.events.RequestReceived):
                # str pairs: h2 decodes names and values (header_encoding)
                self._request(event.stream_id, cast(list[tuple[str, str]], event.headers))
            elif isinstance(event, h2.events.DataReceived):
                call = self.calls.get(event.stream_id)
                if call is not None:
                    call.received(event.data, event.flow_controlled_length)
                else:
                    self.acknowledge(event.stream_id, event.flow_controlled_length)
            elif isinstance(event, h2.events.StreamEnded):
                call = self.calls.get(event.stream_id)
                if call is not None:
                    call.client_done = True
                if call is not None and not call.failed:
                    if call.messages.pending:
                        call.queue.put_nowait(
                            ServiceCallError(
                                "the request stream ended inside a message", "INTERNAL"
                            )
                        )
                    call.queue.put_nowait(None)
            elif isinstance(event, h2.events.StreamReset):
                call = self.calls.pop(event.stream_id, None)
                if call is not None:
                    call.ended = True
                    self._release(call)
                    if call.task is not None:
                        call.task.cancel()  # the client cancelled (or its deadline passed)
            elif isinstance(event, h2.events.WindowUpdated):
                if event.stream_id == 0:
                    for c in self.calls.values():
                        c.window.set()
                elif (call := self.calls.get(event.stream_id)) is not None:
                    call.window.set()
            elif isinstance(event, h2.events.RemoteSettingsChanged):
                for c in self.calls.values():
                    c.window.set()
            elif isinstance(event, h2.events.PingAckReceived):
                self._ping_sent = None
            elif isinstance(event, h2.events.ConnectionTerminated):
                self._drop()
                return
        self.flush()

    def flush(self) -> None:
        data = self.h2.data_to_send()
        if data and self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def acknowledge(self, sid: int, n: int) -> None:
        if n:
            with contextlib.suppress(h2.exceptions.StreamClosedError):
                self.h2.acknowledge_received_data(n, sid)

    def _release(self, call: _Call) -> None:
        """The connection's window back for what an ended call received and never read."""
        n, call.unacked = call.unacked, 0
        self.acknowledge(call.sid, n)

    def pause_writing(self) -> None:
        self._writable.clear()

    def resume_writing(self) -> None:
        self._writable.set()

    def eof_received(self) -> bool | None:
        return False  # the client is done: close

    def connection_lost(self, exc: Exception | None) -> None:
        self._writable.set()
        if self._ping_timer is not None:
            self._ping_timer.cancel()
        for call in self.calls.values():
            call.ended = True
            if call.task is not None:
                call.task.cancel()
        self.calls.clear()
        if self.on_close is not None:
            self.on_close(self)

    def _drop(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def _ping(self) -> None:
        now = time.monotonic()
        if self._ping_sent is not None:
            if now - self._ping_sent > max(self.keepalive, 20.0):
                self._drop()  # the client has not answered: it is gone
                return
        else:
            self._ping_sent = now
            self.h2.ping(b"reckon\0\0")
            self.flush()
        self._ping_timer = asyncio.get_running_loop().call_later(self.keepalive, self._ping)

    async def stop(self, grace: float = GRACE) -> None:
        """Take no new calls (GOAWAY), let those running finish for ``grace`` seconds, then
        end them with UNAVAILABLE and close."""
        self.closing = True
        if self.transport is None or self.transport.is_closing():
            return
        self.flush()
        # GOAWAY written past h2's state machine, which would refuse to send anything after it:
        # the calls in flight still finish on this connection.
        goaway = GoAwayFrame(0, last_stream_id=self.h2.highest_inbound_stream_id or 0)
        self.transport.write(goaway.serialize())
        tasks = [c.task for c in self.calls.values() if c.task is not None]
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=grace)
            for call in list(self.calls.values()):
                if call.task in pending:
                    call.task.cancel()
                    self._finish(call, "UNAVAILABLE", "the server is stopping")
            self.flush()
        self._drop()

    # -- calls ------------------------------------------------------------------------------

    def _request(self, sid: int, headers: list[tuple[str, str]]) -> None:
        encoding = next((v for k, v in headers if k == "grpc-encoding"), None)
        call = _Call(self, sid, self.limit, encoding)
        self.calls[sid] = call
        if self.closing:
            self._finish(call, "UNAVAILABLE", "the server is stopping")
            return
        call.task = asyncio.get_running_loop().create_task(self._serve(call, headers))

    async def _serve(self, call: _Call, headers: list[tuple[str, str]]) -> None:
        code, message = "OK", ""
        try:
            await self._run(call, headers)
        except asyncio.CancelledError:
            if call.ended:  # the client went away, or stop() answered for it
                return
            raise
        except Exception as exc:  # whatever it is, the call ends now, with a status
            if not isinstance(exc, ServiceCallError):  # (handlers' own are mapped by Endpoint)
                log.exception("gRPC call on stream %d failed inside the server", call.sid)
            err = from_handler_exception(exc, "the server")
            code, message = err.code, str(err)
        self._finish(call, code, message)
        self.flush()

    async def _run(self, call: _Call, headers: list[tuple[str, str]]) -> None:
        path, content_type, timeout = "", "", None
        pairs = []
        for name, value in headers:
            if name == ":path":
                path = value
            elif name == "content-type":
                content_type = value
            elif name == "grpc-timeout":
                try:
                    timeout = parse_timeout(value)
                except ValueError:
                    raise ServiceCallError(
                        f"the grpc-timeout header {value!r} is malformed", "INVALID_ARGUMENT"
                    ) from None
            elif not name.startswith(":"):
                pairs.append((name, value))
        if not serves(content_type):
            raise ServiceCallError(
                f"this connection carries gRPC with protobuf bodies; a request with "
                f"content-type {content_type!r} needs a connection of its own",
                "INTERNAL",
            )
        route = self.routes.get(path)
        if route is None:
            raise ServiceCallError(f"no method {path} here", "UNIMPLEMENTED")
        endpoint, m = route
        metadata = from_pairs(pairs)
        authorization = next((v for k, v in pairs if k == "authorization"), None)
        deadline = None if timeout is None else endpoint.clock() + timeout
        if timeout is None:
            await self._call(call, endpoint, m, metadata, authorization, deadline)
            return
        try:
            async with asyncio.timeout(timeout):
                await self._call(call, endpoint, m, metadata, authorization, deadline)
        except TimeoutError:
            raise ServiceCallError(f"{path}: the deadline passed", "DEADLINE_EXCEEDED") from None

    async def _call(
        self,
        call: _Call,
        endpoint: Endpoint,
        m: MethodDef,
        metadata: Any,
        authorization: str | None,
        deadline: float | None,
    ) -> None:
        user = await endpoint.authenticator.check_async(authorization, endpoint.auth)
        request: Any
        if m.client_streaming:
            request = _requests(call, m)
        else:
            data = await call.read()
            if data is None:
                raise ServiceCallError(f"{m.path}: the call sent no request message", "INTERNAL")
            request = parse_request(m, data)
        if m.server_streaming:
            async for response in endpoint.stream(
                m, request, user, authorization, deadline, metadata
            ):
                await self._send(call, response)
        else:
            response = await endpoint.invoke(m, request, user, authorization, deadline, metadata)
            await self._send(call, response, last=True)

    async def _send(self, call: _Call, response: Message, last: bool = False) -> None:
        """One response message, within the client's window (waiting for it to open); the
        last one of a unary call waits for the trailers to go with it in one write."""
        data = response.SerializeToString()
        if len(data) > self.limit:
            raise ServiceCallError(
                f"a response message of {len(data)} bytes is longer than this service's "
                f"max_message_bytes ({self.limit})",
                "RESOURCE_EXHAUSTED",
            )
        if call.ended:
            raise asyncio.CancelledError  # reset meanwhile
        self._start(call)
        view = memoryview(frame(data))
        while view:
            await self._writable.wait()
            if call.ended:
                raise asyncio.CancelledError
            size = min(
                len(view),
                self.h2.local_flow_control_window(call.sid),
                self.h2.max_outbound_frame_size,
            )
            if size <= 0:
                call.window.clear()
                self.flush()
                await call.window.wait()
                continue
            self.h2.send_data(call.sid, view[:size].tobytes())
            view = view[size:]
        if not last:
            self.flush()

    def _start(self, call: _Call) -> None:
        if not call.started:
            call.started = True
            self.h2.send_headers(call.sid, _RESPONSE_HEADERS)

    def _finish(self, call: _Call, code: str, message: str) -> None:
        """End the call's stream with its status (in trailers, or alone when nothing was
        sent)."""
        if call.ended:
            return
        call.ended = True
        self.calls.pop(call.sid, None)
        self._release(call)
        trailers = [("grpc-status", str(CODES.index(code) if code in CODES else 2))]
        if message:
            trailers.append(("grpc-message", status_message(message)))
        if not call.started:
            call.started = True
            trailers = [*_RESPONSE_HEADERS, *trailers]
        try:
            self.h2.send_headers(call.sid, trailers, end_stream=True)
            if not call.client_done:
                # the client has not ended its side (a call that failed early): it need not
                self.h2.reset_stream(call.sid, h2.errors.ErrorCodes.NO_ERROR)
        except h2.exceptions.StreamClosedError:
            pass  # reset by the client meanwhile
        except h2.exceptions.ProtocolError:
            self._drop()


async def _requests(call: _Call, m: MethodDef) -> AsyncIterator[Message]:
    """A client stream's requests, parsed as the handler reads them."""
    while (data := await call.read()) is not None:
        yield parse_request(m, data)
