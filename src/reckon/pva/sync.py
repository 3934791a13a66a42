"""The blocking client: :class:`SyncClient` runs a :class:`~reckon.pva.client.Client` on a
private event loop in a daemon thread, for scripts and REPLs that have no event loop.

Each call hands its coroutine to that loop and waits, so the blocking API keeps everything the
async client does (one connection per server, reconnects, timeouts naming the PV).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import threading
from collections.abc import Callable, Coroutine, Generator
from concurrent.futures import Future as ConcurrentFuture
from typing import Any

from reckon.pva.client import Client
from reckon.pva.config import ClientConfig
from reckon.pva.subscription import Update


def _blocking(method: Callable[..., Coroutine[Any, Any, Any]]) -> Callable[..., Any]:
    """The client's ``method``, blocking: its coroutine runs on the private loop (the
    signature and docstring are the client's)."""

    @functools.wraps(method)
    def call(self: SyncClient, *args: Any, **kw: Any) -> Any:
        return self._call(method(self._client, *args, **kw))

    return call


class SyncClient:
    """A blocking client: a private event loop in a daemon thread runs a :class:`Client`."""

    def __init__(self, config: ClientConfig | None = None, **kw: Any) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, daemon=True, name="reckon-pva-client"
        )
        self._thread.start()
        self._client = Client(config, **kw)
        self._call(self._client.start())

    def _call(self, coro: Any, timeout: float | None = None) -> Any:
        fut: ConcurrentFuture[Any] = asyncio.run_coroutine_threadsafe(coro, self._loop)
        return fut.result(timeout)

    get = _blocking(Client.get)
    put = _blocking(Client.put)
    put_get = _blocking(Client.put_get)
    rpc = _blocking(Client.rpc)
    info = _blocking(Client.info)

    def monitor(
        self, name: str, request: Any = None, *, timeout: float | None = None
    ) -> Generator[Update, None, None]:
        """Blocking iterator of updates; stop with ``break`` (the subscription is closed)."""
        sub = self._client.monitor(name, request)
        self._call(sub.start())
        try:
            while True:
                try:
                    yield self._call(sub.next(timeout))
                except StopAsyncIteration:
                    return
        finally:
            self._call(sub.close())

    def close(self) -> None:
        if self._loop.is_closed():
            return
        with contextlib.suppress(Exception):
            self._call(self._client.close(), timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    def __enter__(self) -> SyncClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
