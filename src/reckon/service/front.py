"""The one published port of a process: every connection is looked at once and handed to the
server for its protocol.

A gRPC client with protobuf bodies (HTTP/2 whose first request has ``content-type:
application/grpc`` or ``application/grpc+proto``) is relayed, bytes as they come, to grpcio's
C-core server (``grpc.aio``), which listens only on an abstract Unix socket of the process (a
name, no port): grpcio cannot take a connection another server accepted, and its C core serves
gRPC at about twice the speed of a pure-Python HTTP/2 stack. A plain connection's answers are
relayed by a thread of its own (:class:`_Spliced`), out of the way of the event loop that runs
the handlers, and its requests by the loop; a TLS connection is decrypted and relayed by the
loop. Every other connection (HTTP/1.1, HTTP/2 carrying Connect, gRPC-Web or gRPC with JSON,
h2c by upgrade) goes to hypercorn in this process on the accepted socket itself, the bytes
looked at fed back first: no second hop.

The choice is made on the first request of a connection, once: clients use one protocol per
connection. :class:`Sniff` is the whole decision, sans I/O (bytes in, a verdict out).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import ssl
import threading
from typing import Any, Literal

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
            kind = value.split(b";")[0].strip().lower()
            # grpcio reads protobuf bodies only: gRPC with JSON (application/grpc+json) is
            # for connectrpc's codecs, behind hypercorn.
            return kind in (b"application/grpc", b"application/grpc+proto")
    return False


#: Bytes one read of a relayed connection takes at most.
READ_SIZE = 64 * 1024


class _Relay(asyncio.BufferedProtocol):
    """One side of a relayed connection: what arrives is written to the other side; a side
    whose buffer fills up pauses the other's reading (no unbounded buffering).

    A buffered protocol: the loop reads into one buffer kept for the connection's life. With a
    plain protocol, asyncio allocates a fresh 256 KiB object for every read; that size is
    above malloc's mmap threshold, so each relayed message cost an mmap, an munmap and a TLB
    flush on every core the process runs on (measured: about a tenth of the server's CPU under
    gRPC ping-pong, and the other core interrupted on each message). What is passed on is a
    copy of the bytes read, the size of a message.
    """

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.other: _Relay | None = None
        self._buffer = bytearray(READ_SIZE)
        self._view = memoryview(self._buffer)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.set_write_buffer_limits(high=256 * 1024)

    def get_buffer(self, sizehint: int) -> memoryview:
        return self._view

    def buffer_updated(self, nbytes: int) -> None:
        if self.other is not None and self.other.transport is not None:
            # a copy of what was read: a transport may keep what it cannot send at once, and
            # from Python 3.12 on it keeps the very object it was given
            self.other.transport.write(self._buffer[:nbytes])

    def eof_received(self) -> bool | None:
        other = self.other.transport if self.other is not None else None
        if other is not None and other.can_write_eof():
            other.write_eof()
            return True  # keep the other direction open until it ends too
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        if self.other is not None and self.other.transport is not None:
            self.other.transport.close()

    def pause_writing(self) -> None:
        if self.other is not None and self.other.transport is not None:
            self.other.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.other is not None and self.other.transport is not None:
            self.other.transport.resume_reading()


class _Sniffer(_Relay):
    """The protocol of a new connection until :class:`Sniff` decides where it goes."""

    def __init__(self, front: Front) -> None:
        super().__init__()
        self._front = front
        self._sniff = Sniff()
        self._head = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            # asyncio sets no TCP_NODELAY on sockets made with proto 0 (as accept() makes them):
            # without it, Nagle's algorithm and delayed ACKs hold small answers back ~40 ms.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def buffer_updated(self, nbytes: int) -> None:
        if self._sniff.route is not None:
            super().buffer_updated(nbytes)
            return
        reply = self._sniff.feed(bytes(self._view[:nbytes]))
        if reply and self.transport is not None:
            self.transport.write(reply)
        if self._sniff.route is not None:
            self._head = self._sniff.replay()
            self._go(self._sniff.route)

    def eof_received(self) -> bool | None:
        if self._sniff.route is None:
            self._sniff.route = "http"
            self._head = self._sniff.replay()
            self._go("http")  # hypercorn ends it properly
            assert self.transport is not None
            protocol = self.transport.get_protocol()
            assert isinstance(protocol, asyncio.Protocol)
            return protocol.eof_received()
        return super().eof_received()

    def _go(self, where: Route) -> None:
        transport = self.transport
        assert transport is not None
        if where == "http":
            self._front.to_hypercorn(transport, self._head)
            return
        sock = transport.get_extra_info("socket")
        if (
            SPLICE
            and self._front.tls is None
            and self._front.spliced < SPLICED_MAX
            and sock is not None
            and transport.get_write_buffer_size() == 0
        ):
            # plain TCP: the server's answers get a relay thread, the loop reads the client
            fd = os.dup(sock.fileno())
            transport.abort()  # the loop lets go of its copy; nothing is sent or closed
            _Spliced(fd, self._head, self._front)
            return
        transport.pause_reading()  # TLS: the loop decrypts, so it relays too
        self._front.spawn(self._relay())

    async def _relay(self) -> None:
        transport = self.transport
        assert transport is not None
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(10):
                _, back = await loop.create_unix_connection(_Relay, self._front.grpc_path)
        except (OSError, TimeoutError):
            transport.close()
            return
        if transport.is_closing():
            assert back.transport is not None
            back.transport.close()
            return
        back.other, self.other = self, back
        assert back.transport is not None
        back.transport.write(self._head)
        self._head = b""
        transport.resume_reading()


#: Linux moves bytes between two sockets through a pipe without copying them into the process.
SPLICE = hasattr(os, "splice")
#: Connections relayed by threads at once, at most (one thread each); more are relayed by the
#: event loop alone, so many clients cannot make the process start thousands of threads.
SPLICED_MAX = 128


class _Spliced:
    """A plain gRPC connection, relayed each way by whoever is awake anyway.

    What the server sends goes to the client from a thread of its own, which moves bytes with
    ``os.splice`` (socket to pipe to socket, in the kernel): a server stream's messages go on
    while the event loop makes the next one, and a busy loop does not hold back another
    connection's answers. What the client sends goes to the server from the event loop, which
    reads the client's socket like any other: a request wakes the loop, not a thread that
    would then wait for the loop's lock on the interpreter (measured with bidi ping-pong: a
    thread each way cost about 0.03x of raw grpcio's rate more, and as much on server
    streams, whose client side sends window updates). Both sockets stay blocking for the
    thread; the loop reads and writes them with ``MSG_DONTWAIT``.

    Each direction waits while the other side's buffer is full (backpressure); an end of stream
    is passed on as a half close, and the sockets are closed once both directions have ended
    (at once when either side fails). Like a relay in the loop, a relayed connection outlives
    :meth:`Front.stop`: it ends when the gRPC server closes its side (so what that server sends
    last, such as a health watcher's NOT_SERVING, still reaches the client), or, once the loop
    has closed, when the server's side ends.
    """

    def __init__(self, client: int, head: bytes, front: Front) -> None:
        self._loop = asyncio.get_running_loop()
        self._client = socket.socket(fileno=client)
        self._client.setblocking(True)
        self._server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._front = front
        self._lock = threading.Lock()
        self._open = 2  # directions still running
        self._closed = False
        self._head = head
        self._buffer = bytearray(READ_SIZE)  # the client's bytes, read by the loop
        self._pending = memoryview(b"")  # what the server's socket did not take yet
        with front.lock:
            front.spliced += 1
        threading.Thread(target=self._start, name="reckon-relay", daemon=True).start()

    def _start(self) -> None:
        back = self._server
        try:
            back.settimeout(10)
            back.connect(self._front.grpc_path)
            back.setblocking(True)
            back.sendall(self._head)
            self._head = b""
            self._loop.call_soon_threadsafe(self._watch_client)
        except (OSError, RuntimeError):  # no server, or the loop has closed
            self._open = 1
            self._ended(clean=False)
            return
        self._pump()

    # -- server to client: this thread -------------------------------------------------------

    def _pump(self) -> None:
        clean = True
        try:
            r, w = os.pipe()
            try:
                src, dst = self._server.fileno(), self._client.fileno()
                while n := os.splice(src, w, READ_SIZE):
                    while n:
                        n -= os.splice(r, dst, n)
            finally:
                os.close(r)
                os.close(w)
        except OSError:
            clean = False  # reset, shut down by the other direction, or out of descriptors
        if clean:
            with contextlib.suppress(OSError):
                self._client.shutdown(socket.SHUT_WR)  # the end of the stream, passed on
            if self._loop.is_closed():
                self._ended(clean=True)  # nobody reads the client any more: its side ends too
        self._ended(clean)

    # -- client to server: the event loop ----------------------------------------------------

    def _watch_client(self) -> None:
        if self._closed:
            return
        self._loop.add_reader(self._client.fileno(), self._from_client)

    def _from_client(self) -> None:
        try:
            n = self._client.recv_into(self._buffer, READ_SIZE, socket.MSG_DONTWAIT)
            if n:
                sent = _send_some(self._server, memoryview(self._buffer)[:n])
                if sent < n:  # the server's buffer is full: stop reading until it drains
                    self._pending = memoryview(self._buffer[sent:n])
                    self._loop.remove_reader(self._client.fileno())
                    self._loop.add_writer(self._server.fileno(), self._to_server)
                return
        except BlockingIOError:
            return
        except OSError:
            n = -1  # reset, or shut down by the other direction
        self._loop.remove_reader(self._client.fileno())
        if n == 0:
            with contextlib.suppress(OSError):
                self._server.shutdown(socket.SHUT_WR)  # the end of the stream, passed on
        self._ended(clean=n == 0)

    def _to_server(self) -> None:
        try:
            self._pending = self._pending[_send_some(self._server, self._pending) :]
        except OSError:
            self._loop.remove_writer(self._server.fileno())
            self._ended(clean=False)
            return
        if not self._pending:
            self._loop.remove_writer(self._server.fileno())
            self._loop.add_reader(self._client.fileno(), self._from_client)

    # -- both --------------------------------------------------------------------------------

    def _ended(self, clean: bool) -> None:
        """One direction ended (a failure ends the other too); the last one closes."""
        if not clean:
            self.shutdown()
        with self._lock:
            self._open -= 1
            if self._open > 0 or self._closed:
                return
            self._closed = True
        self._client.close()
        self._server.close()
        with self._front.lock:
            self._front.spliced -= 1

    def shutdown(self) -> None:
        """End both directions (the thread's splice returns; the loop reads an end)."""
        with self._lock:
            if self._closed:
                return
            for sock in (self._client, self._server):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)


def _send_some(sock: socket.socket, data: memoryview) -> int:
    """Bytes of ``data`` a blocking socket takes now (0 when its buffer is full)."""
    try:
        return sock.send(data, socket.MSG_DONTWAIT)
    except BlockingIOError:
        return 0


class Front:
    """The published port: binds 127.0.0.1 (port 0: any free one, read back into ``port``),
    speaks TLS when given, and hands each connection to grpc.aio (at ``grpc_path``) or to
    hypercorn serving ``app`` (an ASGI application)."""

    def __init__(self, app: Any, grpc_path: str, port: int = 0, tls: Tls | None = None) -> None:
        self._app = app
        self.grpc_path = grpc_path
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
        #: gRPC connections relayed by threads now (:class:`_Spliced`), counted under ``lock``.
        self.spliced = 0
        self.lock = threading.Lock()
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
        if self._server is None:
            return
        self._server.close()
        if self._hyper is not None:
            await self._hyper[2].terminated.set()  # hypercorn ends idle connections
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=1.0)
            for task in pending:
                task.cancel()
            with contextlib.suppress(Exception):
                await asyncio.gather(*pending, return_exceptions=True)
        self._server = None
