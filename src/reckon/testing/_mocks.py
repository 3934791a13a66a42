"""Mocks generated from a service's descriptor, for unit tests of one service at a time.

``mock(Stock)`` builds an implementation object with one :class:`MockMethod` per RPC of the
definition (no hand-written list): each records its requests and answers with what it was told
(a queue of responses, a function, or an error), or with an empty response message by default.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from google.protobuf.message import Message

from reckon.service.context import CallContext
from reckon.service.definition import MethodDef, ServiceDef
from reckon.service.status import CODES, error_for


class MockMethod:
    """One RPC of a mock: ``returns``, ``responds``, ``raises``; ``calls`` holds the requests."""

    def __init__(self, method: MethodDef) -> None:
        self.method = method
        self.calls: list[Message] = []
        self._queue: list[Message] = []
        self._fn: Callable[[Any], Message] | None = None
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

    def responds(self, fn: Callable[[Any], Message]) -> MockMethod:
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

    async def __call__(self, request: Message, ctx: CallContext) -> Message:
        copy = type(request)()
        copy.CopyFrom(request)
        self.calls.append(copy)
        if self._error is not None:
            raise error_for(self._error[0], self._error[1])
        if self._fn is not None:
            return self._fn(request)
        if self._queue:
            return self._queue.pop(0) if len(self._queue) > 1 else self._queue[0]
        return self.method.output()


class MockService:
    """An implementation object for ``definition`` whose methods are :class:`MockMethod`."""

    def __init__(self, definition: ServiceDef[Any]) -> None:
        self.definition = definition
        self.methods: dict[str, MockMethod] = {}
        for name, m in definition.methods.items():
            mm = MockMethod(m)
            self.methods[name] = mm
            setattr(self, name, mm)

    def __getitem__(self, name: str) -> MockMethod:
        return self.methods[name]

    async def ready(self) -> None:
        pass

    async def stop(self) -> None:
        pass


def mock(definition: ServiceDef[Any]) -> MockService:
    return MockService(definition)
