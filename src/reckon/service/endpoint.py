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
        #: call id -> (start time, task); filled only when a call limit is set.
        self.inflight: dict[int, tuple[float, asyncio.Task[Any]]] = {}
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
                err: ServiceCallError | None = CallCancelledError(
                    f"{self.name}/{method.name} ran past its call limit "
                    f"of {self.call_limit}s and was cancelled"
                )
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

        The deadline bounds the whole call: each step gets only the time that is left. When the
        reader stops early, the handler is closed (its ``finally`` blocks run).
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
        try:
            while True:
                token = current_call.set(ctx)
                try:
                    if deadline is None:
                        item = await agen.__anext__()
                    else:
                        async with asyncio.timeout(deadline - self.clock()):
                            item = await agen.__anext__()
                except StopAsyncIteration:
                    break
                except BaseException as exc:
                    failure = self._failure(exc, method)
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
        """Calls that have run longer than the call limit (the pulse cancels them)."""
        if self.call_limit is None:
            return []
        return [cid for cid, (t0, _) in self.inflight.items() if now - t0 > self.call_limit]

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
