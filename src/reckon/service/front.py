"""The one published port of a process: every connection is looked at once and handed to the
server for its protocol.

A gRPC client with protobuf bodies (HTTP/2 whose first request has ``content-type:
application/grpc`` or ``application/grpc+proto``) is served on the accepted connection by
:mod:`reckon.service.h2grpc`, HTTP/2 on the event loop that runs the handlers (no relay, no
thread). Every other connection (HTTP/1.1, HTTP/2 carrying Connect, gRPC-Web or gRPC with
JSON, h2c by upgrade) goes to hypercorn in this process on the accepted socket itself. Either
way, the bytes looked at are fed to the server first: no second hop.

The choice is made on the first request of a connection, once: clients use one protocol per
connection. :class:`Sniff` is the whole decision, sans I/O (bytes in, a verdict out).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from collections.abc import Callable
from typing import Any, Literal

from reckon.service.h2grpc import GrpcConnection, serves
from reckon.service.tls import Tls

#: What an HTTP/2 client sends first when it speaks HTTP/2 from the start (h2c prior knowledge,
#: or after TLS with ALPN "h2").
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
#: Bytes looked at, at most, before a connection that has not shown its first request's headers
#: goes to hypercorn anyway (which answers or refuses it).
SNIFF_LIMIT = 64 * 1024

_HEADERS, _SETTINGS, _CONTINUATION = 0x1, 0x4, 0x9
_ACK, _END_HEADERS, _PADDED, _PRIORITY = 0x1, 0x4, 0x8, 0x20
#: An empty SETTINGS frame (every setting at its default): what a server sends first.
SERVER_SETTINGS = bytes([0, 0, 0, _SETTINGS, 0, 0, 0, 0, 0])

Route = Literal["grpc", "http"]


class Sniff:
    """Decides, from the first bytes of a connection, which server gets it (sans I/O).

    A gRPC client of grpcio's C core sends its first request only once the server's SETTINGS
    frame arrived: when the first request's headers are not in the bytes so far, :meth:`feed`
    returns an empty SETTINGS frame to send to the client, and the decision waits for the
    request's headers and the client's acknowledgement of those settings. That acknowledgement
    is cut from :meth:`replay`, so the server that gets the connection never sees an answer to
    settings it did not send; its own SETTINGS frame (a second one, which HTTP/2 allows at any
    time) follows.
    """

    def __init__(self) -> None:
        self.head = b""
        self.route: Route | None = None
        self._sent = False
        self._ack: tuple[int, int] | None = None  # the span of the client's acknowledgement

    def feed(self, data: bytes) -> bytes:
        """Take bytes from the client; returns bytes to send to it (possibly none). Once
        :attr:`route` is set, the connection goes there with :meth:`replay` sent first."""
        self.head += data
        if self.route is not None:
            return b""
        head = self.head
        if not head.startswith(PREFACE[: len(head)]):
            self.route = "http"
            return b""
        if len(head) < len(PREFACE):
            return b""
        verdict = self._scan()
        if verdict is not None:
            self.route = verdict
        elif len(head) >= SNIFF_LIMIT:
            self.route = "http"  # its server refuses whatever this is
        elif not self._sent:
            self._sent = True
            return SERVER_SETTINGS
        return b""

    def replay(self) -> bytes:
        """The bytes taken so far, without the acknowledgement of the front's settings."""
        if self._ack is None:
            return self.head
        a, b = self._ack
        return self.head[:a] + self.head[b:]

    def _scan(self) -> Route | None:
        """Walk the frames after the preface: the route once the first request's headers (and,
        when the front sent settings, their acknowledgement) are in; None until then."""
        head = self.head
        block: bytearray | None = None  # the first request's header block, once it began
        verdict: Route | None = None
        pos = len(PREFACE)
        while pos + 9 <= len(head):
            length = int.from_bytes(head[pos : pos + 3], "big")
            kind, flags = head[pos + 3], head[pos + 4]
            if pos + 9 + length > len(head):
                break
            body = head[pos + 9 : pos + 9 + length]
            start, pos = pos, pos + 9 + length
            if kind == _SETTINGS and flags & _ACK and self._sent and self._ack is None:
                self._ack = (start, pos)
            if verdict is not None:
                continue
            if kind == _HEADERS and block is None:
                if flags & _PADDED:
                    if not body or body[0] > len(body) - 1:
                        return "http"
                    body = body[1 : len(body) - body[0]]
                if flags & _PRIORITY:
                    body = body[5:]
                block = bytearray(body)
            elif kind == _CONTINUATION and block is not None:
                block += body
            elif block is not None:  # a header block interrupted by another frame
                return "http"
            else:
                continue  # SETTINGS, WINDOW_UPDATE, PRIORITY, PING before the first request
            if flags & _END_HEADERS:
                verdict = "grpc" if _is_grpc(bytes(block)) else "http"
        if verdict is None or (self._sent and self._ack is None):
            return None
        return verdict


def _is_grpc(block: bytes) -> bool:
    import hpack

    try:
        headers = hpack.Decoder().decode(block, raw=True)
    except Exception:  # hpack raises several types for malformed blocks
        return False
    for name, value in headers:
        if name == b"content-type":
            return serves(value.decode("latin-1"))
    return False


#: Bytes one read takes at most while the first request is looked for.
READ_SIZE = 64 * 1024


class _Sniffer(asyncio.BufferedProtocol):
    """The protocol of a new connection until :class:`Sniff` decides where it goes; then the
    connection's own server's protocol takes the transport over, the bytes read so far first.

    A buffered protocol: the loop reads into one buffer kept for the look. With a plain
    protocol, asyncio allocates a fresh 256 KiB object for every read; that size is above
    malloc's mmap threshold, so each read would cost an mmap and an munmap.
    """

    def __init__(self, front: Front) -> None:
        self._front = front
        self._sniff = Sniff()
        self._buffer = bytearray(READ_SIZE)
        self._view = memoryview(self._buffer)
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        if sock is not None:
            # asyncio sets no TCP_NODELAY on sockets made with proto 0 (as accept() makes them):
            # without it, Nagle's algorithm and delayed ACKs hold small answers back ~40 ms.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def get_buffer(self, sizehint: int) -> memoryview:
        return self._view

    def buffer_updated(self, nbytes: int) -> None:
        if self._sniff.route is not None:
            return  # the connection has been handed on; nothing more reaches this protocol
        reply = self._sniff.feed(bytes(self._view[:nbytes]))
        if reply and self.transport is not None:
            self.transport.write(reply)
        if self._sniff.route is not None:
            self._go(self._sniff.route)

    def eof_received(self) -> bool | None:
        if self._sniff.route is None:
            self._sniff.route = "http"
            self._go("http")  # hypercorn ends it properly
            assert self.transport is not None
            protocol = self.transport.get_protocol()
            assert isinstance(protocol, asyncio.Protocol)
            return protocol.eof_received()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        pass  # nothing was handed on yet: nothing to end

    def _go(self, where: Route) -> None:
        transport = self.transport
        assert transport is not None
        head = self._sniff.replay()
        if where == "http":
            self._front.to_hypercorn(transport, head)
        else:
            self._front.to_grpc(transport, head)


class Front:
    """The published port: binds 127.0.0.1 (port 0: any free one, read back into ``port``),
    speaks TLS when given, and hands each connection to the gRPC server on the loop (a
    protocol made by ``grpc``) or to hypercorn serving ``app`` (an ASGI application)."""

    def __init__(
        self,
        app: Any,
        grpc: Callable[[], GrpcConnection],
        port: int = 0,
        tls: Tls | None = None,
    ) -> None:
        self._app = app
        self._grpc = grpc
        self.tls = tls
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self._sock.bind(("127.0.0.1", port))
        except OSError as exc:
            self._sock.close()
            raise OSError(f"could not bind 127.0.0.1:{port}: {exc}") from exc
        self._sock.listen(128)
        self.port: int = self._sock.getsockname()[1]
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        #: gRPC connections open now.
        self.grpc_connections: set[GrpcConnection] = set()
        self._hyper: tuple[Any, Any, Any, Any] | None = None

    async def start(self) -> None:
        from hypercorn.app_wrappers import ASGIWrapper
        from hypercorn.asyncio.worker_context import WorkerContext
        from hypercorn.config import Config

        config = Config()
        config.accesslog = None
        config.errorlog = None
        config.keep_alive_max_requests = 2**62  # hypercorn would end a connection after 1000
        config.graceful_timeout = 1.0
        # app, config, the worker's context (shutdown signalling), the lifespan state
        self._hyper = (ASGIWrapper(self._app), config, WorkerContext(None), {})
        context = None
        if self.tls is not None:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            assert self.tls.cert is not None and self.tls.key is not None
            context.load_cert_chain(self.tls.cert, self.tls.key)
            context.set_alpn_protocols(["h2", "http/1.1"])
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _Sniffer(self),
            sock=self._sock,
            ssl=context,
            ssl_handshake_timeout=None if context is None else 10,
        )

    def spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def to_grpc(self, transport: asyncio.Transport, head: bytes) -> None:
        """Serve the connection with the gRPC server on this loop, ``head`` read first."""
        protocol = self._grpc()
        self.grpc_connections.add(protocol)
        protocol.on_close = self.grpc_connections.discard
        transport.set_protocol(protocol)
        protocol.connection_made(transport)
        if head:
            protocol.data_received(head)

    def to_hypercorn(self, transport: asyncio.Transport, head: bytes) -> None:
        """Serve the connection with hypercorn, on this transport, ``head`` read first."""
        from hypercorn.asyncio.tcp_server import TCPServer

        assert self._hyper is not None
        app, config, context, state = self._hyper
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=2**16, loop=loop)
        protocol = asyncio.StreamReaderProtocol(reader, loop=loop)
        transport.set_protocol(protocol)
        protocol.connection_made(transport)
        if head:
            reader.feed_data(head)
        writer = asyncio.StreamWriter(transport, protocol, reader, loop)
        self.spawn(TCPServer(app, loop, config, context, state, reader, writer).run())

    async def stop(self) -> None:
        """Take no more connections; end hypercorn's, and let gRPC calls in flight finish
        (a moment's grace, then they end with UNAVAILABLE)."""
        if self._server is None:
            return
        self._server.close()
        if self._hyper is not None:
            await self._hyper[2].terminated.set()  # hypercorn ends idle connections
        stopping = [c.stop() for c in list(self.grpc_connections)]
        if self._tasks or stopping:
            tasks = set(self._tasks) | {asyncio.ensure_future(s) for s in stopping}
            _, pending = await asyncio.wait(tasks, timeout=1.0)
            for task in pending:
                task.cancel()
            with contextlib.suppress(Exception):
                await asyncio.gather(*pending, return_exceptions=True)
        self._server = None
