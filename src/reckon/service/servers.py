"""Serving an :class:`Endpoint` over the wire: Connect, gRPC-Web and gRPC with JSON (connectrpc
under hypercorn), and what gRPC with protobuf (:mod:`reckon.service.h2grpc`) shares with them.

Both are built from the service descriptor: one route per method, for each of the four call
kinds. The runtime serves the standard services (health, reflection:
:mod:`reckon.service.standard`) beside each service the same way. Handler
failures become status codes; a bad peer never takes a server down.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from google.protobuf.message import DecodeError, Message

from reckon.errors import ServiceCallError
from reckon.service.clients import method_info
from reckon.service.context import User
from reckon.service.definition import MethodDef
from reckon.service.endpoint import Endpoint
from reckon.service.metadata import Metadata, from_headers
from reckon.service.status import connect_code


def parse_request(m: MethodDef, data: bytes) -> Message:
    """The request message of ``m`` from its wire form; INVALID_ARGUMENT when malformed."""
    try:
        return m.input.FromString(data)
    except DecodeError as exc:
        raise ServiceCallError(
            f"{m.path}: the request is not a valid {m.input.DESCRIPTOR.full_name} ({exc})",
            "INVALID_ARGUMENT",
        ) from None


def grpc_options(max_message_bytes: int, keepalive: float) -> list[tuple[str, int]]:
    """grpc channel options for a service's message size limit and keepalive."""
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
