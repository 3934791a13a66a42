"""TLS for a service's ports and for the clients that call it, from certificate files.

A deployment names PEM files, for the whole unit (``[unit] tls = {...}``) or one service
(``tls = {...}`` in its table): ``cert`` and ``key`` for the servers, ``ca`` for the clients
(the certificate authority that signed ``cert``; omit it to trust the system's). Both ports of
the service then speak TLS only (gRPC, and the one port for every protocol: ``https://``), and
every reckon client of it, health probes included, checks the server's certificate.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from reckon.errors import DeploymentError


@dataclass(frozen=True)
class Tls:
    """Resolved certificate file paths (absolute); read when a server or channel is made."""

    cert: Path | None
    key: Path | None
    ca: Path | None

    @classmethod
    def from_table(cls, table: Any, root: Path, where: str) -> Tls:
        if not isinstance(table, dict) or set(table) - {"cert", "key", "ca"}:
            raise DeploymentError(
                f"{where} tls must be a table of PEM file paths: cert, key (the server's), "
                "ca (what clients trust)"
            )
        paths = {k: (root / str(v)).resolve() for k, v in table.items()}
        for k, p in paths.items():
            if not p.is_file():
                raise DeploymentError(f"{where} tls {k} = {str(p)!r}: no such file")
        if ("cert" in paths) != ("key" in paths):
            raise DeploymentError(f"{where} tls needs both cert and key (or neither)")
        return cls(paths.get("cert"), paths.get("key"), paths.get("ca"))

    def server_credentials(self) -> grpc.ServerCredentials:
        if self.cert is None or self.key is None:
            raise DeploymentError("serving TLS needs tls cert and key files")
        return grpc.ssl_server_credentials([(self.key.read_bytes(), self.cert.read_bytes())])

    def channel_credentials(self) -> grpc.ChannelCredentials:
        return grpc.ssl_channel_credentials(
            root_certificates=None if self.ca is None else self.ca.read_bytes()
        )

    def ca_bytes(self) -> bytes | None:
        return None if self.ca is None else self.ca.read_bytes()
