"""The Python client of the introspection server: ``AsyncClient`` for asyncio code, ``Client``
for everything else (it runs an ``AsyncClient`` on a private loop thread).

The shell, ``reckon top``, the benchmark and the tests all use this one client, so what they
see is what any program sees.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import queue as queue_mod
import threading
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus
from websockets.typing import Subprotocol

from reckon.errors import (
    ConfigurationError,
    ObserveAuthError,
    ObserveConnectionError,
    ObserveError,
    ObserveProtocolError,
    ObserveRequestError,
)
from reckon.observe import protocol as p

T = TypeVar("T")
Push = p.EventsPush | p.StatusPush
#: Environment variable naming the server to use when no URL is given (also what starts one,
#: see :func:`reckon.observe.autostart`).
URL_ENV = "RECKON_OBSERVE"
#: Events a subscription holds for a reader that is behind; more are dropped and counted.
CLIENT_QUEUE = 100_000
DEFAULT_ADDRESS = "127.0.0.1:8765"


def resolve_url(url: str | None = None) -> tuple[str, str | None]:
    """The websocket URL for ``url`` and the token its query carries, if any.

    Accepts what people paste: ``http://127.0.0.1:8765/?token=...`` (the web page's address),
    ``ws://127.0.0.1:8765/ws``, ``127.0.0.1:8765`` or ``:8765``. Without ``url``,
    ``$RECKON_OBSERVE``, else ``reckon serve``'s default address, 127.0.0.1:8765.
    """
    if url is None:
        url = os.environ.get(URL_ENV) or DEFAULT_ADDRESS
    raw = url.strip()
    if "://" not in raw:
        raw = "ws://" + (raw if not raw.startswith(":") else "127.0.0.1" + raw)
    parts = urlsplit(raw)
    if parts.scheme not in ("ws", "wss", "http", "https") or not parts.hostname:
        raise ConfigurationError(f"{url!r} is not a server address (e.g. http://127.0.0.1:8765/)")
    try:
        port = parts.port
    except ValueError:
        raise ConfigurationError(f"{url!r} has an invalid port") from None
    if port is None:
        raise ConfigurationError(f"{url!r} has no port (e.g. http://127.0.0.1:8765/)")
    scheme = "wss" if parts.scheme in ("wss", "https") else "ws"
    token = parse_qs(parts.query).get("token", [None])[0]
    host = parts.hostname
    if ":" in host:
        host = f"[{host}]"
    return f"{scheme}://{host}:{port}/ws", token


class AsyncSubscription:
    """Pushes of one subscription: iterate for :class:`~reckon.observe.protocol.EventsPush`
    and :class:`~reckon.observe.protocol.StatusPush` objects, or :meth:`events` for task events
    one by one. ``dropped`` counts events lost for this subscriber (server and client side)."""

    def __init__(self, client: AsyncClient, sub_id: int, maxsize: int = CLIENT_QUEUE) -> None:
        self.client = client
        self.sub_id = sub_id
        self._maxsize = maxsize
        self._items: collections.deque[Push | None] = collections.deque()
        self._queued_events = 0
        self._ready = asyncio.Event()
        self.server_dropped = 0
        self.local_dropped = 0
        self.status: dict[str, Any] | None = None
        self.sink: Callable[[Push | None], None] | None = None
        self.closed = False

    @property
    def dropped(self) -> int:
        return self.server_dropped + self.local_dropped

    def _feed(self, push: Push | None) -> None:
        if isinstance(push, p.EventsPush):
            self.server_dropped = push.dropped
        elif isinstance(push, p.StatusPush):
            self.status = push.status
        if self.sink is not None:
            self.sink(push)
            return
        if isinstance(push, p.EventsPush):
            if self._queued_events + len(push.events) > self._maxsize:
                self.local_dropped += len(push.events)
                return
            self._queued_events += len(push.events)
        self._items.append(push)
        self._ready.set()

    def __aiter__(self) -> AsyncSubscription:
        return self

    async def __anext__(self) -> Push:
        while not self._items:
            if self.closed:
                raise StopAsyncIteration
            self._ready.clear()
            await self._ready.wait()
        item = self._items.popleft()
        if item is None:
            self.closed = True
            raise StopAsyncIteration
        if isinstance(item, p.EventsPush):
            self._queued_events -= len(item.events)
        return item

    async def events(self) -> AsyncIterator[dict[str, Any]]:
        """Task events (``{"seq", "task"}``) one by one, oldest first."""
        async for push in self:
            if isinstance(push, p.EventsPush):
                for event in push.events:
                    yield event

    async def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self._items.append(None)
        self._ready.set()
        self.client._subs.pop(self.sub_id, None)
        with contextlib.suppress(ObserveError):
            await self.client.request("unsubscribe", sub=self.sub_id)


class AsyncClient:
    """A connection to an introspection server, for asyncio code.

    ``async with AsyncClient(url) as client: await client.status()``. Requests may run
    concurrently; each waits for its own reply. Server errors raise
    :class:`~reckon.errors.ObserveRequestError` (``code`` says which), a refused token
    :class:`~reckon.errors.ObserveAuthError`, a lost server
    :class:`~reckon.errors.ObserveConnectionError`.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        token: str | None = None,
        timeout: float = 10.0,
        name: str = "python",
    ) -> None:
        self.ws_url, url_token = resolve_url(url)
        self.token = token if token is not None else url_token
        if self.token is None:
            self.token = os.environ.get("RECKON_OBSERVE_TOKEN") or None
        self.timeout = timeout
        self.name = name
        self.server_info: dict[str, Any] = {}
        self._ws: ClientConnection | None = None
        self._reader: asyncio.Task[None] | None = None
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._subs: dict[int, AsyncSubscription] = {}
        self._next_id = 0
        self._closed_error: ObserveError | None = None
        self._orphans: dict[int, list[Push]] = {}
        self._last_sub = 0

    # -- connection ----------------------------------------------------------------------------

    async def connect(self) -> AsyncClient:
        try:
            self._ws = await ws_connect(
                self.ws_url,
                subprotocols=[Subprotocol(p.SUBPROTOCOL_MSGPACK)],
                compression=None,
                max_size=64 << 20,
                open_timeout=self.timeout,
                proxy=None,
            )
        except InvalidStatus as exc:
            status = exc.response.status_code
            if status in (401, 403):
                raise ObserveAuthError(f"{self.ws_url} refused the connection ({status})") from exc
            raise ObserveConnectionError(f"{self.ws_url}: HTTP {status}") from exc
        except (OSError, InvalidHandshake, TimeoutError) as exc:
            raise ObserveConnectionError(
                f"cannot reach the reckon observe server at {self.ws_url}: {exc}; is it running "
                f"(reckon serve, or RECKON_OBSERVE=127.0.0.1:PORT in the observed program)?"
            ) from exc
        self._reader = asyncio.get_running_loop().create_task(self._read())
        body: dict[str, Any] = {"client": self.name, "versions": list(p.SUPPORTED_VERSIONS)}
        if self.token:
            body["token"] = self.token
        try:
            self.server_info = await self.request("hello", **body)
        except BaseException:
            await self.close()
            raise
        return self

    async def __aenter__(self) -> AsyncClient:
        return await self.connect()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._ws is not None:
            await self._ws.close()
        if self._reader is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader

    async def _read(self) -> None:
        assert self._ws is not None
        ws = self._ws
        error: ObserveError
        try:
            async for frame in ws:
                try:
                    msg = p.decode_server_message(frame)
                except ObserveProtocolError:
                    continue  # a newer server's message we do not know: skip it
                if isinstance(msg, p.Result):
                    fut = self._pending.pop(msg.id, None)
                    if fut is not None and not fut.done():
                        fut.set_result(msg.result)
                elif isinstance(msg, p.Error):
                    fut = self._pending.pop(msg.id, None)
                    if fut is not None and not fut.done():
                        fut.set_exception(_error_for(msg, self.ws_url))
                else:
                    sub = self._subs.get(msg.sub)
                    if sub is not None:
                        sub._feed(msg)
                    elif msg.sub > self._last_sub:
                        # The subscribe reply is in flight: keep the push for it, briefly.
                        parked = self._orphans.setdefault(msg.sub, [])
                        if len(parked) < 64:
                            parked.append(msg)
            error = ObserveConnectionError(f"the server at {self.ws_url} closed the connection")
        except ConnectionClosed as exc:
            error = ObserveConnectionError(f"lost the server at {self.ws_url}: {exc}")
        if ws.close_code == p.CLOSE_POLICY:
            error = ObserveAuthError(_refused(self.ws_url, ws.close_reason or "policy violation"))
        self._closed_error = error
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(error)
        self._pending.clear()
        for sub in list(self._subs.values()):
            sub._feed(None)

    async def request(self, kind: str, **body: Any) -> Any:
        """Send one request and wait for its result (the protocol's raw form)."""
        if self._closed_error is not None:
            raise self._closed_error
        if self._ws is None:
            raise ObserveConnectionError("not connected: use 'async with AsyncClient(url)'")
        self._next_id += 1
        rid = self._next_id
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[rid] = fut
        try:
            await self._ws.send(p.encode_request(p.Request(rid, kind, body)))
        except ConnectionClosed:
            self._pending.pop(rid, None)
            if self._reader is not None:  # let it record why (a refused token, say)
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(asyncio.shield(self._reader), self.timeout)
            raise self._closed_error or ObserveConnectionError(
                f"lost the server at {self.ws_url}"
            ) from None
        try:
            return await asyncio.wait_for(fut, self.timeout)
        except TimeoutError:
            self._pending.pop(rid, None)
            raise ObserveConnectionError(
                f"{kind}: no reply from {self.ws_url} within {self.timeout}s"
            ) from None

    # -- the message set -------------------------------------------------------------------------

    async def ping(self) -> float:
        return float((await self.request("ping"))["time"])

    async def status(self, history: bool = False) -> dict[str, Any]:
        """The engine's counters and usage; with ``history``, also the server's samples of the
        last minutes (``result["history"]``, one a second, oldest first)."""
        body = {"history": True} if history else {}
        result: dict[str, Any] = await self.request("status", **body)
        return result

    async def tasks(
        self, state: str | None = None, title: str | None = None, limit: int | None = None
    ) -> list[dict[str, Any]]:
        body: dict[str, Any] = {}
        if state is not None:
            body["state"] = str(getattr(state, "value", state))
        if title is not None:
            body["title"] = title
        if limit is not None:
            body["limit"] = limit
        result: list[dict[str, Any]] = await self.request("tasks", **body)
        return result

    async def task(self, task_id: int) -> dict[str, Any]:
        """``{"task": record, "children": [subtrees...]}``."""
        result: dict[str, Any] = await self.request("task", task_id=task_id)
        return result

    async def subscribe(
        self,
        *,
        events: bool = True,
        title: str | None = None,
        status_interval: float | None = None,
        queue: int | None = None,
        coalesce: bool = False,
        sink: Callable[[Push | None], None] | None = None,
    ) -> AsyncSubscription:
        """Start receiving pushes; ``sink`` (called in this loop) replaces the buffer."""
        body: dict[str, Any] = {"events": events}
        if title is not None:
            body["title"] = title
        if status_interval is not None:
            body["status_interval"] = status_interval
        if queue is not None:
            body["queue"] = queue
        if coalesce:
            body["coalesce"] = True
        sub = AsyncSubscription(self, 0)
        sub.sink = sink
        result = await self.request("subscribe", **body)
        sub.sub_id = int(result["sub"])
        self._last_sub = max(self._last_sub, sub.sub_id)
        self._subs[sub.sub_id] = sub
        # Pushes that overtook the reply were parked by the reader.
        for push in self._orphans.pop(sub.sub_id, []):
            sub._feed(push)
        return sub

    async def capture(self, enabled: bool | None = None) -> bool:
        """Turn capture on or off (``None``: only ask); returns the state now."""
        body = {} if enabled is None else {"enabled": enabled}
        return bool((await self.request("capture", **body))["enabled"])

    async def clear_history(self) -> None:
        await self.request("clear_history")

    async def clear_cache(self, level: str | int = "memory") -> None:
        """``"memory"``: the memory tier; ``"full"``: memory tier and store."""
        await self.request(
            "clear_cache", level=str(level).lower() if isinstance(level, str) else int(level)
        )

    async def cancel(self, task_id: int) -> bool:
        """Cancel a running computation; False when it was not running."""
        return bool((await self.request("cancel", task_id=task_id))["cancelled"])


def _error_for(msg: p.Error, ws_url: str) -> ObserveError:
    if msg.code == p.E_UNAUTHORIZED:
        return ObserveAuthError(_refused(ws_url, msg.message))
    return ObserveRequestError(msg.message, msg.code)


def _refused(ws_url: str, why: str) -> str:
    """What to say about a refused token: the server's reason and how to present the right one."""
    return (
        f"{ws_url} refused the token ({why}); give the URL reckon serve printed (it carries "
        "?token=...), or --token / token=..., or set RECKON_OBSERVE_TOKEN"
    )


class Subscription:
    """A subscription seen from sync code: iterate for pushes, or :meth:`events`."""

    def __init__(self, client: Client, maxsize: int = CLIENT_QUEUE) -> None:
        self._client = client
        self._inner: AsyncSubscription | None = None
        self._queue: queue_mod.Queue[Push | None] = queue_mod.Queue()
        self._maxsize = maxsize
        self._queued = 0
        self.local_dropped = 0
        self._lock = threading.Lock()
        self.closed = False

    @property
    def sub_id(self) -> int:
        return self._inner.sub_id if self._inner else 0

    @property
    def dropped(self) -> int:
        return (self._inner.server_dropped if self._inner else 0) + self.local_dropped

    @property
    def status(self) -> dict[str, Any] | None:
        return self._inner.status if self._inner else None

    def _sink(self, push: Push | None) -> None:
        if isinstance(push, p.EventsPush):
            with self._lock:
                if self._queued + len(push.events) > self._maxsize:
                    self.local_dropped += len(push.events)
                    return
                self._queued += len(push.events)
        self._queue.put(push)

    def get(self, timeout: float | None = None) -> Push | None:
        """The next push, or None after ``timeout`` seconds or once the subscription ended."""
        if self.closed:
            return None
        try:
            item = self._queue.get(timeout=timeout)
        except queue_mod.Empty:
            return None
        if item is None:
            self.closed = True
            return None
        if isinstance(item, p.EventsPush):
            with self._lock:
                self._queued -= len(item.events)
        return item

    def __iter__(self) -> Iterator[Push]:
        while True:
            item = self.get()
            if item is None:
                return
            yield item

    def events(self, timeout: float | None = None) -> Iterator[dict[str, Any]]:
        """Task events one by one; stops after ``timeout`` seconds without one."""
        while True:
            item = self.get(timeout)
            if item is None:
                return
            if isinstance(item, p.EventsPush):
                yield from item.events

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._queue.put(None)
            if self._inner is not None:
                with contextlib.suppress(ObserveError):
                    self._client._run(self._inner.close())

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Client:
    """A connection to an introspection server, for sync code (thread-safe).

    ``with Client("http://127.0.0.1:8765/") as client: client.tasks()``. The methods mirror
    :class:`AsyncClient`'s.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        token: str | None = None,
        timeout: float = 10.0,
        name: str = "python",
    ) -> None:
        self._aio = AsyncClient(url, token=token, timeout=timeout, name=name)
        self.timeout = timeout
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="reckon-observe-client", daemon=True
        )
        self._thread.start()
        try:
            self._run(self._aio.connect())
        except BaseException:
            self._shutdown()
            raise

    @property
    def ws_url(self) -> str:
        return self._aio.ws_url

    @property
    def server_info(self) -> dict[str, Any]:
        return self._aio.server_info

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        if not self._thread.is_alive():
            coro.close()
            raise ObserveConnectionError("the client is closed")
        fut = asyncio.run_coroutine_threadsafe(coro, self._loop)
        return fut.result(self.timeout * 2 + 5)

    def request(self, kind: str, **body: Any) -> Any:
        return self._run(self._aio.request(kind, **body))

    def ping(self) -> float:
        return self._run(self._aio.ping())

    def status(self, history: bool = False) -> dict[str, Any]:
        """See :meth:`AsyncClient.status`."""
        return self._run(self._aio.status(history))

    def tasks(
        self, state: str | None = None, title: str | None = None, limit: int | None = None
    ) -> list[dict[str, Any]]:
        return self._run(self._aio.tasks(state, title, limit))

    def task(self, task_id: int) -> dict[str, Any]:
        return self._run(self._aio.task(task_id))

    def subscribe(
        self,
        *,
        events: bool = True,
        title: str | None = None,
        status_interval: float | None = None,
        queue: int | None = None,
        coalesce: bool = False,
    ) -> Subscription:
        sub = Subscription(self)
        sub._inner = self._run(
            self._aio.subscribe(
                events=events,
                title=title,
                status_interval=status_interval,
                queue=queue,
                coalesce=coalesce,
                sink=sub._sink,
            )
        )
        return sub

    def capture(self, enabled: bool | None = None) -> bool:
        return self._run(self._aio.capture(enabled))

    def clear_history(self) -> None:
        self._run(self._aio.clear_history())

    def clear_cache(self, level: str | int = "memory") -> None:
        self._run(self._aio.clear_cache(level))

    def cancel(self, task_id: int) -> bool:
        return self._run(self._aio.cancel(task_id))

    def _shutdown(self) -> None:
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
        if not self._loop.is_running() and not self._loop.is_closed():
            self._loop.close()

    def close(self) -> None:
        if self._thread.is_alive():
            with contextlib.suppress(Exception):
                self._run(self._aio.close())
        self._shutdown()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<reckon observe client {self.ws_url}>"
