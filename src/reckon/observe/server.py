"""The introspection server: one port, the websocket API and the web page over plain HTTP.

The server is a thin asyncio layer over :mod:`reckon.observe.protocol`: each frame is decoded
and validated there, dispatched to the engine here, and answered. A bad peer gets error replies
and, at worst, a closed connection; the server and the engine never notice.

The engine is never slowed by a client. Task events reach a subscription through a bounded
queue filled by an introspector listener that only appends and, once per batch, wakes the
server's loop; a subscriber that reads too slowly loses events (counted and reported to it in
every push), never blocks a computation.

What clients can make the server hold is bounded (:class:`Limits`): connections, subscriptions
per connection and in all, and the bytes their event queues may hold, per connection and in all.
A subscription's queue is granted out of those byte budgets when it is made (its reply says how
many events it got) and returned when it ends, so the defaults hold the server under ~100 MB
whatever its clients ask.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from http import HTTPStatus
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import Server, ServerConnection
from websockets.asyncio.server import serve as ws_serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request as HttpRequest
from websockets.http11 import Response as HttpResponse
from websockets.typing import Subprotocol

from reckon.errors import ConfigurationError, ObserveError
from reckon.observe import protocol as p
from reckon.observe.pages import PageFiles, origin_allowed, server_token, token_matches

if TYPE_CHECKING:
    from reckon.core import Engine, TaskEvent

log = logging.getLogger("reckon.observe")

WEB_DIR = Path(__file__).with_name("web")
#: Frames above this are refused by the websocket layer itself (connection closed, code 1009);
#: frames between ``MAX_REQUEST_BYTES`` and this get an error reply and the connection stays.
HARD_FRAME_LIMIT = 4 * p.MAX_REQUEST_BYTES
#: Frames a connection may have received and not yet handled (websockets' ``max_queue``).
INCOMING_FRAMES = 4
#: Events per push frame: large enough to amortise framing, small enough to keep frames small.
EVENTS_PER_FRAME = 2_000
#: Seconds a subscription lets events gather between two pushes (the latency it adds).
PUSH_INTERVAL = 0.02
DEFAULT_QUEUE = 10_000
#: The status history the server keeps for charts: one sample a second, the last three minutes.
HISTORY_INTERVAL = 1.0
HISTORY_POINTS = 180
#: What one queued task event holds, counted generously: a record snapshot measures 500-800
#: bytes with its share of the engine's own bookkeeping (tests/observe measures it).
EVENT_BYTES = 1024
MiB = 1 << 20


@dataclass(frozen=True)
class Limits:
    """What clients can make one server hold. Each limit reached is an error reply naming it
    (code ``limit``), or for connections an HTTP 503, never a slower engine.

    With the defaults the server holds at most 40 MiB of queued events, 16 MiB of received
    frames (16 connections x 4 frames x 256 KiB) and one push frame per subscription being
    written (32 x ~0.5 MiB): under 100 MB, whatever queue sizes and numbers clients ask for.
    """

    connections: int = 16
    subscriptions_per_connection: int = 4
    subscriptions: int = 32
    queued_bytes_per_connection: int = 16 * MiB
    queued_bytes: int = 40 * MiB

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigurationError(f"Limits.{name}={value!r}: give a positive integer")


def _version() -> str:
    try:
        from reckon import __version__

        return __version__
    except ImportError:  # pragma: no cover - reckon always has one
        return "unknown"


class _EventQueue:
    """Bounded, thread-safe hand-off of task events from the engine's threads to one loop.

    The producer side (called by the introspector, in whatever thread computes) is an append
    and, only when the consumer is idle, one ``call_soon_threadsafe``: a burst of events costs
    one wake-up. Full means the event is dropped and counted.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, maxsize: int) -> None:
        self._loop = loop
        self._maxsize = maxsize
        self._items: collections.deque[TaskEvent] = collections.deque()
        self._ready = asyncio.Event()
        self._wake_pending = False
        self.dropped = 0
        self.closed = False

    def put(self, event: TaskEvent) -> None:
        if len(self._items) >= self._maxsize:
            self.dropped += 1
            return
        self._items.append(event)
        if not self._wake_pending:
            self._wake_pending = True
            try:
                self._loop.call_soon_threadsafe(self._ready.set)
            except RuntimeError:  # loop closed: the subscription is going away
                self.closed = True

    async def get_batch(self, limit: int) -> list[TaskEvent]:
        while not self._items:
            await self._ready.wait()
            # Clear the flag before draining so that an event appended during the drain
            # schedules a fresh wake-up instead of being stranded.
            self._ready.clear()
            self._wake_pending = False
        out: list[TaskEvent] = []
        items = self._items
        while items and len(out) < limit:
            out.append(items.popleft())
        return out


class _Subscription:
    def __init__(
        self,
        sub_id: int,
        queue: _EventQueue | None,
        title: str | None,
        coalesce: bool = False,
        reserved: int = 0,
    ) -> None:
        self.sub_id = sub_id
        self.queue = queue
        self.reserved = reserved  # bytes of the server's queue budget this subscription holds
        self.title = title
        self.coalesce = coalesce
        self.remove_listener: Callable[[], None] | None = None
        self.tasks: list[asyncio.Task[None]] = []

    @property
    def dropped(self) -> int:
        return self.queue.dropped if self.queue is not None else 0

    def close(self) -> None:
        if self.remove_listener is not None:
            self.remove_listener()
            self.remove_listener = None
        for task in self.tasks:
            task.cancel()


def _record_dict(record: Any) -> dict[str, Any]:
    d: dict[str, Any] = record.to_dict()
    return d


def _event_dict(event: TaskEvent) -> dict[str, Any]:
    return {"seq": event.seq, "task": _record_dict(event.record)}


class ObserveServer:
    """Serves one engine's introspection on one port (websocket API at ``/ws``, web page at
    ``/``). Start it with :func:`serve_async` (in a running loop) or :func:`serve` (a thread)."""

    def __init__(
        self,
        engine: Engine,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        token: str | None = None,
        require_token: bool | None = None,
        max_request_bytes: int = p.MAX_REQUEST_BYTES,
        queue_size: int = DEFAULT_QUEUE,
        limits: Limits | None = None,
    ) -> None:
        self.engine = engine
        self.limits = limits or Limits()
        self.host = host
        self._requested_port = port
        self.token = server_token(host, token, require_token, "the engine")
        self.require_token = self.token is not None
        self.max_request_bytes = max_request_bytes
        self.queue_size = queue_size
        self._server: Server | None = None
        self._connections: set[ServerConnection] = set()
        self._sub_ids = 0
        self._subscriptions = 0  # held by every connection together
        self._reserved_bytes = 0  # queue bytes granted to every subscription together
        self._history: collections.deque[dict[str, Any]] = collections.deque(maxlen=HISTORY_POINTS)
        self._sampler: asyncio.Task[None] | None = None
        self.started_at = time.time()

    # -- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        self._page = PageFiles(WEB_DIR)
        try:
            self._server = await ws_serve(
                self._handle,
                self.host,
                self._requested_port,
                process_request=self._process_request,
                subprotocols=[Subprotocol(s) for s in p.SUBPROTOCOLS],
                select_subprotocol=self._select_subprotocol,
                max_size=HARD_FRAME_LIMIT,
                max_queue=INCOMING_FRAMES,
                compression=None,
                server_header=f"reckon-observe/{_version()}",
                logger=log,
            )
        except OSError as exc:
            raise ObserveError(
                f"cannot listen on {self.host}:{self._requested_port}: {exc}; "
                "choose another port (0 picks a free one)"
            ) from exc
        self._sampler = asyncio.get_running_loop().create_task(self._sample_history())
        log.info("reckon observe serving %s", self.url)

    async def stop(self) -> None:
        if self._server is None:
            return
        if self._sampler is not None:
            self._sampler.cancel()
            self._sampler = None
        server, self._server = self._server, None
        server.close()
        # A browser may hold an idle HTTP connection open; do not wait on it for long.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(server.wait_closed(), 2.0)

    @property
    def port(self) -> int:
        if self._server is None:
            return self._requested_port
        for sock in self._server.sockets:
            port: int = sock.getsockname()[1]
            return port
        return self._requested_port

    @property
    def url(self) -> str:
        """The web page (with the token in its query when one is required)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        base = f"http://{host}:{self.port}/"
        return f"{base}?token={self.token}" if self.token else base

    @property
    def ws_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"ws://{host}:{self.port}/ws"

    # -- HTTP ----------------------------------------------------------------------------------

    def _select_subprotocol(self, connection: ServerConnection, offered: Any) -> Subprotocol | None:
        for name in p.SUBPROTOCOLS:
            if name in offered:
                return Subprotocol(name)
        return None  # no subprotocol: msgpack, the default

    def _origin_allowed(self, origin: str | None) -> bool:
        """Only our own page may drive the API from a browser, so a web site the user happens
        to visit cannot cancel their computations."""
        return origin_allowed(origin, self.host, self.port)

    def _process_request(
        self, connection: ServerConnection, request: HttpRequest
    ) -> HttpResponse | None:
        if request.headers.get("Upgrade", "").lower() == "websocket":
            if not self._origin_allowed(request.headers.get("Origin")):
                return connection.respond(HTTPStatus.FORBIDDEN, "origin not allowed\n")
            if len(self._connections) >= self.limits.connections:
                return connection.respond(
                    HTTPStatus.SERVICE_UNAVAILABLE,
                    f"too many connections (limit {self.limits.connections}); close one, or "
                    "serve with a larger Limits(connections=...)\n",
                )
            return None
        return self._page.respond(connection, urlsplit(request.path).path)

    # -- websocket -----------------------------------------------------------------------------

    def _token_ok(self, presented: object) -> bool:
        if not self.require_token:
            return True
        return self.token is not None and token_matches(self.token, presented)

    async def _handle(self, conn: ServerConnection) -> None:
        codec: p.Codec = "json" if conn.subprotocol == p.SUBPROTOCOL_JSON else "msgpack"
        subs: dict[int, _Subscription] = {}
        authed = not self.require_token
        query = parse_qs(urlsplit(conn.request.path if conn.request else "").query)
        if self.require_token and "token" in query:
            if not self._token_ok(query["token"][0]):
                await conn.close(p.CLOSE_POLICY, "invalid token")
                return
            authed = True
        self._connections.add(conn)
        try:
            async for frame in conn:
                try:
                    request = p.decode_request(frame, max_bytes=self.max_request_bytes)
                except p.ProtocolViolation as exc:
                    rid = 0
                    if exc.code not in (p.E_TOO_LARGE, p.E_MALFORMED):
                        with contextlib.suppress(p.ProtocolViolation):
                            rid = p.peek_id(p.loads(frame))
                    await conn.send(p.encode_error(rid, exc.code, str(exc), codec))
                    continue
                except Exception as exc:  # a validator bug must not cost the peer its session
                    log.exception("observe: could not validate a request")
                    await conn.send(
                        p.encode_error(0, p.E_BAD_REQUEST, f"{type(exc).__name__}: {exc}", codec)
                    )
                    continue
                if not authed:
                    if request.type == "hello" and self._token_ok(request.body.get("token")):
                        authed = True
                    else:
                        msg = "invalid token" if request.type == "hello" else "token required"
                        await conn.send(p.encode_error(request.id, p.E_UNAUTHORIZED, msg, codec))
                        await conn.close(p.CLOSE_POLICY, msg)
                        return
                try:
                    result = await self._dispatch(request, conn, codec, subs)
                except p.ProtocolViolation as exc:
                    await conn.send(p.encode_error(request.id, exc.code, str(exc), codec))
                except Exception as exc:  # the engine failed: report it, keep serving
                    log.exception("observe: %s request failed", request.type)
                    await conn.send(
                        p.encode_error(
                            request.id, p.E_INTERNAL, f"{type(exc).__name__}: {exc}", codec
                        )
                    )
                else:
                    await conn.send(p.encode_result(request.id, result, codec))
        except ConnectionClosed:
            pass
        finally:
            self._connections.discard(conn)
            for sub in subs.values():
                self._close(sub)

    async def _dispatch(
        self,
        req: p.Request,
        conn: ServerConnection,
        codec: p.Codec,
        subs: dict[int, _Subscription],
    ) -> Any:
        engine = self.engine
        body = req.body
        kind = req.type
        if kind == "hello":
            return {
                "protocol": p.negotiate(body.get("versions")),
                "versions": list(p.SUPPORTED_VERSIONS),
                "server": f"reckon/{_version()}",
                "engine": str(getattr(engine, "name", "default")),
                "codec": codec,
                "capture": bool(engine.introspector.capture),
                "token_required": self.require_token,
            }
        if kind == "ping":
            return {"time": time.time()}
        if kind == "status":
            status = await self._status(subs)
            if body.get("history"):
                status["history"] = list(self._history)
            return status
        if kind == "tasks":
            from reckon.core import TaskState

            state = TaskState(body["state"]) if body.get("state") else None
            limit = body.get("limit")
            records = engine.introspector.tasks(
                state=state, title=body.get("title"), limit=200 if limit is None else limit
            )
            return [_record_dict(r) for r in records]
        if kind == "task":
            return self._tree(body["task_id"])
        if kind == "subscribe":
            return self._subscribe(body, conn, codec, subs)
        if kind == "unsubscribe":
            sub = subs.pop(body["sub"], None)
            if sub is None:
                raise p.ProtocolViolation(p.E_NOT_FOUND, f"no subscription {body['sub']}")
            self._close(sub)
            return {"sub": sub.sub_id, "dropped": sub.dropped}
        if kind == "capture":
            if body.get("enabled") is not None:
                engine.introspector.capture = bool(body["enabled"])
            return {"enabled": bool(engine.introspector.capture)}
        if kind == "clear_history":
            engine.introspector.clear_history()
            return {"cleared": True}
        if kind == "clear_cache":
            from reckon.core import CachingLevel

            level = CachingLevel(p.cache_level_value(body["level"]))
            await asyncio.to_thread(engine.clear, level)
            return {"cleared": level.name.lower()}
        if kind == "cancel":
            cancelled = await asyncio.to_thread(engine.cancel, body["task_id"])
            return {"task_id": body["task_id"], "cancelled": bool(cancelled)}
        raise p.ProtocolViolation(p.E_UNKNOWN_TYPE, f"unknown message type {kind!r}")

    async def _status(self, subs: dict[int, _Subscription]) -> dict[str, Any]:
        engine = self.engine
        stats = await asyncio.to_thread(engine.stats)
        intro = engine.introspector
        return {
            "time": time.time(),
            "engine": stats,
            "capture": bool(intro.capture),
            "counters": intro.counters(),
            "live": len(intro.live()),
            "server": {
                "uptime": time.time() - self.started_at,
                "connections": len(self._connections),
                "subscriptions": {str(s.sub_id): {"dropped": s.dropped} for s in subs.values()},
                "queued_bytes_reserved": self._reserved_bytes,
                "limits": asdict(self.limits),
            },
        }

    async def _sample_history(self) -> None:
        """Keep the engine's counters and usage once a second, so a page opened later can draw
        the last minutes instead of starting empty (what ``status`` with history=true returns)."""
        while True:
            try:
                stats = await asyncio.to_thread(self.engine.stats)
            except asyncio.CancelledError:
                raise
            except Exception:  # a closed engine or a failing store: try again next time
                log.debug("observe: no status sample", exc_info=True)
            else:
                self._history.append(
                    {
                        "time": time.time(),
                        "engine": {k: stats.get(k) for k in ("counters", "memory", "store")},
                    }
                )
            await asyncio.sleep(HISTORY_INTERVAL)

    def _tree(self, task_id: int) -> dict[str, Any]:
        intro = self.engine.introspector
        root = intro.task(task_id)
        if root is None:
            raise p.ProtocolViolation(
                p.E_NOT_FOUND, f"no task {task_id} (finished tasks leave history when it is full)"
            )
        # One pass over the records builds the parent index (asking the introspector for the
        # children of every node would rescan its whole history per node).
        by_parent: dict[int, list[Any]] = {}
        for record in intro.tasks():
            if record.parent is not None:
                by_parent.setdefault(record.parent, []).append(record)
        budget = p.MAX_TREE_NODES - 1
        seen = {root.task_id}
        tree: dict[str, Any] = {"task": _record_dict(root), "children": []}
        frontier = [(root, tree)]
        while frontier and budget > 0:  # breadth first: a cut tree keeps its upper levels
            nxt = []
            for record, out in frontier:
                for child in sorted(by_parent.get(record.task_id, ()), key=lambda r: r.task_id):
                    if budget <= 0:
                        break
                    if child.task_id in seen:
                        continue
                    seen.add(child.task_id)
                    budget -= 1
                    node: dict[str, Any] = {"task": _record_dict(child), "children": []}
                    out["children"].append(node)
                    nxt.append((child, node))
            frontier = nxt
        return tree

    def _subscribe(
        self,
        body: dict[str, Any],
        conn: ServerConnection,
        codec: p.Codec,
        subs: dict[int, _Subscription],
    ) -> dict[str, Any]:
        limits = self.limits
        if len(subs) >= limits.subscriptions_per_connection:
            raise p.ProtocolViolation(
                p.E_LIMIT,
                f"this connection holds {len(subs)} subscriptions, the limit per connection; "
                "unsubscribe one first",
            )
        if self._subscriptions >= limits.subscriptions:
            raise p.ProtocolViolation(
                p.E_LIMIT,
                f"the server holds {self._subscriptions} subscriptions, its limit; try later",
            )
        want_events = body.get("events", True)
        reserved = 0
        granted = 0
        if want_events:
            # The queue is granted out of the byte budgets, up to what was asked for.
            asked = body.get("queue") or self.queue_size
            left = min(
                limits.queued_bytes_per_connection - sum(s.reserved for s in subs.values()),
                limits.queued_bytes - self._reserved_bytes,
            )
            granted = min(asked, left // EVENT_BYTES)
            if granted < 1:
                raise p.ProtocolViolation(
                    p.E_LIMIT,
                    "no room left to queue events (the queued-bytes limit is reached); "
                    "unsubscribe, or subscribe with events=false",
                )
            reserved = granted * EVENT_BYTES
        self._sub_ids += 1
        sub_id = self._sub_ids
        loop = asyncio.get_running_loop()
        queue = _EventQueue(loop, granted) if want_events else None
        sub = _Subscription(
            sub_id, queue, body.get("title"), bool(body.get("coalesce")), reserved=reserved
        )
        self._subscriptions += 1
        self._reserved_bytes += reserved
        if queue is not None:
            sub.remove_listener = self.engine.introspector.add_listener(queue.put)
            sub.tasks.append(loop.create_task(self._pump_events(sub, queue, conn, codec)))
        interval = body.get("status_interval")
        if interval:
            sub.tasks.append(loop.create_task(self._pump_status(sub, float(interval), conn, codec)))
        subs[sub_id] = sub
        return {
            "sub": sub_id,
            "events": want_events,
            "queue": granted,
            "status_interval": interval,
            "coalesce": sub.coalesce,
        }

    def _close(self, sub: _Subscription) -> None:
        """End a subscription and give its share of the budgets back."""
        sub.close()
        self._subscriptions -= 1
        self._reserved_bytes -= sub.reserved
        sub.reserved = 0

    async def _pump_events(
        self, sub: _Subscription, queue: _EventQueue, conn: ServerConnection, codec: p.Codec
    ) -> None:
        title = sub.title
        reported = 0
        try:
            while True:
                batch = await queue.get_batch(EVENTS_PER_FRAME)
                if title:
                    batch = [e for e in batch if title in e.record.title]
                if sub.coalesce and len(batch) > 1:
                    latest = {e.record.task_id: e for e in batch}
                    batch = sorted(latest.values(), key=lambda e: e.seq)
                dropped = queue.dropped
                if not batch and dropped == reported:
                    continue
                reported = dropped
                await conn.send(
                    p.encode_events(sub.sub_id, [_event_dict(e) for e in batch], dropped, codec)
                )
                if len(batch) < EVENTS_PER_FRAME:
                    # Let events gather: one wake-up and one frame per interval instead of one
                    # per event keeps the observed program's threads from fighting this one
                    # for the GIL. A full batch means we are behind: go straight on.
                    await asyncio.sleep(PUSH_INTERVAL)
        except ConnectionClosed:
            pass
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("observe: event push failed; subscription %d stopped", sub.sub_id)

    async def _pump_status(
        self, sub: _Subscription, interval: float, conn: ServerConnection, codec: p.Codec
    ) -> None:
        try:
            while True:
                status = await self._status({sub.sub_id: sub})
                await conn.send(p.encode_status(sub.sub_id, status, codec))
                await asyncio.sleep(interval)
        except ConnectionClosed:
            pass
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("observe: status push failed; subscription %d stopped", sub.sub_id)


async def serve_async(
    engine: Engine,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    token: str | None = None,
    require_token: bool | None = None,
    **options: Any,
) -> ObserveServer:
    """Start serving ``engine`` in the running loop; ``await server.stop()`` ends it.

    A bind other than loopback requires a token: ``token``, else ``$RECKON_OBSERVE_TOKEN``, else
    a generated one (``server.token``; ``server.url`` carries it for the web page).
    ``require_token=True`` forces token mode on loopback too.
    """
    server = ObserveServer(engine, host, port, token=token, require_token=require_token, **options)
    await server.start()
    return server


class ServerHandle:
    """A server running in its own daemon thread and loop (see :func:`serve`)."""

    def __init__(
        self, server: ObserveServer, loop: asyncio.AbstractEventLoop, thread: threading.Thread
    ) -> None:
        self.server = server
        self._loop = loop
        self._thread = thread

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def ws_url(self) -> str:
        return self.server.ws_url

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def host(self) -> str:
        return self.server.host

    @property
    def token(self) -> str | None:
        return self.server.token

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def stop(self, timeout: float = 10.0) -> None:
        """Close the port and every connection, then end the thread. Idempotent."""
        if not self._thread.is_alive():
            return
        fut = asyncio.run_coroutine_threadsafe(self.server.stop(), self._loop)
        with contextlib.suppress(Exception):
            fut.result(timeout)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout)

    def __enter__(self) -> ServerHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<reckon observe server {self.url}>"


def serve(
    engine: Engine,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    token: str | None = None,
    require_token: bool | None = None,
    **options: Any,
) -> ServerHandle:
    """Serve ``engine`` from a daemon thread with its own event loop, for sync programs.

    Returns once the port is listening (``handle.url``, ``handle.port``); ``handle.stop()`` ends
    it. Raises :class:`ObserveError` when the port cannot be bound.
    """
    if not isinstance(port, int) or not 0 <= port <= 65535:
        raise ConfigurationError(f"port {port!r} is not a TCP port (0..65535; 0 picks a free one)")
    server = ObserveServer(engine, host, port, token=token, require_token=require_token, **options)
    loop = asyncio.new_event_loop()
    started = threading.Event()
    failure: list[BaseException] = []

    def run() -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(server.start())
        except BaseException as exc:
            failure.append(exc)
            started.set()
            loop.close()
            return
        started.set()
        try:
            loop.run_forever()
        finally:
            with contextlib.suppress(Exception):
                loop.run_until_complete(server.stop())
            pending = asyncio.all_tasks(loop)
            for task in pending:
                task.cancel()
            with contextlib.suppress(Exception):
                loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.close()

    thread = threading.Thread(target=run, name=f"reckon-observe:{port}", daemon=True)
    thread.start()
    started.wait()
    if failure:
        raise failure[0]
    return ServerHandle(server, loop, thread)
