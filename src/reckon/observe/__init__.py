"""Watch computations live: a websocket API, a Python shell, a terminal view and a web page.

``serve(engine)`` starts the server (a daemon thread, for sync programs; ``await
serve_async(engine)`` in asyncio code); :class:`Client` / :class:`AsyncClient` talk to it;
``reckon shell``, ``reckon top`` and the page at the server's URL are built on the client.
``autostart()`` starts a server when ``$RECKON_OBSERVE`` asks for one. See docs/observe.md.

Names are imported on first use, so ``import reckon.observe`` (and the ``reckon`` command line)
stays cheap until a server or client is actually wanted.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from reckon.observe.client import AsyncClient, AsyncSubscription, Client, Subscription
    from reckon.observe.protocol import PROTOCOL_VERSION, EventsPush, StatusPush
    from reckon.observe.server import Limits, ObserveServer, ServerHandle, serve, serve_async
    from reckon.observe.startup import autostart, parse_address

_WHERE = {
    "autostart": "startup",
    "parse_address": "startup",
    "AsyncClient": "client",
    "AsyncSubscription": "client",
    "Client": "client",
    "Subscription": "client",
    "PROTOCOL_VERSION": "protocol",
    "EventsPush": "protocol",
    "StatusPush": "protocol",
    "Limits": "server",
    "ObserveServer": "server",
    "ServerHandle": "server",
    "serve": "server",
    "serve_async": "server",
}

__all__ = [
    "PROTOCOL_VERSION",
    "AsyncClient",
    "AsyncSubscription",
    "Client",
    "EventsPush",
    "Limits",
    "ObserveServer",
    "ServerHandle",
    "StatusPush",
    "Subscription",
    "autostart",
    "parse_address",
    "serve",
    "serve_async",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'reckon.observe' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"reckon.observe.{module}"), name)
    globals()[name] = value
    return value
