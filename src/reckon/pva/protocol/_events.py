"""Events: what a connection turns received bytes into, and what ``send()`` turns into bytes.

Every event is a small frozen dataclass validated on creation. Names follow the protocol:
``XInit``/``XInitResponse`` create an operation (request ``ioid`` on channel ``sid``), ``X`` runs
it and ``XResponse`` answers. Responses leave ``destroy`` False; a connection echoes the
request's destroy flag itself.

Values: structures are dicts, ``changed`` is a :class:`BitSet` of offsets. On receive, the
connection hands out full values: a delta is merged into the previous value of that request.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ._event import ALL_CHANGED, Event
from ._types import Structure
from ._values import VariantValue

__all__ = [
    "ALL_CHANGED",
    "Beacon",
    "ConnectionClosed",
    "ConnectionValidationRequest",
    "ConnectionValidationResponse",
    "Event",
    "MessageTooBig",
    "SearchRequest",
    "SearchResponse",
]


# ---------------------------------------------------------------------- connection and discovery
@dataclass(frozen=True, slots=True, eq=False)
class Beacon(Event):
    """UDP: a server announces itself; ``change_count`` bumps when its PV list changes."""

    guid: bytes
    sequence: int = 0
    change_count: int = 0
    address: str = "0.0.0.0"
    port: int = 5075
    protocol: str = "tcp"
    flags: int = 0
    status: VariantValue | None = None


@dataclass(frozen=True, slots=True, eq=False)
class ConnectionValidationRequest(Event):
    """Server -> client, first application message: which auth methods the server takes."""

    auth_methods: tuple[str, ...] = ("anonymous", "ca")
    buffer_size: int = 0x10000
    registry_size: int = 0x7FFF


#: the type of the "ca" method's credentials: the user and host names the peer states (shared:
#: types are immutable, and a server reads one per connect)
CA_CREDENTIALS = Structure([("user", "s"), ("host", "s")])


@dataclass(frozen=True, slots=True, eq=False)
class ConnectionValidationResponse(Event):
    """Client -> server: the chosen auth method and its data (``ca``: user and host)."""

    auth_method: str = "anonymous"
    auth_data: VariantValue | None = None
    buffer_size: int = 0x10000
    registry_size: int = 0x7FFF
    qos: int = 0

    @classmethod
    def ca(cls, user: str, host: str) -> ConnectionValidationResponse:
        """The "ca" method: the peer states its user and host names (no proof)."""
        return cls("ca", VariantValue(CA_CREDENTIALS, {"user": user, "host": host}))

    def _auth_field(self, name: str) -> str | None:
        d = self.auth_data
        if d is None or not isinstance(d.value, dict):
            return None
        v = d.value.get(name)
        return v if isinstance(v, str) else None

    @property
    def user(self) -> str | None:
        """The user name the peer claims (``ca`` method), else None."""
        return self._auth_field("user")

    @property
    def host(self) -> str | None:
        return self._auth_field("host")


@dataclass(frozen=True, slots=True, eq=False)
class SearchRequest(Event):
    """Who has these channels? ``channels`` are (cid, name) pairs; empty = list servers."""

    sequence: int
    channels: tuple[tuple[int, str], ...] = ()
    response_address: str = "0.0.0.0"
    response_port: int = 0
    reply_required: bool = False
    unicast: bool = False
    protocols: tuple[str, ...] = ("tcp",)


@dataclass(frozen=True, slots=True, eq=False)
class SearchResponse(Event):
    """A server's answer: it has the channels ``cids`` (``found``) at address:port."""

    guid: bytes
    sequence: int
    address: str = "0.0.0.0"
    port: int = 5075
    found: bool = True
    cids: tuple[int, ...] = ()
    protocol: str = "tcp"


@dataclass(frozen=True, slots=True, eq=False)
class MessageTooBig(Event):
    """Server side: a client's request over ``max_message_size`` was skipped, unbuffered.
    Send ``reply`` (the request's error response, which says so) and the client sees why:
    the connection stays up. (A client receiving a reply over its limit gets that reply as an
    error response event instead: a get fails once, with a message saying so.)"""

    command: int
    sid: int
    ioid: int
    size: int
    limit: int
    reply: Any = None
    destroy: bool = False


# ------------------------------------------------------------------------------ transport
@dataclass(frozen=True, slots=True, eq=False)
class ConnectionClosed(Event):
    """The peer closed the stream (``receive_data(b"")``)."""
