"""Free local ports, for the servers reckon starts on the caller's behalf (services placed in
child processes, the pvAccess loopback environment) and for the tests and demo that start theirs.

Every layer binds to 127.0.0.1 only when it picks a port itself, so this module is the one place
that asks the kernel for one.
"""

from __future__ import annotations

import socket

__all__ = ["free_port"]


def free_port(kind: socket.SocketKind = socket.SOCK_STREAM) -> int:
    """A port on 127.0.0.1 that was free a moment ago for ``kind`` (TCP by default; pass
    ``socket.SOCK_DGRAM`` for UDP). Another process may take it before it is used: callers that
    bind it themselves should retry, servers started with it report the port they really got."""
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
