"""Memoizing service methods with reckon's ``@memoize``.

A handler's arguments are ``(self, request, ctx)``: the context changes every call and the
service object is not a value, so the key is the request alone, in its deterministic wire form
(the method's code is in the memo fingerprint already)::

    class Pricing(Service):
        definition = PricingDef

        @memoized_rpc(level=CachingLevel.MEMORY)
        async def Quote(self, request: QuoteRequest, ctx: CallContext) -> Quote: ...

Cached responses are shared objects: do not mutate them (strict mode copies them anyway).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from google.protobuf.message import Message


def request_key(_service: object, request: Message, _ctx: object) -> tuple[str, bytes]:
    """The memo key of an RPC: the request's type and deterministic bytes."""
    return (request.DESCRIPTOR.full_name, request.SerializeToString(deterministic=True))


def memoized_rpc(func: Callable[..., Any] | None = None, /, **options: Any) -> Any:
    """``@memoize`` keyed on the request; ``options`` are ``memoize``'s (level, ttl, ...)."""
    from reckon.memo import memoize

    decorate = memoize(key=request_key, **options)
    return decorate if func is None else decorate(func)
