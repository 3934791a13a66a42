"""The asyncio pvAccess server: the PVs it publishes by name, its TCP listener, its UDP search
responder and beacons, and the idle sweep.

What its connections share is a framework-neutral :mod:`reckon.pva.server_context`; what
happens on one connection (channels, operations, monitors, backpressure) is a
:mod:`reckon.pva.server_session`, under the thin asyncio layer here (:class:`ServerProtocol`);
a monitor's bounded queue is :mod:`reckon.pva.monitor_queue`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

from reckon.errors import PvaError
from reckon.pva.config import MAX_MESSAGE_SIZE, MAX_QUEUE_BYTES, ServerConfig
from reckon.pva.discovery import SearchResponder, new_guid
from reckon.pva.pv import SharedPV
from reckon.pva.server_context import AccessHook, ServerContext
from reckon.pva.server_session import ServerSession

if TYPE_CHECKING:
    from reckon.pva.share import RedisShare

log = logging.getLogger("reckon.pva.server")

__all__ = ["AccessHook", "Server"]

#: bytes one read may take from a socket
RECEIVE_BUFFER = 256 * 1024


class ServerProtocol(asyncio.Protocol):
    """One connection. On uvloop a read comes as bytes of its size: cheaper than reading into
    a buffer of ours (BufferedProtocol: two calls and a buffer export per read; CPU per small
    get 5-10% less). asyncio's own loop reads a Protocol's with a fresh 256 KiB object (CPU per
    echoed message 23 vs 8 us): there :class:`BufferedServerProtocol` reads into one buffer."""

    def __init__(
        self,
        context: ServerContext,
        loop: asyncio.AbstractEventLoop,
        rxbuf: memoryview,
        on_open: Callable[[], None],
    ) -> None:
        self.session = ServerSession(context, loop)
        self._rxbuf = rxbuf
        self._on_open = on_open

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # cast, not isinstance: uvloop's transports are not subclasses of asyncio.Transport
        tr = cast(asyncio.Transport, transport)
        peername = transport.get_extra_info("peername") or ("?", 0)
        # no TCP_NODELAY here: asyncio's and uvloop's TCP transports both set it
        tr.set_write_buffer_limits(high=self.session.context.send_high_water)
        self.session.opened(tr, (str(peername[0]), int(peername[1])))
        # (the next connection's state, built after this write)
        self.session.loop.call_soon(self._on_open)

    def connection_lost(self, exc: Exception | None) -> None:
        self.session.lost()

    def pause_writing(self) -> None:
        self.session.pause()

    def resume_writing(self) -> None:
        self.session.resume()

    def data_received(self, data: bytes) -> None:
        self.session.receive(data)


class BufferedServerProtocol(ServerProtocol, asyncio.BufferedProtocol):
    def get_buffer(self, sizehint: int) -> memoryview:
        return self._rxbuf

    def buffer_updated(self, nbytes: int) -> None:
        self.session.receive(self._rxbuf[:nbytes])


# ------------------------------------------------------------------------------------------
# the server
# ------------------------------------------------------------------------------------------


class Server:
    """A pvAccess server publishing :class:`SharedPV` objects by name.

    ``Server()`` reads EPICS_PVAS_* / EPICS_PVA_* from the environment; pass a
    :class:`ServerConfig` to set things explicitly. ``access(peer, name, operation)`` may refuse
    puts, RPCs and process requests. PVs can be added and removed while running.
    ``share="redis://host:port/db"`` (or a :class:`~reckon.pva.share.RedisShare`) serves the
    PVs together with every other instance on that Redis (see :mod:`reckon.pva.share`).

    Memory per client is bounded in bytes: a request over ``max_message_size`` is read past and
    answered with an error; the monitor updates queued for a client that does not read are
    held to ``max_queue_bytes`` per connection (then they coalesce) and its replies to
    ``send_high_water`` (then its requests wait); ``max_queue_size`` caps any one ``queueSize``.

    Use ``async with Server() as s:`` or ``await s.start()`` / ``await s.stop()``.
    """

    def __init__(
        self,
        pvs: dict[str, SharedPV] | None = None,
        *,
        config: ServerConfig | None = None,
        access: AccessHook | None = None,
        max_message_size: int = MAX_MESSAGE_SIZE,
        send_high_water: int = 4 * 1024 * 1024,
        max_queue_size: int = 10_000,
        max_queue_bytes: int = MAX_QUEUE_BYTES,
        share: str | RedisShare | None = None,
    ) -> None:
        self.config = config or ServerConfig.from_env()
        self.guid = new_guid()
        # every connection of this server reads into this buffer: all run on one event loop,
        # and each read is consumed (copied into the connection's framer) before the next
        self._rxbuf = memoryview(bytearray(RECEIVE_BUFFER))
        self._pvs: dict[str, SharedPV] = dict(pvs or {})
        self._change_count = 0
        self.context = ServerContext(
            pvs=self._pvs,
            config=self.config,
            access=access,
            max_message_size=max_message_size,
            send_high_water=send_high_water,
            max_queue_size=max_queue_size,
            max_queue_bytes=max_queue_bytes,
        )
        #: the next accepted connection's state, built ahead (see _accepted)
        self._spare: ServerProtocol | None = None
        self._tcp: asyncio.AbstractServer | None = None
        self._responder: SearchResponder | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self.tcp_port = 0
        self.udp_port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self.share: RedisShare | None = None
        if share is not None:
            from reckon.pva.share import open_share

            self.share = open_share(share)
            for name, pv in self._pvs.items():
                self.share.attach(name, pv)

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            raise PvaError("the server is not running; call `await server.start()` first")
        return self._loop

    # ---------------------------------------------------------------------- PVs
    def add(self, name: str, pv: SharedPV) -> SharedPV:
        """Publish ``pv`` as ``name`` (replacing any PV of that name)."""
        if not name or not isinstance(name, str):
            raise PvaError(f"a PV name is a non-empty string, not {name!r}")
        if self._pvs.get(name, pv) is not pv:
            self.remove(name)  # its clients see the old PV's channels destroyed
        self._pvs[name] = pv
        self._change_count += 1
        if self.share is not None:
            self.share.attach(name, pv)
        return pv

    def create(self, name: str, type: Any, initial: Any = None, **kw: Any) -> SharedPV:
        """Create and publish a PV in one call: ``server.create("x", nt.NTScalar("d"), 1.5)``."""
        return self.add(name, SharedPV(type, initial, **kw))

    def remove(self, name: str) -> SharedPV | None:
        """Stop publishing ``name``; clients connected to it see the channel destroyed."""
        pv = self._pvs.pop(name, None)
        if pv is not None:
            self._change_count += 1
            for session in list(self.context.sessions):
                session.close_pv(name)
            if self.share is not None:
                self.share.detach(name)
        return pv

    def __contains__(self, name: str) -> bool:
        return name in self._pvs

    def names(self) -> list[str]:
        return sorted(self._pvs)

    @property
    def max_queue_bytes(self) -> int:  # (kept by the context every connection shares)
        return self.context.max_queue_bytes

    # ---------------------------------------------------------------------- lifecycle
    async def start(self) -> Server:
        self._loop = asyncio.get_running_loop()
        if self.share is not None:  # current values first, then clients
            await self.share.start(self)
        cfg = self.config
        host = cfg.interfaces[0] if cfg.interfaces else "0.0.0.0"
        try:
            self._tcp = await self._loop.create_server(
                self._accepted, host, cfg.tcp_port, reuse_address=True
            )
        except OSError as exc:
            log.warning(
                "pva server: TCP port %d unavailable (%s); using a random port", cfg.tcp_port, exc
            )
            self._tcp = await self._loop.create_server(self._accepted, host, 0)
        self.tcp_port = int(self._tcp.sockets[0].getsockname()[1])
        self._responder = SearchResponder(
            interface=host,
            udp_port=cfg.udp_port,
            tcp_port=self.tcp_port,
            guid=self.guid,
            has_channel=self._pvs.__contains__,
            beacon_targets=cfg.beacon_targets(),
            beacon_period=cfg.beacon_period,
            change_count=lambda: self._change_count,
        )
        await self._responder.start()
        self.context.search = self._responder.answer
        self.udp_port = self._responder.udp_port
        self._sweeper = self._loop.create_task(self._sweep_idle(), name="pva-idle-sweep")
        self._spare = self._protocol()
        log.info("pva server: TCP %s:%d, UDP %d", host, self.tcp_port, self.udp_port)
        return self

    def _accepted(self) -> ServerProtocol:
        """The protocol of a connection just accepted: the one built ahead, when there is
        one. A new connection's state (its protocol machine, codecs, tables) takes a dozen
        objects; built when a client connects after an idle spell, every line of it runs with
        cold caches, which cost about 100 us on the connect path here against about 20 us
        warm. So each connection's state is built after the previous client's first reply
        went out (``build_spare``), off any client's path."""
        conn, self._spare = self._spare, None
        return conn or self._protocol()

    def _protocol(self) -> ServerProtocol:
        uv = type(self.loop).__module__.startswith("uvloop")  # (see ServerProtocol)
        cls = ServerProtocol if uv else BufferedServerProtocol
        return cls(self.context, self.loop, self._rxbuf, self.build_spare)

    def build_spare(self) -> None:
        """Build the next connection's state now, unless it is there (called once a new
        connection has written its first bytes)."""
        if self._spare is None and self._tcp is not None and self._tcp.is_serving():
            self._spare = self._protocol()

    async def _sweep_idle(self) -> None:
        """Drop connections silent for twice EPICS_PVA_CONN_TMO (clients echo every half of
        it), so peers that vanished without closing do not hold memory forever."""
        limit = 2 * self.config.conn_timeout
        while True:
            await asyncio.sleep(max(limit / 4, 0.05))
            now = self.loop.time()
            for session in list(self.context.sessions):
                if session.heard:
                    session.heard = False
                    session.last_rx = now
                elif now - session.last_rx > limit and not session.closed:
                    session.drop(PvaError(f"silent for more than {limit:g}s"))

    async def stop(self) -> None:
        if self.share is not None:
            await self.share.stop()
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        if self._responder is not None:
            self.context.search = None
            await self._responder.stop()
            self._responder = None
        self._spare = None
        if self._tcp is not None:
            self._tcp.close()
            for session in list(self.context.sessions):
                if session.sink is not None:
                    session.sink.abort()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._tcp.wait_closed(), 2)
            self._tcp = None

    async def __aenter__(self) -> Server:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def serve_forever(self) -> None:
        """Start (if not started) and serve until cancelled, then stop: the idiom of
        :meth:`asyncio.Server.serve_forever`, for a program whose only job is serving."""
        if self._tcp is None:
            await self.start()
        try:
            await asyncio.Event().wait()
        finally:
            await self.stop()

    @property
    def connections(self) -> int:
        return len(self.context.sessions)

    def stats(self) -> dict[str, Any]:
        sessions = self.context.sessions
        return {
            "pvs": len(self._pvs),
            "connections": len(sessions),
            "channels": sum(len(c.channels) for c in sessions),
            "monitors": sum(len(c.monitors) for c in sessions),
            "searches_answered": self._responder.searches_answered if self._responder else 0,
        }
