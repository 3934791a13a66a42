"""A process's servers: one port for every protocol, for all its services, and an internal gRPC
port beside it.

The in-process services a unit serves over the wire join one :class:`WireServer` as they start
(services whose port, TLS, message size or keepalive settings differ get a server of their own).
Its port for every protocol (hypercorn: Connect, gRPC-Web and gRPC over HTTP/1.1 and HTTP/2) is
the address the deployment names and users' clients use. Its gRPC port (``grpc.aio``) is the
fast path between reckon's own processes only: grpcio's C core costs less per call than
hypercorn's pure-Python HTTP/2, and no user needs to know that port. Both answer the standard
health and reflection services for everything on them.
"""

from __future__ import annotations

from typing import Any

import grpc.aio

from reckon.service.endpoint import Endpoint
from reckon.service.servers import (
    ConnectServer,
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
        grpc_port: int,
        port: int,
        options: list[tuple[str, int]],
        tls: Tls | None,
        read_max_bytes: int,
        standard: list[Endpoint],
        board: HealthBoard,
    ) -> None:
        self._grpc_port = grpc_port
        self._port = port
        self._options = options
        self.tls = tls
        self._read_max_bytes = read_max_bytes
        self.board = board
        self.names: list[str] = []
        self._router = Router()
        self._routes: dict[str, Any] = {}
        self._grpc: grpc.aio.Server | None = None
        self.grpc_port = 0
        self.connect: ConnectServer | None = None
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
            self._grpc, self.grpc_port = await start_grpc(
                self._router, self._grpc_port, self._options, self.tls
            )
        if self.connect is None:
            app = connect_app(self._routes, read_max_bytes=self._read_max_bytes)
            self.connect = ConnectServer(app, self._port, self.tls)
            await self.connect.start()

    @property
    def grpc_address(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

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
