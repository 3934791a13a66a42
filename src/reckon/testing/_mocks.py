"""Mocks generated from a service's descriptor, for unit tests of one service at a time.

``mock(Stock)`` builds an implementation object with one :class:`MockMethod` per RPC of the
definition (no hand-written list): each records its requests and answers with what it was told
(a queue of responses, a function, or an error), or with an empty response message by default.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

from google.protobuf.message import Message

from reckon.service.context import CallContext
from reckon.service.definition import MethodDef, ServiceDef
from reckon.service.status import CODES, error_for


class MockMethod:
    """One RPC of a mock: ``returns``, ``responds``, ``raises``; ``calls`` holds the requests."""

    def __init__(self, method: MethodDef) -> None:
        self.method = method
        #: The requests, in order (a list of messages per call for a request stream).
        self.calls: list[Any] = []
        self._queue: list[Message] = []
        self._fn: Callable[[Any], Any] | None = None
        self._error: tuple[str, str] | None = None

    def returns(self, *responses: Message) -> MockMethod:
        """Answer with these in turn; the last one repeats."""
        for r in responses:
            if not isinstance(r, self.method.output):
                raise TypeError(
                    f"{self.method.path} returns {self.method.output.DESCRIPTOR.full_name}, "
                    f"not {type(r).__name__}"
                )
        self._queue = list(responses)
        self._fn = None
        self._error = None
        return self

    def responds(self, fn: Callable[[Any], Any]) -> MockMethod:
        """Answer with ``fn(request)``."""
        self._fn = fn
        self._error = None
        return self

    def raises(self, code: str, message: str = "mock error") -> MockMethod:
        """Fail every call with this status code (the same exception class a real service's
        failure with that code reaches callers as)."""
        if code.upper() not in CODES[1:]:
            raise ValueError(
                f"{code!r} is not a gRPC failure code; use one of {', '.join(CODES[1:])}"
            )
        self._error = (code.upper(), message)
        return self

    async def _record(self, request: Any) -> Any:
        """Keep a copy of the request; a request stream is read to its end into a list."""
        if self.method.client_streaming:
            request = [_copy(r) async for r in request]
            self.calls.append(request)
        else:
            self.calls.append(_copy(request))
        if self._error is not None:
            raise error_for(self._error[0], self._error[1])
        return request

    async def __call__(self, request: Any, ctx: CallContext) -> Message:
        request = await self._record(request)
        if self._fn is not None:
            return self._fn(request)
        if self._queue:
            return self._queue.pop(0) if len(self._queue) > 1 else self._queue[0]
        return self.method.output()


class MockStreamMethod(MockMethod):
    """A mock of an RPC whose responses stream: ``returns(*responses)`` streams them all on every
    call; ``responds(fn)`` streams what ``fn(request)`` gives (any iterable); ``raises`` fails
    the call before its first response. A request stream is read to its end first."""

    async def __call__(self, request: Any, ctx: CallContext) -> AsyncIterator[Message]:  # type: ignore[override]
        request = await self._record(request)
        if self._fn is not None:
            for response in self._fn(request):
                yield response
            return
        for response in self._queue:
            yield response


class MockService:
    """An implementation object for ``definition`` whose methods are :class:`MockMethod`."""

    def __init__(self, definition: ServiceDef[Any]) -> None:
        self.definition = definition
        self.methods: dict[str, MockMethod] = {}
        for name, m in definition.methods.items():
            mm = MockStreamMethod(m) if m.server_streaming else MockMethod(m)
            self.methods[name] = mm
            setattr(self, name, mm)

    def __getitem__(self, name: str) -> MockMethod:
        return self.methods[name]

    async def ready(self) -> None:
        pass

    async def stop(self) -> None:
        pass


def _copy(msg: Message) -> Message:
    copy = type(msg)()
    copy.CopyFrom(msg)
    return copy


def mock(definition: ServiceDef[Any]) -> MockService:
    return MockService(definition)
