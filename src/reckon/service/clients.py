"""Typed clients for the three transports, all shaped like the generated ``*AsyncStub``.

``await client.GetRecord(request, timeout=1.0)`` works the same on each:

- in-process: a direct call into the :class:`Endpoint` (no network, no serialization; in strict
  mode messages are copied through their wire form so shared-mutation bugs surface in tests);
- gRPC: one ``grpc.aio`` multi-callable per method on a shared channel;
- Connect: connectrpc's ``ConnectClient`` (binary protobuf over HTTP/1.1).

The caller's user, credentials and deadline follow nested calls through the current call context.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import grpc
import grpc.aio
from google.protobuf.message import Message

from reckon.errors import ServiceCallError
from reckon.service.context import User, current_call
from reckon.service.definition import MethodDef, ServiceDef
from reckon.service.endpoint import Endpoint
from reckon.service.metadata import Metadata, from_pairs, to_headers
from reckon.service.status import error_for


class Client:
    """Attributes named after the service's methods; each is an async callable."""

    def __init__(self, definition: ServiceDef[Any], transport: str) -> None:
        self._definition = definition
        self._transport = transport

    def __repr__(self) -> str:
        return f"<{self._transport} client of {self._definition.full_name}>"


def inprocess_client(
    endpoint: Endpoint,
    *,
    strict: bool,
    user: User | None,
    authorization: str | None,
    clock: Callable[[], float],
) -> Any:
    client = Client(endpoint.definition, "in-process")
    for m in endpoint.definition.methods.values():
        setattr(client, m.name, _inprocess_call(endpoint, m, strict, user, authorization, clock))
    return client


def _inprocess_call(
    endpoint: Endpoint,
    m: MethodDef,
    strict: bool,
    user0: User | None,
    auth0: str | None,
    clock: Callable[[], float],
) -> Callable[..., Any]:
    invoke = endpoint.invoke
    expected = m.input
    where = f"{endpoint.name}/{m.name}"

    async def call(
        request: Message,
        timeout: float | None = None,  # noqa: ASYNC109 (the grpc stub's signature)
        metadata: Any = None,
        **_: Any,
    ) -> Message:
        if type(request) is not expected:
            raise ServiceCallError(
                f"{where} takes {expected.DESCRIPTOR.full_name}, got {type(request).__name__}",
                "INVALID_ARGUMENT",
            )
        parent = current_call.get()
        deadline = None if timeout is None else clock() + timeout
        if parent is None:
            user, auth = user0, auth0
        else:
            user, auth = parent.user, parent.authorization
            if parent.deadline is not None and (deadline is None or parent.deadline < deadline):
                deadline = parent.deadline
        md = None if metadata is None else from_pairs(metadata)
        if strict:
            request = expected.FromString(request.SerializeToString())
            response = await invoke(m, request, user, auth, deadline, md)
            return m.output.FromString(response.SerializeToString())
        return await invoke(m, request, user, auth, deadline, md)

    call.__name__ = m.name
    return call


def _outgoing(
    metadata: Any, timeout: float | None, auth0: str | None, clock: Callable[[], float]
) -> tuple[Metadata, str | None, float | None]:
    """Metadata, credentials and timeout for a wire call, carrying the current caller's."""
    parent = current_call.get()
    auth = auth0 if parent is None else parent.authorization
    if parent is not None and parent.deadline is not None:
        left = max(parent.deadline - clock(), 0.0)
        timeout = left if timeout is None else min(timeout, left)
    return from_pairs(metadata), auth, timeout


def grpc_client(
    channel: grpc.aio.Channel,
    definition: ServiceDef[Any],
    *,
    authorization: str | None,
    clock: Callable[[], float],
) -> Any:
    client = Client(definition, "gRPC")
    for m in definition.methods.values():
        mc = channel.unary_unary(
            m.path,
            request_serializer=m.input.SerializeToString,
            response_deserializer=m.output.FromString,
        )
        setattr(client, m.name, _grpc_call(mc, m, authorization, clock))
    return client


def _grpc_call(
    mc: grpc.aio.UnaryUnaryMultiCallable[Any, Any],
    m: MethodDef,
    auth0: str | None,
    clock: Callable[[], float],
) -> Callable[..., Any]:
    async def call(
        request: Message,
        timeout: float | None = None,  # noqa: ASYNC109 (the grpc stub's signature)
        metadata: Any = None,
        **_: Any,
    ) -> Message:
        if auth0 is None and metadata is None and current_call.get() is None:
            md, t = None, timeout  # the common fast path: nothing to add
        else:
            extra, auth, t = _outgoing(metadata, timeout, auth0, clock)
            md = list(extra.items())
            if auth is not None:
                md.append(("authorization", auth))
        try:
            response: Message = await mc(request, timeout=t, metadata=md)
        except grpc.aio.AioRpcError as exc:
            raise error_for(exc.code().name, f"{m.path}: {exc.details()}") from None
        return response

    call.__name__ = m.name
    return call


def connect_client(
    base_url: str,
    definition: ServiceDef[Any],
    *,
    authorization: str | None,
    clock: Callable[[], float],
) -> Any:
    from connectrpc.client import ConnectClient
    from connectrpc.compat import google_protobuf_binary_codec

    cc = ConnectClient(base_url, codec=google_protobuf_binary_codec())
    client = Client(definition, "Connect")
    client._connect = cc  # type: ignore[attr-defined]
    for m in definition.methods.values():
        setattr(client, m.name, _connect_call(cc, m, authorization, clock))
    return client


def method_info(m: MethodDef) -> Any:
    """connectrpc's MethodInfo for a unary method, built from the descriptor."""
    from connectrpc.method import IdempotencyLevel, MethodInfo, StreamType

    return MethodInfo(
        name=m.name,
        service_name=m.path.split("/")[1],
        input=m.input,
        output=m.output,
        idempotency_level=IdempotencyLevel.UNKNOWN,
        stream_type=StreamType.UNARY,
    )


def _connect_call(
    cc: Any, m: MethodDef, auth0: str | None, clock: Callable[[], float]
) -> Callable[..., Any]:
    from connectrpc.errors import ConnectError

    info = method_info(m)

    async def call(
        request: Message,
        timeout: float | None = None,  # noqa: ASYNC109 (the grpc stub's signature)
        metadata: Any = None,
        **_: Any,
    ) -> Message:
        extra, auth, t = _outgoing(metadata, timeout, auth0, clock)
        headers = to_headers(extra)
        if auth is not None:
            headers["authorization"] = auth
        try:
            response: Message = await cc.execute_unary(
                request=request,
                method=info,
                headers=headers or None,
                timeout_ms=None if t is None else max(int(t * 1000), 1),
            )
        except ConnectError as exc:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise asyncio.CancelledError from None  # our caller cancelled: stay cancelled
            raise error_for(exc.code.name, f"{m.path}: {exc.message}") from None
        return response

    call.__name__ = m.name
    return call
