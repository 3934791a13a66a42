"""Server and client settings read from the EPICS_PVA* / EPICS_PVAS* environment variables.

The variable names, their fallbacks (a server reads ``EPICS_PVAS_X`` first, then ``EPICS_PVA_X``)
and defaults follow the EPICS tools, so one environment configures reckon, p4p and the pvxs
command-line tools alike. Every setting can also be given directly to the constructors, which is
what tests do when they want no dependence on the process environment.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field

from reckon._net import free_port
from reckon.errors import ConfigurationError

DEFAULT_SERVER_PORT = 5075
DEFAULT_BROADCAST_PORT = 5076
DEFAULT_BEACON_PERIOD = 15.0
DEFAULT_CONN_TMO = 30.0
DEFAULT_TIMEOUT = 5.0  # seconds: search, connect and reply, unless a call says otherwise
#: the largest message a server or client takes (both settable: ``max_message_size=``); one
#: over it is read past unbuffered and fails its operation with an error the peer sees
MAX_MESSAGE_SIZE = 256 * 1024 * 1024
#: bytes of monitor updates one server connection may hold queued for a client that does not
#: read (past it, its queues coalesce: the newest value always arrives)
MAX_QUEUE_BYTES = 32 * 1024 * 1024

Address = tuple[str, int]

_TRUE = {"YES", "Y", "TRUE", "1", "ON"}
_FALSE = {"NO", "N", "FALSE", "0", "OFF"}


def _pick(env: Mapping[str, str], *names: str) -> tuple[str, str]:
    """The first of ``names`` set (and not blank) in ``env``, with its value; else ("", "")."""
    for name in names:
        value = env.get(name, "").strip()
        if value:
            return name, value
    return "", ""


def check_port(port: int, name: str) -> int:
    """``port`` when it is a port number (0: any free one), else a ConfigurationError naming
    the setting it came from."""
    if not 0 <= port <= 65535:
        raise ConfigurationError(f"{name}={port!r} is out of range; use a port in 1-65535")
    return port


def _port(env: Mapping[str, str], default: int, *names: str) -> int:
    name, value = _pick(env, *names)
    if not value:
        return default
    try:
        port = int(value)
    except ValueError:
        raise ConfigurationError(f"{name}={value!r} is not a port number; use e.g. 5075") from None
    return check_port(port, name)


def _bool(env: Mapping[str, str], default: bool, *names: str) -> bool:
    name, value = _pick(env, *names)
    if not value:
        return default
    upper = value.upper()
    if upper in _TRUE:
        return True
    if upper in _FALSE:
        return False
    raise ConfigurationError(f"{name}={value!r} is not a boolean; use YES or NO")


def _seconds(env: Mapping[str, str], default: float, *names: str) -> float:
    name, value = _pick(env, *names)
    if not value:
        return default
    try:
        seconds = float(value)
    except ValueError:
        raise ConfigurationError(f"{name}={value!r} is not a number of seconds") from None
    if seconds <= 0:
        raise ConfigurationError(f"{name}={value!r} must be positive")
    return seconds


def parse_addresses(text: str, default_port: int, name: str = "address list") -> list[Address]:
    """Split an EPICS address list (``"host[:port] host[:port] ..."``) into (host, port) pairs."""
    out: list[Address] = []
    for item in text.replace(",", " ").split():
        host, sep, port_text = item.rpartition(":")
        if not sep:
            host, port = item, default_port
        else:
            try:
                port = int(port_text)
            except ValueError:
                raise ConfigurationError(
                    f"{name}: {item!r} has a bad port; write host or host:port"
                ) from None
            if not 0 < port <= 65535:
                raise ConfigurationError(f"{name}: {item!r} has a port out of range")
        if not host:
            raise ConfigurationError(f"{name}: {item!r} has no host")
        out.append((host, port))
    return out


def _addresses(env: Mapping[str, str], default_port: int, *names: str) -> list[Address]:
    name, value = _pick(env, *names)
    return parse_addresses(value, default_port, name)  # (none when unset)


def _with_broadcast(targets: list[Address], auto: bool, port: int) -> list[Address]:
    return [*targets, ("255.255.255.255", port)] if auto else list(targets)


@dataclass
class ServerConfig:
    """Where a server listens and where it sends beacons."""

    interfaces: list[str] = field(default_factory=lambda: ["0.0.0.0"])
    tcp_port: int = DEFAULT_SERVER_PORT
    udp_port: int = DEFAULT_BROADCAST_PORT
    beacon_destinations: list[Address] = field(default_factory=list)
    auto_beacon: bool = True
    beacon_period: float = DEFAULT_BEACON_PERIOD
    conn_timeout: float = DEFAULT_CONN_TMO
    auth_methods: tuple[str, ...] = ("ca", "anonymous")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ServerConfig:
        """Read the settings the way pvxs does (server names first, then the client twins)."""
        env = os.environ if env is None else env
        tcp_port = _port(
            env, DEFAULT_SERVER_PORT, "EPICS_PVAS_SERVER_PORT", "EPICS_PVA_SERVER_PORT"
        )
        udp_port = _port(
            env, DEFAULT_BROADCAST_PORT, "EPICS_PVAS_BROADCAST_PORT", "EPICS_PVA_BROADCAST_PORT"
        )
        intf = _addresses(env, tcp_port, "EPICS_PVAS_INTF_ADDR_LIST")
        interfaces = [host for host, _ in intf] or ["0.0.0.0"]
        return cls(
            interfaces=interfaces,
            tcp_port=tcp_port,
            udp_port=udp_port,
            beacon_destinations=_addresses(
                env, udp_port, "EPICS_PVAS_BEACON_ADDR_LIST", "EPICS_PVA_ADDR_LIST"
            ),
            auto_beacon=_bool(
                env, True, "EPICS_PVAS_AUTO_BEACON_ADDR_LIST", "EPICS_PVA_AUTO_ADDR_LIST"
            ),
            beacon_period=_seconds(
                env, DEFAULT_BEACON_PERIOD, "EPICS_PVAS_BEACON_PERIOD", "EPICS_PVA_BEACON_PERIOD"
            ),
            conn_timeout=_seconds(env, DEFAULT_CONN_TMO, "EPICS_PVA_CONN_TMO"),
        )

    def beacon_targets(self) -> list[Address]:
        """Explicit destinations, plus the broadcast address when auto beacons are on."""
        return _with_broadcast(self.beacon_destinations, self.auto_beacon, self.udp_port)


@dataclass
class ClientConfig:
    """Where a client searches for PVs."""

    address_list: list[Address] = field(default_factory=list)
    auto_address_list: bool = True
    name_servers: list[Address] = field(default_factory=list)
    udp_port: int = DEFAULT_BROADCAST_PORT
    tcp_port: int = DEFAULT_SERVER_PORT
    conn_timeout: float = DEFAULT_CONN_TMO

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ClientConfig:
        env = os.environ if env is None else env
        udp_port = _port(env, DEFAULT_BROADCAST_PORT, "EPICS_PVA_BROADCAST_PORT")
        tcp_port = _port(
            env, DEFAULT_SERVER_PORT, "EPICS_PVA_SERVER_PORT", "EPICS_PVAS_SERVER_PORT"
        )
        return cls(
            address_list=_addresses(env, udp_port, "EPICS_PVA_ADDR_LIST"),
            auto_address_list=_bool(env, True, "EPICS_PVA_AUTO_ADDR_LIST"),
            name_servers=_addresses(env, tcp_port, "EPICS_PVA_NAME_SERVERS"),
            udp_port=udp_port,
            tcp_port=tcp_port,
            conn_timeout=_seconds(env, DEFAULT_CONN_TMO, "EPICS_PVA_CONN_TMO"),
        )

    def search_targets(self) -> list[Address]:
        """UDP destinations for search requests."""
        return _with_broadcast(self.address_list, self.auto_address_list, self.udp_port)


def loopback_environment(
    server_port: int | None = None, udp_port: int | None = None
) -> dict[str, str]:
    """The EPICS variables that keep pvAccess on this machine: servers listen and beacon on
    127.0.0.1 only, clients search 127.0.0.1 only, on the given ports or fresh free ones.

    The same variables configure reckon, p4p and the pvxs tools, so a test (or a demo) can set
    them for a server and hand them to any client process: nothing is broadcast to the network,
    and tests on fresh ports can run side by side.
    """
    tcp = server_port if server_port is not None else free_port(socket.SOCK_STREAM)
    udp = udp_port if udp_port is not None else free_port(socket.SOCK_DGRAM)
    return {
        "EPICS_PVA_AUTO_ADDR_LIST": "NO",
        "EPICS_PVA_ADDR_LIST": "127.0.0.1",
        "EPICS_PVAS_INTF_ADDR_LIST": "127.0.0.1",
        "EPICS_PVAS_AUTO_BEACON_ADDR_LIST": "NO",
        "EPICS_PVAS_BEACON_ADDR_LIST": "127.0.0.1",
        "EPICS_PVA_SERVER_PORT": str(tcp),
        "EPICS_PVAS_SERVER_PORT": str(tcp),
        "EPICS_PVA_BROADCAST_PORT": str(udp),
        "EPICS_PVAS_BROADCAST_PORT": str(udp),
    }
