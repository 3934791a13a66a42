"""Serving an :class:`Endpoint` over the wire: gRPC (grpc.aio) and Connect (connectrpc + uvicorn).

Both are built from the service descriptor: one generic gRPC handler per service, one Connect
endpoint per method. Each server also answers the standard ``grpc.health.v1.Health/Check`` so the
supervisor (and any gRPC tooling) can probe it. Handler failures become status codes; a bad peer
never takes a server down.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Iterator
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

HEALTH_SERVICE = "grpc.health.v1.Health"
_SERVING = b"\x08\x01"  # HealthCheckResponse{status: SERVING}


def _health_handler() -> grpc.GenericRpcHandler:
    async def check(request: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> bytes:
        return _SERVING

    return grpc.method_handlers_generic_handler(
        HEALTH_SERVICE, {"Check": grpc.unary_unary_rpc_method_handler(check)}
    )


def grpc_handler(endpoint: Endpoint) -> grpc.GenericRpcHandler:
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
        handlers[m.name] = kind(
            _grpc_method(endpoint, m), response_serializer=m.output.SerializeToString
        )
    return grpc.method_handlers_generic_handler(endpoint.definition.full_name, handlers)


def parse_request(m: MethodDef, data: bytes) -> Message:
    """The request message of ``m`` from its wire form; INVALID_ARGUMENT when malformed."""
    try:
        return m.input.FromString(data)
    except DecodeError as exc:
        raise ServiceCallError(
            f"{m.path}: the request is not a valid {m.input.DESCRIPTOR.full_name} ({exc})",
            "INVALID_ARGUMENT",
        ) from None


async def _parsed(m: MethodDef, frames: AsyncIterator[bytes]) -> AsyncIterator[Message]:
    async for data in frames:
        yield parse_request(m, data)


def _grpc_method(endpoint: Endpoint, m: MethodDef) -> Callable[..., Any]:
    check = endpoint.authenticator.check
    clock = endpoint.clock

    def begin(data: Any, context: grpc.aio.ServicerContext[Any, Any]) -> tuple[Any, ...]:
        request = _parsed(m, data) if m.client_streaming else parse_request(m, data)
        raw = context.invocation_metadata() or ()
        found = next((v for k, v in raw if k == "authorization"), None)
        authorization = found if isinstance(found, str) else None
        user = check(authorization)
        remaining = context.time_remaining()
        deadline = None if remaining is None else clock() + remaining
        return request, user, authorization, deadline, from_pairs(raw)

    async def abort(context: grpc.aio.ServicerContext[Any, Any], exc: ServiceCallError) -> None:
        code = getattr(grpc.StatusCode, exc.code, grpc.StatusCode.UNKNOWN)
        await context.abort(code, str(exc))

    if m.server_streaming:

        async def handle_stream(
            data: Any, context: grpc.aio.ServicerContext[Any, Any]
        ) -> AsyncIterator[Message]:
            try:
                async for response in endpoint.stream(m, *begin(data, context)):
                    yield response
            except ServiceCallError as exc:
                await abort(context, exc)

        return handle_stream

    async def handle(data: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Message:
        try:
            return await endpoint.invoke(m, *begin(data, context))
        except ServiceCallError as exc:
            await abort(context, exc)
            raise  # unreachable: abort raises

    return handle


async def start_grpc(endpoints: list[Endpoint], port: int = 0) -> tuple[grpc.aio.Server, int]:
    """Serve ``endpoints`` (plus health) on 127.0.0.1; returns the server and its port."""
    server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
    server.add_generic_rpc_handlers([_health_handler(), *(grpc_handler(e) for e in endpoints)])
    bound = server.add_insecure_port(f"127.0.0.1:{port}")
    if bound == 0:
        raise OSError(f"could not bind gRPC server to 127.0.0.1:{port}")
    await server.start()
    return server, bound


# ---------------------------------------------------------------------------------------------
# Connect
# ---------------------------------------------------------------------------------------------


def connect_app(endpoint: Endpoint) -> Any:
    """An ASGI application answering Connect (and gRPC-Web) for one service."""
    from connectrpc._server_async import ConnectASGIApplication
    from connectrpc._server_shared import (
        EndpointBidiStream,
        EndpointClientStream,
        EndpointServerStream,
        EndpointUnary,
    )
    from connectrpc.code import Code
    from connectrpc.compat import google_protobuf_codecs
    from connectrpc.errors import ConnectError

    check = endpoint.authenticator.check
    clock = endpoint.clock

    def begin(ctx: Any) -> tuple[User | None, str | None, float | None, Metadata]:
        headers = ctx.request_headers
        authorization = headers.get("authorization")
        user = check(authorization)
        left = ctx.timeout_ms
        deadline = None if left is None else clock() + left / 1000.0
        return user, authorization, deadline, from_headers(headers.items())

    def failed(exc: ServiceCallError) -> ConnectError:
        return ConnectError(Code(connect_code(exc.code)), str(exc))

    def make(m: MethodDef) -> Any:
        info = method_info(m)
        if m.server_streaming:

            async def handle_stream(request: Any, ctx: Any) -> AsyncIterator[Message]:
                try:
                    async for response in endpoint.stream(m, request, *begin(ctx)):
                        yield response
                except ServiceCallError as exc:
                    raise failed(exc) from None

            cls: Any = EndpointBidiStream if m.client_streaming else EndpointServerStream
            return cls(method=info, function=handle_stream)

        async def handle(request: Any, ctx: Any) -> Message:
            try:
                return await endpoint.invoke(m, request, *begin(ctx))
            except ServiceCallError as exc:
                raise failed(exc) from None

        unary_out: Any = EndpointClientStream if m.client_streaming else EndpointUnary
        return unary_out(method=info, function=handle)

    path = "/" + endpoint.definition.full_name
    table = {m.path: make(m) for m in endpoint.definition.methods.values()}

    class _App(ConnectASGIApplication[Endpoint]):
        @property
        def path(self) -> str:
            return path

    return _App(service=endpoint, endpoints=lambda _svc: table, codecs=google_protobuf_codecs())


class ConnectServer:
    """uvicorn serving one Connect app on 127.0.0.1, without touching signal handlers."""

    def __init__(self, app: Any, port: int) -> None:
        import uvicorn

        class _Server(uvicorn.Server):
            @contextlib.contextmanager
            def capture_signals(self) -> Iterator[None]:  # the runtime owns signals
                yield

        config = uvicorn.Config(
            app, host="127.0.0.1", port=port, log_level="warning", lifespan="off", access_log=False
        )
        self._server = _Server(config)
        self.port = port
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._server.serve())
        while not self._server.started:
            if self._task.done():
                self._task.result()
                raise OSError(f"Connect server on 127.0.0.1:{self.port} did not start")
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        if self._task is None:
            return
        self._server.should_exit = True
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._task, 5)
        self._task = None
