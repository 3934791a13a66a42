"""reckon.pva: an EPICS pvAccess server and client on asyncio, interoperable with p4p/pvxs.

    from reckon.pva import Server, SharedPV, Client, nt

The wire protocol lives in :mod:`reckon.pva.protocol` (pure, sans-I/O); this package adds
sockets, discovery, the PV publishing API, a blocking client wrapper and the bridge that
publishes reckon's own values (engine statistics, memoized results) as PVs. Names load on first
use, so ``reckon pva --help`` does not pay for numpy and the protocol library.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from reckon.pva import nt
    from reckon.pva.client import Client
    from reckon.pva.config import ClientConfig, ServerConfig
    from reckon.pva.pv import Peer, PutOperation, RpcOperation, SharedPV
    from reckon.pva.server import Server
    from reckon.pva.subscription import Subscription, Update
    from reckon.pva.sync import SyncClient

_EXPORTS = {
    "Client": "reckon.pva.client",
    "Subscription": "reckon.pva.subscription",
    "SyncClient": "reckon.pva.sync",
    "Update": "reckon.pva.subscription",
    "ClientConfig": "reckon.pva.config",
    "ServerConfig": "reckon.pva.config",
    "Peer": "reckon.pva.pv",
    "PutOperation": "reckon.pva.pv",
    "RpcOperation": "reckon.pva.pv",
    "SharedPV": "reckon.pva.pv",
    "Server": "reckon.pva.server",
}

__all__ = [
    "Client",
    "ClientConfig",
    "Peer",
    "PutOperation",
    "RpcOperation",
    "Server",
    "ServerConfig",
    "SharedPV",
    "Subscription",
    "SyncClient",
    "Update",
    "nt",
]


def __getattr__(name: str) -> Any:
    if name == "nt":
        return importlib.import_module("reckon.pva.nt")
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'reckon.pva' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
