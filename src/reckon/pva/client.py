"""The asyncio pvAccess client, :class:`Client`.

One :class:`Client` shares a UDP search socket and one TCP connection per server among all its
channels. Channels search until found (UDP address list, then TCP name servers), connect, and
go back to searching when their server goes away, so operations and monitors survive a server
restart. Every operation takes a timeout and raises :class:`~reckon.errors.PvaTimeoutError`
naming the PV; error statuses from the server raise :class:`~reckon.errors.PvaRemoteError`.

The pieces live beside it: the server connection and channels in
:mod:`reckon.pva.client_connection`, monitors in :mod:`reckon.pva.subscription`, and the
blocking :class:`SyncClient` in :mod:`reckon.pva.sync` (also importable from :mod:`reckon.pva`).
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import itertools
import logging
import socket
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

from reckon.errors import PvaError, PvaRemoteError, PvaTimeoutError, PvaTypeError
from reckon.pva.client_connection import PENDING, Channel, ClientProtocol, Disconnected, Op
from reckon.pva.config import DEFAULT_TIMEOUT, MAX_MESSAGE_SIZE, Address, ClientConfig
from reckon.pva.discovery import SearchClient
from reckon.pva.protocol import (
    RPC,
    BitSet,
    CreateChannelRequest,
    DestroyRequest,
    Event,
    FieldDesc,
    Get,
    GetField,
    GetInit,
    ProtocolError,
    Put,
    PutGet,
    PutGetInit,
    PutGetInitResponse,
    PutInit,
    PutInitResponse,
    RPCInit,
    SearchRequest,
    SearchResponse,
    Status,
    Structure,
    VariantValue,
    pv_request,
)
from reckon.pva.pv import fields_update, merge
from reckon.pva.stopping import end_tasks
from reckon.pva.subscription import Subscription, Update

__all__ = ["DEFAULT_TIMEOUT", "Client", "Subscription", "Update", "make_request"]

log = logging.getLogger("reckon.pva.client")

_SEARCH_DELAYS = (0.0, 0.05, 0.1, 0.2, 0.4, 0.8, 1.0)


def _user() -> str:
    """The user name "ca" authentication sends; a process with no passwd entry still connects."""
    try:
        return getpass.getuser()
    except Exception:
        return "unknown"


def make_request(request: str | Mapping[str, Any] | VariantValue | None) -> VariantValue | None:
    """A pvRequest from ``"field(value)record[queueSize=4]"``, a dict, or an existing value."""
    if request is None or isinstance(request, VariantValue):
        return request
    if isinstance(request, str):
        return pv_request(request)
    return VariantValue.of(dict(request))


def check_status(status: Status, what: str, name: str) -> None:
    """Raise the server's error status with the operation and PV named, so it can be traced."""
    if not status.success:
        raise PvaRemoteError(f"{what} {name!r}: {status.message or 'error'}")


def build_value(t: FieldDesc | None, value: Any, name: str) -> tuple[dict[str, Any], BitSet]:
    """A full value of the server's put type and the fields ``value`` sets (see
    :func:`~reckon.pva.pv.fields_update`)."""
    if not isinstance(t, Structure):
        raise PvaError(f"put {name!r}: the server gave no structure type")
    try:
        full, mask = merge(t, t.default(), fields_update(t, value))
    except PvaTypeError as exc:
        raise PvaTypeError(f"put {name!r}: {exc}") from None
    return full, BitSet.from_mask(mask)


def _made(fut: asyncio.Future[ClientProtocol]) -> ClientProtocol | None:
    """The connection a connect future made, or None (still connecting, failed or cancelled)."""
    ok = fut.done() and not fut.cancelled() and fut.exception() is None
    return fut.result() if ok else None


class Client:
    """An asyncio pvAccess client.

    ``Client()`` reads EPICS_PVA_* from the environment (``ClientConfig`` to set it explicitly).
    Authentication is "ca" with the local user and host names unless ``auth="anonymous"``.
    """

    def __init__(
        self,
        config: ClientConfig | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        auth: str = "ca",
        user: str | None = None,
        host: str | None = None,
        max_message_size: int = MAX_MESSAGE_SIZE,
    ) -> None:
        self.config = config or ClientConfig.from_env()
        #: a reply over this many bytes fails its operation (the connection stays up)
        self.max_message_size = max_message_size
        self.timeout = timeout
        self.auth = auth
        self.user = user if user is not None else _user()
        self.host = host if host is not None else socket.gethostname()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._channels: dict[str, Channel] = {}
        self._by_cid: dict[int, Channel] = {}
        # one connection per server, whether it was found by a search or is a name server
        self._conns: dict[Address, asyncio.Future[ClientProtocol]] = {}
        self._cids = itertools.count(1)
        # every connection of this client reads into this buffer (one event loop; each read is
        # copied into its connection's framer before the next)
        self.receive_buffer = memoryview(bytearray(256 * 1024))
        self._ioids = itertools.count(1)
        self._seq = itertools.count(1)
        self._udp: SearchClient | None = None
        self._search_task: asyncio.Task[None] | None = None
        self._search_wake = asyncio.Event()  # (bound to no loop until waited on)
        self._closed = False

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        return self._loop

    async def __aenter__(self) -> Client:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def start(self) -> None:
        if self._udp is not None or self._closed:
            return
        self._loop = asyncio.get_running_loop()
        self._udp = SearchClient(self.config.search_targets(), self.on_search_response)
        await self._udp.start()
        self._search_task = self.loop.create_task(self._search_loop())

    async def close(self) -> None:
        self._closed = True
        for ch in self._channels.values():
            for sub in list(ch.monitors):
                await sub.close()
        await end_tasks([self._search_task], within=self.config.conn_timeout)
        if self._udp is not None:
            self._udp.close()
        for fut in self._conns.values():
            conn = _made(fut)
            if conn is None:
                fut.cancel()
            elif conn.transport is not None:
                conn.transport.close()
        self._conns.clear()

    def next_ioid(self) -> int:
        return next(self._ioids) & 0xFFFFFFFF

    # ---------------------------------------------------------------------- search
    def channel(self, name: str) -> Channel:
        if not isinstance(name, str) or not name:
            raise PvaError(f"a PV name is a non-empty string, not {name!r}")
        ch = self._channels.get(name)
        if ch is None:
            ch = Channel(self, name, next(self._cids) & 0xFFFFFFFF)
            self._channels[name] = ch
            self._by_cid[ch.cid] = ch
            if self._udp is not None and self._loop is not None:
                # search at once (no wait for the search loop's next turn), then on its backoff
                self._send_search([ch])
                ch.search_step = 1
                ch.next_search = self._loop.time() + _SEARCH_DELAYS[1]
            self._search_wake.set()  # (a new channel's next_search starts at 0: now)
        return ch

    def searching(self, ch: Channel) -> None:
        ch.next_search = 0.0
        self._search_wake.set()

    async def _search_loop(self) -> None:
        while not self._closed:
            now = self.loop.time()
            due: list[Channel] = []
            wait = 5.0
            for ch in self._channels.values():
                if ch.connected.is_set() or ch.conn is not None:
                    continue
                if ch.next_search <= now:
                    due.append(ch)
                    step = min(ch.search_step, len(_SEARCH_DELAYS) - 1)
                    ch.search_step += 1
                    ch.next_search = now + max(_SEARCH_DELAYS[step], 0.02)
                wait = min(wait, max(ch.next_search - now, 0.0))
            if due:
                self._send_search(due)
            self._search_wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(wait, 0.01)):
                    await self._search_wake.wait()

    def _send_search(self, due: list[Channel]) -> None:
        seq = next(self._seq) & 0xFFFFFFFF
        pairs = [(ch.cid, ch.name) for ch in due]
        if self._udp is not None:
            self._udp.search(seq, pairs)
        for addr in self.config.name_servers:
            self.loop.create_task(self._name_server_search(addr, seq, pairs))

    async def _name_server_search(
        self, addr: Address, seq: int, pairs: list[tuple[int, str]]
    ) -> None:
        try:
            conn = await self._connect(addr)
            conn.send(
                SearchRequest(
                    sequence=seq, channels=tuple(pairs), reply_required=False, unicast=True
                )
            )
        except (OSError, PvaError, ProtocolError) as exc:
            log.debug("pva client: name server %s:%d: %s", addr[0], addr[1], exc)

    def on_search_response(self, ev: SearchResponse, source: Address) -> None:
        if not ev.found or self._closed:
            return
        # (decoded, any unspecified address is "0.0.0.0", and an IPv4-mapped one dotted IPv4)
        server = (source[0] if ev.address == "0.0.0.0" else ev.address, ev.port)
        for cid in ev.cids:
            ch = self._by_cid.get(cid)
            if ch is None or ch.conn is not None or ch.connected.is_set():
                continue
            ch.conn = PENDING
            self.loop.create_task(self._create_channel(ch, server))

    async def _create_channel(self, ch: Channel, server: Address) -> None:
        try:
            conn = await self._connect(server)
            conn.channels[ch.cid] = ch
            conn.send(CreateChannelRequest(ch.cid, ch.name))
            ch.conn = conn  # pending until _created
        except (OSError, PvaError, ProtocolError) as exc:
            log.debug("pva client: connecting %s to %s: %s", ch.name, server, exc)
            ch.conn = None
            ch.error = exc if isinstance(exc, PvaError) else None
            self.searching(ch)

    async def _connect(self, addr: Address) -> ClientProtocol:
        """The connection to ``addr``: the one made or being made, else a new one (its making
        is a task of its own: a caller that gives up does not cancel it for the others)."""
        fut = self._conns.get(addr)
        if fut is None or (fut.done() and _made(fut) is None):
            fut = self._conns[addr] = self.loop.create_task(self._open(addr))
        return await asyncio.shield(fut)

    async def _open(self, addr: Address) -> ClientProtocol:
        _, proto = await self.loop.create_connection(
            lambda: ClientProtocol(self, addr), addr[0], addr[1]
        )
        # asyncio.timeout, not wait_for: Python 3.11's wait_for can drop a cancel that arrives
        # as the handshake completes
        async with asyncio.timeout(self.config.conn_timeout):
            await asyncio.shield(proto.ready)
        return proto

    def forget_connection(self, conn: ClientProtocol) -> None:
        fut = self._conns.get(conn.address)
        if fut is not None and _made(fut) is conn:
            del self._conns[conn.address]
        for ch in list(conn.channels.values()):
            ch.lost(conn)
        conn.channels.clear()

    # ---------------------------------------------------------------------- operations
    async def _connected(self, name: str) -> Channel:
        await self.start()
        ch = self.channel(name)
        while not ch.connected.is_set() or ch.conn is None or ch.conn is PENDING:
            await ch.connected.wait()  # (bounded by the caller's deadline)
        return ch

    async def _run(self, name: str, what: str, timeout: float | None, body: Any) -> Any:  # noqa: ASYNC109
        t = self.timeout if timeout is None else timeout
        deadline = self.loop.time() + t
        while True:
            try:
                async with asyncio.timeout_at(deadline):
                    ch = await self._connected(name)
                    return await body(ch)
            except TimeoutError:
                known = self._channels.get(name)
                if known is not None and known.error is not None:
                    why = f"no answer within {t}s ({known.error})"
                elif known is not None and known.connected.is_set():
                    why = f"connected but no reply within {t}s"
                else:
                    why = f"not found: no server answered the search within {t}s"
                raise PvaTimeoutError(f"{what} {name!r}: {why}") from None
            except Disconnected:
                continue  # the server went away mid-operation: search again and retry

    @contextlib.asynccontextmanager
    async def _use_op(
        self,
        ch: Channel,
        key: tuple[str, str],
        init: Callable[[int], Event] | None,
        what: str,
        name: str,
    ) -> AsyncIterator[tuple[ClientProtocol, Op]]:
        """An operation opened by ``init(ioid)``: the channel's cached one when it is free,
        else a new one (without ``init``, a bare ioid for one request and its reply).

        Reusing an operation makes a get one round trip instead of two. An operation that
        failed, timed out or was cancelled mid-way is destroyed (its state is unknown); a
        second, concurrent one is destroyed after use.
        """
        conn = ch.conn
        if conn is None or conn is PENDING:
            raise Disconnected("not connected")
        op = ch.op_cache.get(key) if init is not None else None
        if op is None or op.busy or op.ioid not in conn.ops:
            op = Op(self.next_ioid())
            conn.ops[op.ioid] = op
            if init is not None:
                op.busy = True
                try:
                    conn.send(init(op.ioid))
                    ev = await op.next(self.loop)
                    op.info = ev
                    check_status(getattr(ev, "status", Status.OK), what, name)
                except BaseException:
                    self._discard(conn, ch, op)
                    raise
                if key not in ch.op_cache or ch.op_cache[key].ioid not in conn.ops:
                    ch.op_cache[key] = op
        op.busy = True
        ok = False
        try:
            yield conn, op
            ok = True
        finally:
            op.busy = False
            cached = ch.op_cache.get(key) is op
            if not ok and cached:
                del ch.op_cache[key]
            if init is None:
                conn.ops.pop(op.ioid, None)
            elif not ok or not cached:
                self._discard(conn, ch, op)

    def _discard(self, conn: ClientProtocol, ch: Channel, op: Op) -> None:
        if conn.ops.pop(op.ioid, None) is not None:
            with contextlib.suppress(PvaError, ProtocolError):
                conn.send(DestroyRequest(ch.sid, op.ioid))

    async def _exchange(
        self,
        name: str,
        what: str,
        timeout: float | None,  # noqa: ASYNC109
        request: str | Mapping[str, Any] | None,
        init: Callable[[int, int, VariantValue | None], Event] | None,
        message: Callable[[int, int, Any], Event],
    ) -> Any:
        """One request and its reply on ``name``'s channel, retried across reconnects within
        ``timeout``: ``init(sid, ioid, pvRequest)`` opens the operation (kept by the channel
        for the next call with the same ``request``), ``message(sid, ioid, init's reply)`` is
        sent, and the reply, its status checked, returned."""
        req = make_request(request)

        async def body(ch: Channel) -> Any:
            opener = None if init is None else lambda ioid: init(ch.sid, ioid, req)
            key = (what, repr(request))
            async with self._use_op(ch, key, opener, what, name) as (conn, op):
                conn.send(message(ch.sid, op.ioid, op.info))
                ev: Any = await op.next(self.loop)
                check_status(ev.status, what, name)
                return ev

        return await self._run(name, what, timeout, body)

    async def get(
        self,
        name: str,
        request: str | Mapping[str, Any] | None = None,
        *,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> dict[str, Any]:
        """The PV's current value (a dict; ``["value"]`` for NT types)."""
        ev = await self._exchange(
            name, "get", timeout, request, GetInit, lambda sid, ioid, _: Get(sid, ioid)
        )
        return ev.value

    async def put(
        self,
        name: str,
        value: Any,
        request: str | Mapping[str, Any] | None = None,
        *,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> None:
        """Write ``value`` (a plain value sets ``value``; a dict sets the fields it names)."""

        def put(sid: int, ioid: int, info: PutInitResponse) -> Event:
            return Put(sid, ioid, *build_value(info.type, value, name))

        await self._exchange(name, "put", timeout, request, PutInit, put)

    async def put_get(
        self,
        name: str,
        value: Any,
        request: str | Mapping[str, Any] | None = None,
        *,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> dict[str, Any]:
        """Write ``value`` and return the value the server answers with, in one round trip."""

        def put(sid: int, ioid: int, info: PutGetInitResponse) -> Event:
            return PutGet(sid, ioid, *build_value(info.put_type, value, name))

        return (await self._exchange(name, "put-get", timeout, request, PutGetInit, put)).value

    async def rpc(
        self,
        name: str,
        argument: Any = None,
        request: str | Mapping[str, Any] | None = None,
        *,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> Any:
        """Call an RPC PV; ``argument`` is a typed value (``nt.NTURI.build(...)``) or a dict."""
        arg = None if argument is None else VariantValue.of(argument)  # (a typed value as it is)
        ev = await self._exchange(
            name, "rpc", timeout, request, RPCInit, lambda sid, ioid, _: RPC(sid, ioid, arg)
        )
        return None if ev.result is None else ev.result.value

    async def info(
        self,
        name: str,
        sub_field: str = "",
        *,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> FieldDesc:
        """The PV's type (pvxinfo / get-field)."""
        ev = await self._exchange(
            name, "info", timeout, None, None, lambda sid, ioid, _: GetField(sid, ioid, sub_field)
        )
        return ev.type

    def monitor(
        self,
        name: str,
        request: str | Mapping[str, Any] | None = None,
        *,
        max_queue: int = 1000,
    ) -> Subscription:
        """Subscribe: ``async with client.monitor("x") as sub: async for u in sub: ...``.

        ``request="record[pipeline=true,queueSize=8]"`` asks for flow control (pipelining).
        """
        return Subscription(self, name, make_request(request), max_queue)

    async def connected(self, name: str, timeout: float | None = None) -> bool:  # noqa: ASYNC109
        """Wait until ``name`` is connected (PvaTimeoutError if it is not found in time)."""

        async def body(ch: Channel) -> bool:
            return True

        return await self._run(name, "connect", timeout, body)
