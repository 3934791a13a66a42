"""reckon.pva: an EPICS pvAccess server and client on asyncio, interoperable with p4p/pvxs.

    from reckon.pva import Server, SharedPV, Client, nt

The wire protocol lives in :mod:`reckon.pva.protocol` (pure, sans-I/O); this package adds
sockets, discovery, the PV publishing API, a blocking client wrapper and the bridge that
publishes reckon's own values (engine statistics, memoized results) as PVs.
"""

from __future__ import annotations

from reckon.pva import nt
from reckon.pva.client import Client, Subscription, SyncClient, Update
from reckon.pva.config import ClientConfig, ServerConfig
from reckon.pva.pv import Peer, PutOperation, RpcOperation, SharedPV
from reckon.pva.server import Server

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
