"""The blocking client: :class:`SyncClient` runs a :class:`~reckon.pva.client.Client` on a
private event loop in a daemon thread, for scripts and REPLs that have no event loop.

Each call hands its coroutine to that loop and waits, so the blocking API keeps everything the
async client does (one connection per server, reconnects, timeouts naming the PV).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Generator
from concurrent.futures import Future as ConcurrentFuture
from typing import Any

from reckon.pva.client import Client
from reckon.pva.config import ClientConfig
from reckon.pva.protocol import FieldDesc
from reckon.pva.subscription import Update


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

    def get(self, name: str, request: Any = None, *, timeout: float | None = None) -> Any:
        return self._call(self._client.get(name, request, timeout=timeout))

    def put(
        self, name: str, value: Any, request: Any = None, *, timeout: float | None = None
    ) -> None:
        self._call(self._client.put(name, value, request, timeout=timeout))

    def put_get(
        self, name: str, value: Any, request: Any = None, *, timeout: float | None = None
    ) -> Any:
        return self._call(self._client.put_get(name, value, request, timeout=timeout))

    def rpc(
        self, name: str, argument: Any = None, request: Any = None, *, timeout: float | None = None
    ) -> Any:
        return self._call(self._client.rpc(name, argument, request, timeout=timeout))

    def info(self, name: str, sub_field: str = "", *, timeout: float | None = None) -> FieldDesc:
        return self._call(self._client.info(name, sub_field, timeout=timeout))

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
