"""One TCP connection of the client to a server, and the channels and operations it carries.

A :class:`ClientProtocol` turns bytes into events with the sans-I/O ``ClientConnection``
and routes each to its channel (by cid) or its operation (by ioid). When the connection drops,
every waiting operation fails with :class:`Disconnected` (the client retries it) and every
channel goes back to searching, which is how operations and monitors survive a server restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from typing import Any, Protocol, cast

from reckon.errors import PvaError, PvaRemoteError
from reckon.pva.config import Address, ClientConfig
from reckon.pva.protocol import (
    ClientConnection,
    ConnectionClosed,
    ConnectionValidated,
    ConnectionValidationRequest,
    ConnectionValidationResponse,
    ControlEchoRequest,
    ControlEchoResponse,
    CreateChannelResponse,
    DestroyChannel,
    Echo,
    Event,
    Message,
    ProtocolError,
    SearchResponse,
)


class Owner(Protocol):
    """What connections, channels and subscriptions need of their client (a Client)."""

    config: ClientConfig
    max_message_size: int
    receive_buffer: memoryview
    auth: str
    user: str
    host: str

    @property
    def loop(self) -> asyncio.AbstractEventLoop: ...
    def channel(self, name: str) -> Channel: ...
    def next_ioid(self) -> int: ...
    def searching(self, ch: Channel) -> None: ...
    def on_search_response(self, ev: SearchResponse, source: Address) -> None: ...
    def forget_connection(self, conn: ClientProtocol) -> None: ...


class Monitor(Protocol):
    """What a channel and its client need of a subscription on it."""

    def reconnected(self) -> None: ...
    async def close(self) -> None: ...


log = logging.getLogger("reckon.pva.client")  # (the client's: one for all its modules)


class Disconnected(PvaError):
    """Internal: the channel's connection dropped while an operation waited (it is retried)."""


class Op:
    """One operation (ioid) on a connection: replies that arrive before anyone awaits them
    queue up, so a caller never misses one between sending a request and awaiting its answer."""

    __slots__ = ("busy", "info", "ioid", "queue", "waiter")

    def __init__(self, ioid: int) -> None:
        self.ioid = ioid
        self.busy = False
        self.info: Event | None = None
        self.waiter: asyncio.Future[Event] | None = None
        self.queue: deque[Event] = deque()

    def deliver(self, ev: Event) -> None:
        w = self.waiter
        if w is not None and not w.done():
            self.waiter = None
            w.set_result(ev)
        else:
            self.queue.append(ev)

    def fail(self, exc: BaseException) -> None:
        w = self.waiter
        if w is not None and not w.done():
            self.waiter = None
            w.set_exception(exc)

    async def next(self, loop: asyncio.AbstractEventLoop) -> Event:
        if self.queue:
            return self.queue.popleft()
        w: asyncio.Future[Event] = loop.create_future()
        self.waiter = w
        return await w


class ClientProtocol(asyncio.BufferedProtocol):
    """One server connection; reads into the client's one receive buffer (``recv_into``: no
    256 KiB allocation per read, as a plain Protocol's transport makes)."""

    def __init__(self, client: Owner, address: Address) -> None:
        self.client = client
        self.receive_buffer = client.receive_buffer
        self.address = address
        self.loop = client.loop
        self.conn = ClientConnection(max_message_size=client.max_message_size)
        self.transport: asyncio.Transport | None = None
        self.ready: asyncio.Future[None] = self.loop.create_future()
        self.channels: dict[int, Channel] = {}  # by cid
        self.ops: dict[int, Op] = {}
        self.closed = False
        self._keepalive: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's are not subclasses
        # no TCP_NODELAY here: asyncio's and uvloop's TCP transports both set it
        self._schedule_echo()

    def _schedule_echo(self) -> None:
        # Servers (pvxs, and reckon's) drop connections silent for EPICS_PVA_CONN_TMO; an echo
        # every half of it keeps a quiet connection (say, a monitor of a still PV) alive.
        self._keepalive = self.loop.call_later(self.client.config.conn_timeout / 2, self._echo)

    def _echo(self) -> None:
        if self.closed or self.transport is None:
            return
        if self.ready.done() and not self.ready.cancelled() and self.ready.exception() is None:
            with contextlib.suppress(PvaError, ProtocolError):
                self.send(Echo(b""))
        self._schedule_echo()

    def get_buffer(self, sizehint: int) -> memoryview:
        return self.receive_buffer

    def buffer_updated(self, nbytes: int) -> None:
        try:
            # receive_data copies the bytes out (the buffer is reused by the next read)
            self.conn.receive_data(self.receive_buffer[:nbytes])
            for ev in self.conn.events():
                self._handle(ev)
        except ProtocolError as exc:
            log.warning("pva client: dropping server %s:%d: %s", *self.address, exc)
            if self.transport is not None:
                self.transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._keepalive is not None:
            self._keepalive.cancel()
        if not self.ready.done():
            self.ready.set_exception(Disconnected(f"connection to {self.address} lost"))
        self.client.forget_connection(self)
        for op in list(self.ops.values()):
            op.fail(Disconnected("server disconnected"))
        self.ops.clear()

    def send(self, ev: Event) -> None:
        if self.closed or self.transport is None:
            raise Disconnected("server disconnected")
        self.transport.write(self.conn.send(ev))

    def _handle(self, ev: Event) -> None:
        match ev:
            case ConnectionValidationRequest():
                c = self.client
                if "ca" in ev.auth_methods and c.auth == "ca":
                    self.send(ConnectionValidationResponse.ca(c.user, c.host))
                else:
                    self.send(ConnectionValidationResponse())
            case ConnectionValidated() if not self.ready.done():
                if ev.status.success:
                    self.ready.set_result(None)
                else:
                    self.ready.set_exception(
                        PvaRemoteError(f"server {self.address} refused us: {ev.status.message}")
                    )
            case CreateChannelResponse():
                ch = self.channels.get(ev.cid)
                if ch is not None:
                    ch.created(self, ev)
            case DestroyChannel():
                ch = self.channels.pop(ev.cid, None)
                if ch is not None:
                    ch.lost(self)
            case SearchResponse():
                self.client.on_search_response(ev, self.address)
            case ControlEchoRequest():
                self.send(ControlEchoResponse(ev.value))
            case Message():
                log.info("pva client: message from %s: %s", self.address, ev.text)
            case ConnectionClosed():
                if self.transport is not None:
                    self.transport.close()
            case _:  # an operation's reply (Echo, SetByteOrder and the like have no ioid)
                op = self.ops.get(getattr(ev, "ioid", -1))
                if op is not None:
                    op.deliver(ev)


# ------------------------------------------------------------------------------------------
# channels
# ------------------------------------------------------------------------------------------


class Channel:
    """A PV name as the client tracks it across connections: it outlives any one server, so
    callers and monitors hold it while it searches, connects and reconnects."""

    def __init__(self, client: Owner, name: str, cid: int) -> None:
        self.client = client
        self.name = name
        self.cid = cid
        self.conn: ClientProtocol | None = None
        self.sid = 0
        self.connected = asyncio.Event()
        self.error: Exception | None = None
        self.search_step = 0
        self.next_search = 0.0
        self.monitors: set[Monitor] = set()
        self.op_cache: dict[tuple[str, str], Op] = {}

    def created(self, conn: ClientProtocol, ev: CreateChannelResponse) -> None:
        if not ev.status.success:
            self.error = PvaRemoteError(f"{self.name}: server refused channel: {ev.status.message}")
            conn.channels.pop(self.cid, None)
            self.conn = None
            self.client.searching(self)
            return
        self.conn = conn
        self.sid = ev.sid
        self.error = None
        self.op_cache.clear()
        self.connected.set()
        for sub in list(self.monitors):
            sub.reconnected()

    def lost(self, conn: ClientProtocol) -> None:
        if self.conn is not conn and self.conn is not None:
            return
        self.conn = None
        self.op_cache.clear()
        self.connected.clear()
        self.search_step = 0
        self.client.searching(self)


#: a channel's ``conn`` while the server was found and its connection is being made
PENDING: Any = object()
