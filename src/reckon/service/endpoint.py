"""The serving side of one Python service, shared by every transport.

An :class:`Endpoint` owns the implementation instance and turns ``(method, request, caller)``
into a handler call with a :class:`CallContext`: it checks authentication, records the call in
the trace when the test runner asks for one, tracks calls in flight for the timing pulse, and turns
handler failures into ServiceCallError. The in-process client calls it directly, without
serialization; the gRPC and Connect servers call it after decoding.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from google.protobuf.message import Message

from reckon.errors import CallCancelledError, ServiceCallError, UnauthenticatedError
from reckon.service.auth import Authenticator
from reckon.service.context import CallContext, ServiceContext, User, current_call
from reckon.service.definition import MethodDef, ServiceDef
from reckon.service.metadata import Metadata
from reckon.service.status import from_handler_exception

Handler = Callable[[Message, CallContext], Awaitable[Message]]


class Tracer(Protocol):
    """Receives every call; ``reckon.testing`` records them into a byte-stable trace."""

    def record(
        self,
        caller: str,
        callee: str,
        method: str,
        request: Message,
        response: Message | None,
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
        auth_required: bool,
        call_limit: float | None,
        clock: Callable[[], float],
        tracer: Tracer | None = None,
    ) -> None:
        self.name = name
        self.definition = definition
        self.instance = instance
        self.sctx = sctx
        self.authenticator = authenticator
        self.auth_required = auth_required
        self.call_limit = call_limit
        self.clock = clock
        self.tracer = tracer
        self.handlers: dict[str, Handler] = {m: getattr(instance, m) for m in definition.methods}
        #: call id -> (start time, task); filled only when a call limit is set.
        self.inflight: dict[int, tuple[float, asyncio.Task[Any]]] = {}
        self._ids = itertools.count()

    async def invoke(
        self,
        method: MethodDef,
        request: Message,
        user: User | None,
        authorization: str | None,
        deadline: float | None,
        metadata: Metadata | None = None,
    ) -> Message:
        """Run one call of ``method``; raises ServiceCallError on every failure."""
        if user is None and self.auth_required:
            raise UnauthenticatedError(
                f"{self.definition.full_name}/{method.name} requires basic authentication"
            )
        ctx = CallContext(
            self.sctx,
            method.name,
            user,
            authorization,
            deadline,
            {} if metadata is None else metadata,
        )
        parent = current_call.get()
        token = current_call.set(ctx)
        call_id = -1
        if self.call_limit is not None:
            task = asyncio.current_task()
            if task is not None:
                call_id = next(self._ids)
                self.inflight[call_id] = (self.clock(), task)
        start = self.clock() if self.tracer is not None else 0.0
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
                err: ServiceCallError = CallCancelledError(
                    f"{self.name}/{method.name} ran past its call limit "
                    f"of {self.call_limit}s and was cancelled"
                )
                self._trace(parent, method, request, None, err, start)
                raise err from None
            if isinstance(exc, asyncio.CancelledError) and _cancelled_from_outside():
                raise  # the caller went away (or the unit stops): stay cancelled
            if not isinstance(exc, Exception | asyncio.CancelledError):
                raise
            err = from_handler_exception(exc, f"{self.name}/{method.name}")
            self._trace(parent, method, request, None, err, start)
            if err is exc:
                raise
            raise err from exc
        finally:
            current_call.reset(token)
            if call_id >= 0:
                self.inflight.pop(call_id, None)
        if type(response) is not method.output and not isinstance(response, method.output):
            err = ServiceCallError(
                f"{self.name}/{method.name} returned {type(response).__name__}, "
                f"expected {method.output.DESCRIPTOR.full_name}",
                "INTERNAL",
            )
            self._trace(parent, method, request, None, err, start)
            raise err
        if self.tracer is not None:
            self._trace(parent, method, request, response, None, start)
        return response

    def _trace(
        self,
        parent: CallContext | None,
        method: MethodDef,
        request: Message,
        response: Message | None,
        error: ServiceCallError | None,
        start: float,
    ) -> None:
        if self.tracer is None:
            return
        caller = parent.service.name if parent is not None else "client"
        self.tracer.record(
            caller, self.name, method.name, request, response, error, start, self.clock()
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


def _cancelled_from_outside() -> bool:
    """True when this task is being cancelled; False when a handler raised CancelledError itself
    (which must end its call with CANCELLED at once, not leave it open)."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0
