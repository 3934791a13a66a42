"""Interceptors (middleware) for Python services, the same on every transport.

Every call of a Python service, in-process, over gRPC or over Connect, reaches its handler
through the service's :class:`~reckon.service.endpoint.Endpoint`; the endpoint wraps each handler
once in the interceptors the deployment names, so an interceptor sees every call in one shape
whatever the transport: the request (an async iterator for a request stream), the call's
:class:`~reckon.service.context.CallContext` (method, user, metadata, deadline) and ``proceed``.

Subclass :class:`Interceptor` and override ``unary`` (unary and client-streaming calls) and/or
``stream`` (server- and bidi-streaming calls; an async generator). Raising in an interceptor ends
the call exactly as raising in the handler would. Name them in the deployment, outermost first:
``[unit] interceptors = ["pkg.mod:Audit"]`` for every service, ``interceptors = [...]`` in a
service's table for that one (inside the unit's).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

from google.protobuf.message import Message

from reckon.errors import DeploymentError
from reckon.service.context import CallContext
from reckon.service.definition import MethodDef, load_object


class Interceptor:
    """Passes every call through; override what you need."""

    async def unary(
        self, request: Any, ctx: CallContext, proceed: Callable[[Any], Awaitable[Message]]
    ) -> Message:
        """A unary or client-streaming call (``request`` is then an async iterator)."""
        return await proceed(request)

    def stream(
        self, request: Any, ctx: CallContext, proceed: Callable[[Any], AsyncIterator[Message]]
    ) -> AsyncIterator[Message]:
        """A server- or bidi-streaming call: the responses ``proceed(request)`` gives."""
        return proceed(request)


def load_interceptors(specs: Sequence[str], where: str) -> list[Interceptor]:
    """``"module:Name"`` entries: a class (made with no arguments) or an object."""
    out = []
    for spec in specs:
        obj = load_object(spec, f"{where} interceptors")
        if isinstance(obj, type):
            obj = obj()
        if not callable(getattr(obj, "unary", None)) or not callable(getattr(obj, "stream", None)):
            raise DeploymentError(
                f"{where} interceptors: {spec!r} has no unary/stream methods; subclass "
                "reckon.service.Interceptor"
            )
        out.append(obj)
    return out


def intercepted(handler: Any, method: MethodDef, interceptors: Sequence[Interceptor]) -> Any:
    """``handler`` wrapped in ``interceptors``, the first outermost."""
    for icpt in reversed(interceptors):
        handler = _wrap(handler, method, icpt)
    return handler


def _wrap(inner: Any, method: MethodDef, icpt: Interceptor) -> Any:
    if method.server_streaming:

        def stream(request: Any, ctx: CallContext) -> AsyncIterator[Message]:
            return icpt.stream(request, ctx, lambda r: inner(r, ctx))

        return stream

    async def unary(request: Any, ctx: CallContext) -> Message:
        return await icpt.unary(request, ctx, lambda r: inner(r, ctx))

    return unary
