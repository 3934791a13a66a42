"""A process's server for its services: one port for every protocol.

The in-process services a unit serves over the wire join one :class:`WireServer` as they start
(services whose port, TLS, message size or keepalive settings differ get a server of their own).
Its one port (:class:`reckon.service.front.Front`) is the address the deployment names, and the
only one: gRPC connections are served on the event loop by :mod:`reckon.service.h2grpc`, the
rest (Connect, gRPC-Web, HTTP/1.1) by hypercorn, both on the accepted socket. Both answer the
standard health and reflection services for everything on them.
"""

from __future__ import annotations

from typing import Any

from reckon.service.endpoint import Endpoint
from reckon.service.front import Front
from reckon.service.h2grpc import GrpcConnection, Routes
from reckon.service.servers import connect_app, connect_routes
from reckon.service.standard import SERVING, HealthBoard
from reckon.service.tls import Tls


class WireServer:
    """The servers one group of services shares; services join with :meth:`add`."""

    def __init__(
        self,
        *,
        port: int,
        keepalive: float,
        tls: Tls | None,
        read_max_bytes: int,
        standard: list[Endpoint],
        board: HealthBoard,
    ) -> None:
        self._port = port
        self._keepalive = keepalive
        self.tls = tls
        self._read_max_bytes = read_max_bytes
        self.board = board
        self.names: list[str] = []
        self._grpc_routes: Routes = {}
        self._routes: dict[str, Any] = {}
        self.connect: Front | None = None
        for e in standard:
            self._register(e)

    def _register(self, endpoint: Endpoint) -> None:
        self._grpc_routes.update(
            {m.path: (endpoint, m) for m in endpoint.definition.methods.values()}
        )
        self._routes.update(connect_routes([endpoint]))

    async def add(self, name: str, endpoint: Endpoint) -> None:
        """Serve ``endpoint`` (as service ``name``) on this server's ports, starting them."""
        self._register(endpoint)
        self.names.append(name)
        await self.board.set(endpoint.definition.full_name, SERVING)
        if self.connect is None:
            app = connect_app(self._routes, read_max_bytes=self._read_max_bytes)
            self.connect = Front(app, self._grpc_connection, self._port, self.tls)
            await self.connect.start()

    def _grpc_connection(self) -> GrpcConnection:
        return GrpcConnection(
            self._grpc_routes, max_message_bytes=self._read_max_bytes, keepalive=self._keepalive
        )

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
