"""The serving side of one Python service, shared by every transport.

An :class:`Endpoint` owns the implementation instance and turns ``(method, request, caller)``
into a handler call with a :class:`CallContext`: it checks authentication, records the call in
the trace when the test runner asks for one, tracks calls in flight for the timing pulse, and turns
handler failures into ServiceCallError. The in-process client calls it directly, without
serialization; the gRPC and Connect servers call it after decoding.
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any, Protocol

from google.protobuf.message import Message

from reckon.errors import CallCancelledError, ServiceCallError, UnauthenticatedError
from reckon.service.auth import Authenticator
from reckon.service.context import CallContext, ServiceContext, User, current_call
from reckon.service.definition import MethodDef, ServiceDef
from reckon.service.interceptors import Interceptor, intercepted
from reckon.service.metadata import Metadata
from reckon.service.status import from_handler_exception

#: A unary or client-streaming handler returns an awaitable; a server- or bidi-streaming one an
#: async iterator (it is an async generator). Client-streaming handlers get an async iterator.
Handler = Callable[[Any, CallContext], Any]


class Tracer(Protocol):
    """Receives every call; ``reckon.testing`` records them into a byte-stable trace."""

    def record(
        self,
        caller: str,
        callee: str,
        method: str,
        request: Message | list[Message],
        response: Message | list[Message] | None,
        error: ServiceCallError | None,
        start: float,
        end: float,
    ) -> None: ...


class Endpoint:
    """Dispatches calls to one implementation instance."""

    def __init__(
        self,
        name: str,
        definition: ServiceDef[Any],
        instance: Any,
        sctx: ServiceContext,
        *,
        authenticator: Authenticator,
        auth: str | None,
        call_limit: float | None,
        clock: Callable[[], float],
        tracer: Tracer | None = None,
        interceptors: Sequence[Interceptor] = (),
    ) -> None:
        self.name = name
        self.definition = definition
        self.instance = instance
        self.sctx = sctx
        self.authenticator = authenticator
        #: The schemes callers must authenticate with (``"basic"``, ``"bearer"``, ``"any"``), or
        #: None: anonymous calls welcome.
        self.auth = auth
        self.call_limit = call_limit
        self.clock = clock
        self.tracer = tracer
        self.handlers: dict[str, Handler] = {
            name: intercepted(getattr(instance, name), m, interceptors)
            for name, m in definition.methods.items()
        }
        #: call id -> (start time, task) of unary and client-streaming calls; filled only when
        #: a call limit is set (the timing pulse cancels the overdue ones).
        self.inflight: dict[int, tuple[float, asyncio.Task[Any]]] = {}
        #: call id -> start time of server- and bidi-streaming calls while they are open; filled
        #: only when a call limit is set. Each step of such a call is bounded by the limit itself
        #: (the task pulling a stream may be the reader's own, which the pulse must not cancel).
        self.streams: dict[int, float] = {}
        #: False in a child process, whose watchdog thread kills the process instead (a stuck
        #: handler may block the event loop).
        self.limit_in_loop = True
        self._ids = itertools.count()

    def _begin(
        self,
        method: MethodDef,
        user: User | None,
        authorization: str | None,
        deadline: float | None,
        metadata: Metadata | None,
    ) -> CallContext:
        if user is None and self.auth is not None:
            raise UnauthenticatedError(
                f"{self.definition.full_name}/{method.name} requires authentication ({self.auth})"
            )
        return CallContext(
            self.sctx,
            method.name,
            user,
            authorization,
            deadline,
            {} if metadata is None else metadata,
        )

    def _failure(self, exc: BaseException, method: MethodDef) -> ServiceCallError | None:
        """The error a caller sees for ``exc``; None when ``exc`` must propagate as it is
        (the caller's own cancellation, KeyboardInterrupt, SystemExit)."""
        if isinstance(exc, asyncio.CancelledError) and _cancelled_from_outside():
            return None  # the caller went away (or the unit stops): stay cancelled
        if not isinstance(exc, Exception | asyncio.CancelledError):
            return None
        return from_handler_exception(exc, f"{self.name}/{method.name}")

    def _overran(self, method: MethodDef) -> CallCancelledError:
        return CallCancelledError(
            f"{self.name}/{method.name} ran past its call limit "
            f"of {self.call_limit}s and was cancelled"
        )

    def _wrong_type(self, method: MethodDef, response: object) -> ServiceCallError:
        return ServiceCallError(
            f"{self.name}/{method.name} returned {type(response).__name__}, "
            f"expected {method.output.DESCRIPTOR.full_name}",
            "INTERNAL",
        )

    async def invoke(
        self,
        method: MethodDef,
        request: Any,
        user: User | None,
        authorization: str | None,
        deadline: float | None,
        metadata: Metadata | None = None,
    ) -> Message:
        """Run one call of a unary or client-streaming ``method`` (``request`` is then an async
        iterator of messages); raises ServiceCallError on every failure."""
        ctx = self._begin(method, user, authorization, deadline, metadata)
        parent = current_call.get()
        received: list[Message] | None = None
        if method.client_streaming and self.tracer is not None:
            received = []
            request = _recording(request, received)
        token = current_call.set(ctx)
        call_id = -1
        if self.call_limit is not None:
            task = asyncio.current_task()
            if task is not None:
                call_id = next(self._ids)
                self.inflight[call_id] = (self.clock(), task)
        start = self.clock() if self.tracer is not None else 0.0
        traced = request if received is None else received
        try:
            if deadline is None:
                response = await self.handlers[method.name](request, ctx)
            else:
                async with asyncio.timeout(deadline - self.clock()):
                    response = await self.handlers[method.name](request, ctx)
        except BaseException as exc:
            overran = call_id >= 0 and call_id not in self.inflight  # the pulse cancelled it
            if isinstance(exc, asyncio.CancelledError) and overran:
                task = asyncio.current_task()
                if task is not None:
                    task.uncancel()
                err: ServiceCallError | None = self._overran(method)
                assert err is not None
                self._trace(parent, method, traced, None, err, start)
                raise err from None
            err = self._failure(exc, method)
            if err is None:
                raise
            self._trace(parent, method, traced, None, err, start)
            if err is exc:
                raise
            raise err from exc
        finally:
            current_call.reset(token)
            if call_id >= 0:
                self.inflight.pop(call_id, None)
        if type(response) is not method.output and not isinstance(response, method.output):
            err = self._wrong_type(method, response)
            self._trace(parent, method, traced, None, err, start)
            raise err
        if self.tracer is not None:
            self._trace(parent, method, traced, response, None, start)
        return response

    async def stream(
        self,
        method: MethodDef,
        request: Any,
        user: User | None,
        authorization: str | None,
        deadline: float | None,
        metadata: Metadata | None = None,
    ) -> AsyncIterator[Message]:
        """The responses of a server- or bidi-streaming call, pulled one at a time from the
        handler (an async generator), so a slow reader slows the handler down (backpressure).

        The deadline bounds the whole call: each step gets only the time that is left. So does
        the service's call limit, counted from the first step while the stream is open (ending
        it with CANCELLED). When the reader stops early, the handler is closed (its ``finally``
        blocks run).
        """
        ctx = self._begin(method, user, authorization, deadline, metadata)
        parent = current_call.get()
        received: list[Message] | None = None
        if method.client_streaming and self.tracer is not None:
            received = []
            request = _recording(request, received)
        traced = request if received is None else received
        sent: list[Message] = []
        start = self.clock() if self.tracer is not None else 0.0
        token = current_call.set(ctx)
        try:
            responses = self.handlers[method.name](request, ctx)
        finally:
            current_call.reset(token)
        if not hasattr(responses, "__anext__"):
            if inspect.iscoroutine(responses):
                responses.close()  # an async def that returns: never awaited, so no warning
            err = ServiceCallError(
                f"{self.name}/{method.name} streams its responses: write it as an async "
                "generator (async def with yield)",
                "INTERNAL",
            )
            self._trace(parent, method, traced, None, err, start)
            raise err
        agen: AsyncIterator[Message] = responses
        call_id, limit_end = -1, None
        if self.call_limit is not None:
            call_id = next(self._ids)
            opened = self.streams[call_id] = self.clock()
            if self.limit_in_loop:
                limit_end = opened + self.call_limit
        ends = [t for t in (deadline, limit_end) if t is not None]
        bound = min(ends) if ends else None  # the earlier of the two bounds every step
        try:
            while True:
                if limit_end is not None and self.clock() >= limit_end:
                    err = self._overran(method)  # it overran while the reader was away
                    self._trace(parent, method, traced, sent, err, start)
                    raise err
                token = current_call.set(ctx)
                timer = None if bound is None else asyncio.timeout(bound - self.clock())
                try:
                    if timer is None:
                        item = await agen.__anext__()
                    else:
                        async with timer:
                            item = await agen.__anext__()
                except StopAsyncIteration:
                    break
                except BaseException as exc:
                    overran = timer is not None and timer.expired() and bound == limit_end
                    failure = self._overran(method) if overran else self._failure(exc, method)
                    if failure is None:
                        raise
                    self._trace(parent, method, traced, sent, failure, start)
                    if failure is exc:
                        raise
                    raise failure from exc
                finally:
                    current_call.reset(token)
                if type(item) is not method.output and not isinstance(item, method.output):
                    err = self._wrong_type(method, item)
                    self._trace(parent, method, traced, sent, err, start)
                    raise err
                if self.tracer is not None:
                    sent.append(item)
                yield item
        finally:
            self.streams.pop(call_id, None)
            aclose = getattr(agen, "aclose", None)
            if aclose is not None:
                await aclose()
        self._trace(parent, method, traced, sent, None, start)

    def _trace(
        self,
        parent: CallContext | None,
        method: MethodDef,
        request: Any,
        response: Message | list[Message] | None,
        error: ServiceCallError | None,
        start: float,
    ) -> None:
        if self.tracer is None:
            return
        caller = parent.service.name if parent is not None else "client"
        self.tracer.record(
            caller,
            self.name,
            method.name,
            request,
            response,
            error,
            start,
            self.clock(),
        )

    def overdue(self, now: float) -> list[int]:
        """Unary and client-streaming calls that have run longer than the call limit (the pulse
        cancels them)."""
        if self.call_limit is None or not self.limit_in_loop:
            return []
        return [cid for cid, (t0, _) in self.inflight.items() if now - t0 > self.call_limit]

    def open_since(self) -> list[float]:
        """When each call in flight began, streams included (a child's watchdog reads it from
        its thread: copies, since the loop changes the dicts meanwhile)."""
        return [t0 for t0, _ in list(self.inflight.values())] + list(self.streams.copy().values())

    def cancel(self, call_id: int) -> None:
        entry = self.inflight.pop(call_id, None)
        if entry is not None:
            entry[1].cancel()


async def _recording(
    requests: AsyncIterator[Message], into: list[Message]
) -> AsyncIterator[Message]:
    """``requests`` as they are read, each also kept in ``into`` (for the trace)."""
    async for r in requests:
        into.append(r)
        yield r


def _cancelled_from_outside() -> bool:
    """True when this task is being cancelled; False when a handler raised CancelledError itself
    (which must end its call with CANCELLED at once, not leave it open)."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0
