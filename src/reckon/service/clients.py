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
from collections.abc import AsyncIterator, Callable
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
    where = f"{endpoint.name}/{m.name}"

    async def call(
        request: Message,
        timeout: float | None = None,  # noqa: ASYNC109 (the grpc stub's signature)
        metadata: Any = None,
        **_: Any,
    ) -> Message:
        request = _checked_request(request, m, where, strict)
        response = await invoke(m, request, *_caller(user0, auth0, clock, timeout, metadata))
        return m.output.FromString(response.SerializeToString()) if strict else response

    if not m.unary:
        return _inprocess_stream_call(endpoint, m, strict, user0, auth0, clock)
    call.__name__ = m.name
    return call


def _inprocess_stream_call(
    endpoint: Endpoint,
    m: MethodDef,
    strict: bool,
    user0: User | None,
    auth0: str | None,
    clock: Callable[[], float],
) -> Callable[..., Any]:
    """A streaming method in-process: the handler is pulled by the reader (backpressure), and
    reads the caller's request iterator itself; strict mode copies every message."""
    where = f"{endpoint.name}/{m.name}"

    def prepare(request: Any, timeout: float | None, metadata: Any) -> tuple[Any, ...]:
        if m.client_streaming:
            source: Any = _checked_requests(request, m, where, strict)
        else:
            source = _checked_request(request, m, where, strict)
        return (source, *_caller(user0, auth0, clock, timeout, metadata))

    if not m.server_streaming:

        async def call_unary_out(
            requests: Any,
            timeout: float | None = None,  # noqa: ASYNC109 (the grpc stub's signature)
            metadata: Any = None,
            **_: Any,
        ) -> Message:
            response = await endpoint.invoke(m, *prepare(requests, timeout, metadata))
            return m.output.FromString(response.SerializeToString()) if strict else response

        call_unary_out.__name__ = m.name
        return call_unary_out

    def call_stream_out(
        request: Any,
        timeout: float | None = None,
        metadata: Any = None,
        **_: Any,
    ) -> AsyncIterator[Message]:
        args = prepare(request, timeout, metadata)  # now: the caller's context, not the reader's
        responses = endpoint.stream(m, *args)
        return _copies(responses, m.output) if strict else responses

    call_stream_out.__name__ = m.name
    return call_stream_out


def _caller(
    user0: User | None,
    auth0: str | None,
    clock: Callable[[], float],
    timeout: float | None,
    metadata: Any,
) -> tuple[User | None, str | None, float | None, Metadata | None]:
    """Who an in-process call runs as, and until when: a call made from inside another call
    inherits its caller's user and credentials, and never outlives the caller's deadline."""
    parent = current_call.get()
    deadline = None if timeout is None else clock() + timeout
    md = None if metadata is None else from_pairs(metadata)
    if parent is None:
        return user0, auth0, deadline, md
    if parent.deadline is not None and (deadline is None or parent.deadline < deadline):
        deadline = parent.deadline
    return parent.user, parent.authorization, deadline, md


def _checked_request(request: Any, m: MethodDef, where: str, strict: bool) -> Message:
    if type(request) is not m.input:
        raise ServiceCallError(
            f"{where} takes {m.input.DESCRIPTOR.full_name}, got {type(request).__name__}",
            "INVALID_ARGUMENT",
        )
    return m.input.FromString(request.SerializeToString()) if strict else request


async def _checked_requests(
    requests: Any, m: MethodDef, where: str, strict: bool
) -> AsyncIterator[Message]:
    """The caller's requests (any iterable or async iterable), each checked (and copied)."""
    async for r in as_async_iterator(requests):
        yield _checked_request(r, m, where, strict)


async def _copies(messages: AsyncIterator[Message], cls: type[Message]) -> AsyncIterator[Message]:
    try:
        async for msg in messages:
            yield cls.FromString(msg.SerializeToString())
    finally:
        await messages.aclose()  # type: ignore[attr-defined]


async def as_async_iterator(items: Any) -> AsyncIterator[Any]:
    """An async iterator over a sync or async iterable (how callers may give a request stream)."""
    if hasattr(items, "__aiter__"):
        async for x in items:
            yield x
    else:
        for x in items:
            yield x


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
        kind = {
            (False, False): channel.unary_unary,
            (True, False): channel.stream_unary,
            (False, True): channel.unary_stream,
            (True, True): channel.stream_stream,
        }[m.client_streaming, m.server_streaming]
        mc = kind(
            m.path,
            request_serializer=m.input.SerializeToString,
            response_deserializer=m.output.FromString,
        )
        setattr(client, m.name, _grpc_call(mc, m, authorization, clock))
    return client


def _grpc_call(
    mc: Any,
    m: MethodDef,
    auth0: str | None,
    clock: Callable[[], float],
) -> Callable[..., Any]:
    async def call(
        request: Any,
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

    if m.server_streaming:
        return _grpc_stream_call(mc, m, auth0, clock)
    call.__name__ = m.name
    return call


def _grpc_stream_call(
    mc: Any, m: MethodDef, auth0: str | None, clock: Callable[[], float]
) -> Callable[..., Any]:
    def call(
        request: Any,
        timeout: float | None = None,
        metadata: Any = None,
        **_: Any,
    ) -> AsyncIterator[Message]:
        extra, auth, t = _outgoing(metadata, timeout, auth0, clock)
        md: list[tuple[str, str | bytes]] = list(extra.items())
        if auth is not None:
            md.append(("authorization", auth))
        return _grpc_responses(mc(request, timeout=t, metadata=md or None), m)

    call.__name__ = m.name
    return call


async def _grpc_responses(rpc: Any, m: MethodDef) -> AsyncIterator[Message]:
    # read() rather than ``async for``: grpc's own iterator is one more generator per message
    try:
        while (response := await rpc.read()) is not grpc.aio.EOF:  # type: ignore[attr-defined]
            yield response
    except grpc.aio.AioRpcError as exc:
        raise error_for(exc.code().name, f"{m.path}: {exc.details()}") from None
    finally:
        rpc.cancel()  # the reader stopped early: end the call (no-op once it is done)


def connect_client(
    base_url: str,
    definition: ServiceDef[Any],
    *,
    authorization: str | None,
    clock: Callable[[], float],
    ca: bytes | None = None,
) -> Any:
    from connectrpc.client import ConnectClient
    from connectrpc.compat import google_protobuf_binary_codec

    http_client = None
    if ca is not None:  # trust the deployment's certificate authority (TLS)
        import pyqwest

        http_client = pyqwest.Client(pyqwest.HTTPTransport(tls_ca_cert=ca))
    cc = ConnectClient(base_url, codec=google_protobuf_binary_codec(), http_client=http_client)
    client = Client(definition, "Connect")
    client._connect = cc  # type: ignore[attr-defined]
    for m in definition.methods.values():
        setattr(client, m.name, _connect_call(cc, m, authorization, clock))
    return client


def method_info(m: MethodDef) -> Any:
    """connectrpc's MethodInfo for a method, built from the descriptor."""
    from connectrpc.method import IdempotencyLevel, MethodInfo, StreamType

    return MethodInfo(
        name=m.name,
        service_name=m.path.split("/")[1],
        input=m.input,
        output=m.output,
        idempotency_level=IdempotencyLevel.UNKNOWN,
        stream_type={
            (False, False): StreamType.UNARY,
            (True, False): StreamType.CLIENT_STREAM,
            (False, True): StreamType.SERVER_STREAM,
            (True, True): StreamType.BIDI_STREAM,
        }[m.client_streaming, m.server_streaming],
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
        headers, t = _connect_headers(metadata, timeout, auth0, clock)
        try:
            response: Message = await cc.execute_unary(
                request=request,
                method=info,
                headers=headers or None,
                timeout_ms=None if t is None else max(int(t * 1000), 1),
            )
        except ConnectError as exc:
            raise _connect_error(exc, m) from None
        return response

    if m.client_streaming and not m.server_streaming:

        async def call_stream_in(
            requests: Any,
            timeout: float | None = None,  # noqa: ASYNC109 (the grpc stub's signature)
            metadata: Any = None,
            **_: Any,
        ) -> Message:
            headers, t = _connect_headers(metadata, timeout, auth0, clock)
            try:
                response: Message = await cc.execute_client_stream(
                    request=as_async_iterator(requests),
                    method=info,
                    headers=headers or None,
                    timeout_ms=None if t is None else max(int(t * 1000), 1),
                )
            except ConnectError as exc:
                raise _connect_error(exc, m) from None
            return response

    elif m.server_streaming:

        def call_stream_out(
            request: Any,
            timeout: float | None = None,
            metadata: Any = None,
            **_: Any,
        ) -> AsyncIterator[Message]:
            headers, t = _connect_headers(metadata, timeout, auth0, clock)
            execute = cc.execute_bidi_stream if m.client_streaming else cc.execute_server_stream
            responses = execute(
                request=as_async_iterator(request) if m.client_streaming else request,
                method=info,
                headers=headers or None,
                timeout_ms=None if t is None else max(int(t * 1000), 1),
            )
            return _connect_responses(responses, m)

    chosen: Callable[..., Any] = call
    if m.server_streaming:
        chosen = call_stream_out
    elif m.client_streaming:
        chosen = call_stream_in
    chosen.__name__ = m.name
    return chosen


def _connect_headers(
    metadata: Any, timeout: float | None, auth0: str | None, clock: Callable[[], float]
) -> tuple[dict[str, str], float | None]:
    extra, auth, t = _outgoing(metadata, timeout, auth0, clock)
    headers = to_headers(extra)
    if auth is not None:
        headers["authorization"] = auth
    return headers, t


def _connect_error(exc: Any, m: MethodDef) -> BaseException:
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        return asyncio.CancelledError()  # our caller cancelled: stay cancelled
    return error_for(exc.code.name, f"{m.path}: {exc.message}")


async def _connect_responses(responses: Any, m: MethodDef) -> AsyncIterator[Message]:
    from connectrpc.errors import ConnectError

    try:
        async for response in responses:
            yield response
    except ConnectError as exc:
        raise _connect_error(exc, m) from None
    finally:
        aclose = getattr(responses, "aclose", None)
        if aclose is not None:
            await aclose()
