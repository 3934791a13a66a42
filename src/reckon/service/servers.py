"""Serving an :class:`Endpoint` over the wire: gRPC (grpc.aio) and Connect (connectrpc + hypercorn).

Both are built from the service descriptor: one generic gRPC handler per service, one Connect
endpoint per method, for each of the four call kinds. The runtime serves the standard services
(health, reflection: :mod:`reckon.service.standard`) beside each service the same way. Handler
failures become status codes; a bad peer never takes a server down.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
import grpc.aio
from google.protobuf.message import DecodeError, Message

from reckon.errors import ServiceCallError
from reckon.service.clients import method_info
from reckon.service.context import User
from reckon.service.definition import MethodDef
from reckon.service.endpoint import Endpoint
from reckon.service.metadata import Metadata, from_headers, from_pairs
from reckon.service.status import connect_code


def grpc_handler(endpoint: Endpoint) -> grpc.GenericRpcHandler:
    """A grpc generic handler serving ``endpoint``'s methods."""
    return Router(grpc_method_handlers(endpoint))


class Router(grpc.GenericRpcHandler):
    """Finds a method's handler by its path; ``handlers`` may grow while the server runs."""

    def __init__(self, handlers: dict[str, grpc.RpcMethodHandler] | None = None) -> None:
        self.handlers: dict[str, grpc.RpcMethodHandler] = dict(handlers or {})

    def service(
        self, handler_call_details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler | None:
        return self.handlers.get(handler_call_details.method)


def grpc_method_handlers(endpoint: Endpoint) -> dict[str, grpc.RpcMethodHandler]:
    """Each method's grpc handler, by path (``/pkg.Service/Method``)."""
    # Requests arrive as bytes and are parsed by the handler, so that a malformed body is
    # INVALID_ARGUMENT (as over Connect), not the UNKNOWN grpc gives a failed deserializer.
    handlers = {}
    for m in endpoint.definition.methods.values():
        kind = {
            (False, False): grpc.unary_unary_rpc_method_handler,
            (True, False): grpc.stream_unary_rpc_method_handler,
            (False, True): grpc.unary_stream_rpc_method_handler,
            (True, True): grpc.stream_stream_rpc_method_handler,
        }[m.client_streaming, m.server_streaming]
        handlers[m.path] = kind(
            _grpc_method(endpoint, m), response_serializer=m.output.SerializeToString
        )
    return handlers


def parse_request(m: MethodDef, data: bytes) -> Message:
    """The request message of ``m`` from its wire form; INVALID_ARGUMENT when malformed."""
    try:
        return m.input.FromString(data)
    except DecodeError as exc:
        raise ServiceCallError(
            f"{m.path}: the request is not a valid {m.input.DESCRIPTOR.full_name} ({exc})",
            "INVALID_ARGUMENT",
        ) from None


async def _parsed(
    m: MethodDef, context: grpc.aio.ServicerContext[Any, Any]
) -> AsyncIterator[Message]:
    """A request stream, read from the call itself (grpc's request iterator is one more
    generator per message)."""
    while (data := await context.read()) is not grpc.aio.EOF:  # type: ignore[attr-defined]
        yield parse_request(m, data)


def _grpc_method(endpoint: Endpoint, m: MethodDef) -> Callable[..., Any]:
    check = endpoint.authenticator.check_async
    clock = endpoint.clock

    async def begin(data: Any, context: grpc.aio.ServicerContext[Any, Any]) -> tuple[Any, ...]:
        remaining = context.time_remaining()
        deadline = None if remaining is None else clock() + remaining
        request = _parsed(m, context) if m.client_streaming else parse_request(m, data)
        raw = context.invocation_metadata() or ()
        found = next((v for k, v in raw if k == "authorization"), None)
        authorization = found if isinstance(found, str) else None
        user = await check(authorization, endpoint.auth)
        return request, user, authorization, deadline, from_pairs(raw)

    async def abort(context: grpc.aio.ServicerContext[Any, Any], exc: ServiceCallError) -> None:
        code = getattr(grpc.StatusCode, exc.code, grpc.StatusCode.UNKNOWN)
        await context.abort(code, str(exc))

    if m.server_streaming:

        async def handle_stream(
            data: Any, context: grpc.aio.ServicerContext[Any, Any]
        ) -> AsyncIterator[Message]:
            try:
                async for response in endpoint.stream(m, *(await begin(data, context))):
                    yield response
            except ServiceCallError as exc:
                await abort(context, exc)

        return handle_stream

    async def handle(data: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Message:
        try:
            return await endpoint.invoke(m, *(await begin(data, context)))
        except ServiceCallError as exc:
            await abort(context, exc)
            raise  # unreachable: abort raises

    return handle


def grpc_options(max_message_bytes: int, keepalive: float) -> list[tuple[str, int]]:
    """grpc channel and server options for a service's message size limit and keepalive."""
    options = [
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.max_send_message_length", max_message_bytes),
    ]
    if keepalive > 0:
        ms = int(keepalive * 1000)
        options += [
            ("grpc.keepalive_time_ms", ms),
            ("grpc.keepalive_timeout_ms", max(ms, 20_000)),
            ("grpc.keepalive_permit_without_calls", 1),
            ("grpc.http2.min_recv_ping_interval_without_data_ms", ms),
            ("grpc.http2.max_pings_without_data", 0),
        ]
    return options


async def start_grpc(
    router: Router,
    where: str,
    options: list[tuple[str, int]] | None = None,
) -> tuple[grpc.aio.Server, int]:
    """Serve ``router``'s methods at ``where`` (``unix:/path``, or ``host:port``); returns the
    server and its port (0 for a Unix socket)."""
    server = grpc.aio.server(options=[("grpc.so_reuseport", 0), *(options or ())])
    server.add_generic_rpc_handlers([router])
    bound = server.add_insecure_port(where)
    if bound == 0 and not where.startswith("unix:"):
        raise OSError(f"could not bind the gRPC server to {where}")
    await server.start()
    return server, bound


# ---------------------------------------------------------------------------------------------
# Connect
# ---------------------------------------------------------------------------------------------


def connect_app(routes: dict[str, Any], *, read_max_bytes: int = 4 * 1024 * 1024) -> Any:
    """An ASGI application answering Connect, gRPC-Web and gRPC for ``routes`` (from
    :func:`connect_routes`); the dict may grow while the app serves (connectrpc keeps it as
    given when no connectrpc interceptors are set, and looks each path up per request)."""
    from connectrpc._server_async import ConnectASGIApplication
    from connectrpc.compat import google_protobuf_codecs

    class _App(ConnectASGIApplication[object]):
        @property
        def path(self) -> str:
            return "/"

    return _App(
        service=object(),
        endpoints=lambda _svc: routes,
        codecs=google_protobuf_codecs(),
        read_max_bytes=read_max_bytes,
    )


def connect_routes(endpoints: list[Endpoint]) -> dict[str, Any]:
    """connectrpc endpoints, by path, for every method of ``endpoints``."""
    from connectrpc._server_shared import (
        EndpointBidiStream,
        EndpointClientStream,
        EndpointServerStream,
        EndpointUnary,
    )
    from connectrpc.code import Code
    from connectrpc.errors import ConnectError

    async def begin(
        endpoint: Endpoint, ctx: Any
    ) -> tuple[User | None, str | None, float | None, Metadata]:
        left = ctx.timeout_ms
        deadline = None if left is None else endpoint.clock() + left / 1000.0
        headers = ctx.request_headers
        authorization = headers.get("authorization")
        user = await endpoint.authenticator.check_async(authorization, endpoint.auth)
        return user, authorization, deadline, from_headers(headers.items())

    def failed(exc: ServiceCallError) -> ConnectError:
        return ConnectError(Code(connect_code(exc.code)), str(exc))

    def make(endpoint: Endpoint, m: MethodDef) -> Any:
        info = method_info(m)
        if m.server_streaming:

            async def handle_stream(request: Any, ctx: Any) -> AsyncIterator[Message]:
                try:
                    async for response in endpoint.stream(
                        m, request, *(await begin(endpoint, ctx))
                    ):
                        yield response
                except ServiceCallError as exc:
                    raise failed(exc) from None

            cls: Any = EndpointBidiStream if m.client_streaming else EndpointServerStream
            return cls(method=info, function=handle_stream)

        async def handle(request: Any, ctx: Any) -> Message:
            try:
                return await endpoint.invoke(m, request, *(await begin(endpoint, ctx)))
            except ServiceCallError as exc:
                raise failed(exc) from None

        unary_out: Any = EndpointClientStream if m.client_streaming else EndpointUnary
        return unary_out(method=info, function=handle)

    return {m.path: make(e, m) for e in endpoints for m in e.definition.methods.values()}
