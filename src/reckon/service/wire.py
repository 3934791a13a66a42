"""A process's server for its services: one port for every protocol.

The in-process services a unit serves over the wire join one :class:`WireServer` as they start
(services whose port, TLS, message size or keepalive settings differ get a server of their own).
Its one port (:class:`reckon.service.front.Front`) is the address the deployment names, and the
only one: gRPC connections are relayed to ``grpc.aio`` listening on an abstract Unix socket (no
port), the rest (Connect, gRPC-Web, HTTP/1.1) is served by hypercorn on the accepted socket.
Both answer the standard health and reflection services for everything on them.
"""

from __future__ import annotations

import os
import secrets
from typing import Any

import grpc.aio

from reckon.service.endpoint import Endpoint
from reckon.service.front import Front
from reckon.service.servers import (
    Router,
    connect_app,
    connect_routes,
    grpc_method_handlers,
    start_grpc,
)
from reckon.service.standard import SERVING, HealthBoard
from reckon.service.tls import Tls


class WireServer:
    """The servers one group of services shares; services join with :meth:`add`."""

    def __init__(
        self,
        *,
        port: int,
        options: list[tuple[str, int]],
        tls: Tls | None,
        read_max_bytes: int,
        standard: list[Endpoint],
        board: HealthBoard,
    ) -> None:
        self._port = port
        # Linux's abstract namespace: no file to leave behind when the process is killed, and
        # no path length limit. Whoever may reach the port may reach this name, no one else
        # needs it, and the calls it takes pass the same authentication.
        self._socket_name = f"reckon-grpc-{os.getpid()}-{secrets.token_hex(8)}"
        self._options = options
        self.tls = tls
        self._read_max_bytes = read_max_bytes
        self.board = board
        self.names: list[str] = []
        self._router = Router()
        self._routes: dict[str, Any] = {}
        self._grpc: grpc.aio.Server | None = None
        self.connect: Front | None = None
        for e in standard:
            self._register(e)

    def _register(self, endpoint: Endpoint) -> None:
        self._router.handlers.update(grpc_method_handlers(endpoint))
        self._routes.update(connect_routes([endpoint]))

    async def add(self, name: str, endpoint: Endpoint) -> None:
        """Serve ``endpoint`` (as service ``name``) on this server's ports, starting them."""
        self._register(endpoint)
        self.names.append(name)
        await self.board.set(endpoint.definition.full_name, SERVING)
        if self._grpc is None:
            self._grpc, _ = await start_grpc(
                self._router, f"unix-abstract:{self._socket_name}", self._options
            )
        if self.connect is None:
            app = connect_app(self._routes, read_max_bytes=self._read_max_bytes)
            self.connect = Front(app, "\0" + self._socket_name, self._port, self.tls)
            await self.connect.start()

    @property
    def grpc_address(self) -> str:
        """The same port as :attr:`connect_url`, for gRPC clients (``host:port``)."""
        assert self.connect is not None
        return f"127.0.0.1:{self.connect.port}"

    @property
    def connect_url(self) -> str | None:
        if self.connect is None:
            return None
        return f"{'http' if self.tls is None else 'https'}://127.0.0.1:{self.connect.port}"

    async def stop(self) -> None:
        await self.board.stopping()  # health watchers hear it before the servers go
        if self.connect is not None:
            await self.connect.stop()
        if self._grpc is not None:
            await self._grpc.stop(0.5)
