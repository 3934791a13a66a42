"""Monitor subscriptions: :class:`Subscription`, the async iterator of :class:`Update` that
``Client.monitor`` returns.

A subscription belongs to its channel, not to a connection: when the channel reconnects it
subscribes again, so a monitor survives a server restart (the first update after is a full
value). Updates the consumer has not taken wait in a bounded queue that keeps the newest value.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from dataclasses import dataclass
from typing import Any

from reckon.errors import PvaError, PvaRemoteError, PvaTimeoutError
from reckon.pva.client_connection import Channel, Disconnected, Op, Owner
from reckon.pva.config import DEFAULT_TIMEOUT
from reckon.pva.protocol import (
    BitSet,
    DestroyRequest,
    MonitorAck,
    MonitorFinish,
    MonitorInit,
    MonitorInitResponse,
    MonitorStart,
    MonitorUpdate,
    ProtocolError,
    Structure,
    VariantValue,
    request_options,
)
from reckon.pva.selection import truthy
from reckon.pva.stopping import end_tasks


@dataclass
class Update:
    """One monitor update: the full ``value`` and the dotted paths that ``changed``."""

    value: dict[str, Any]
    changed: BitSet
    type: Structure

    @property
    def changed_fields(self) -> list[str]:
        return [self.type.field_at(b)[0] for b in self.changed]


class Subscription:
    """An async iterator of :class:`Update` (use ``async with client.monitor(name) as sub``),
    surviving server restarts (see the module's docstring)."""

    def __init__(
        self, client: Owner, name: str, request: VariantValue | None, max_queue: int
    ) -> None:
        self.client = client
        self.name = name
        self.request = request
        opts = request_options(request)
        self.queue_size = int(opts.get("queueSize", 4)) if truthy(opts.get("pipeline")) else None
        self.max_queue = max(max_queue, self.queue_size or 0)
        self.updates: deque[Update | BaseException | None] = deque()
        self.waiter: asyncio.Future[None] | None = None
        self.type: Structure | None = None
        self._task: asyncio.Task[None] | None = None
        self._channel: Channel | None = None
        self._op: Op | None = None
        self._unacked = 0
        self._closed = False

    async def start(self) -> Subscription:
        ch = self.client.channel(self.name)
        self._channel = ch
        ch.monitors.add(self)
        if ch.connected.is_set():
            self.reconnected()
        return self

    def reconnected(self) -> None:
        if self._closed:
            return
        if self._task is not None and not self._task.done():
            self._task.cancel()
        self._task = self.client.loop.create_task(self._subscribe())

    async def _subscribe(self) -> None:
        ch = self._channel
        assert ch is not None
        conn = ch.conn
        if conn is None:
            return
        ioid = self.client.next_ioid()
        op = Op(ioid)
        conn.ops[ioid] = op
        self._op = op
        loop = self.client.loop
        try:
            conn.send(MonitorInit(ch.sid, ioid, self.request, queue_size=self.queue_size))
            ev = await op.next(loop)
            assert isinstance(ev, MonitorInitResponse)
            if not ev.status.success or ev.type is None:
                self._push(PvaRemoteError(f"monitor {self.name}: {ev.status.message}"))
                return
            self.type = ev.type
            conn.send(MonitorStart(ch.sid, ioid))
            self._unacked = 0
            while True:
                ev = await op.next(loop)
                if isinstance(ev, MonitorUpdate):
                    self._push(Update(ev.value, ev.changed, self.type))
                elif isinstance(ev, MonitorFinish):
                    if not ev.status.success:
                        self._push(PvaRemoteError(f"monitor {self.name}: {ev.status.message}"))
                    self._push(None)
                    return
        except Disconnected:
            return  # the channel searches again and _reconnected restarts us
        finally:
            conn.ops.pop(ioid, None)

    def _push(self, item: Update | BaseException | None) -> None:
        q = self.updates
        last = q[-1] if q else None
        full = self.queue_size is None and len(q) >= self.max_queue  # (pipelined: the window)
        if full and isinstance(item, Update) and isinstance(last, Update):
            q[-1] = Update(item.value, last.changed | item.changed, item.type)
        else:
            q.append(item)
        self._wake()

    def _wake(self) -> None:
        w = self.waiter
        if w is not None and not w.done():
            w.set_result(None)

    def _ack(self) -> None:
        if self.queue_size is None or self._op is None or self._channel is None:
            return
        self._unacked += 1
        if self._unacked >= max(1, self.queue_size // 2):  # (half the queue, as pvxs's client)
            conn = self._channel.conn
            if conn is not None:
                with contextlib.suppress(PvaError, ProtocolError):
                    conn.send(MonitorAck(self._channel.sid, self._op.ioid, self._unacked))
            self._unacked = 0

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> Update:
        while not self.updates:
            if self._closed:
                raise StopAsyncIteration
            self.waiter = self.client.loop.create_future()
            await self.waiter
        item = self.updates.popleft()
        if item is None:
            self._closed = True
            raise StopAsyncIteration
        if isinstance(item, BaseException):
            raise item
        self._ack()
        return item

    async def next(self, timeout: float | None = DEFAULT_TIMEOUT) -> Update:  # noqa: ASYNC109
        """The next update, or PvaTimeoutError."""
        try:
            async with asyncio.timeout(timeout):
                return await self.__anext__()
        except TimeoutError:
            raise PvaTimeoutError(f"monitor {self.name!r}: no update within {timeout}s") from None

    async def close(self) -> None:
        self._closed = True
        if self._channel is not None:
            self._channel.monitors.discard(self)
        await end_tasks([self._task], within=DEFAULT_TIMEOUT)
        ch, op = self._channel, self._op
        if ch is not None and op is not None and ch.conn is not None:
            with contextlib.suppress(PvaError, ProtocolError):
                ch.conn.send(DestroyRequest(ch.sid, op.ioid))
        self._wake()

    async def __aenter__(self) -> Subscription:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
