"""ServerConnection / ClientConnection: the pvAccess TCP state machines, without I/O.

``receive_data(bytes)`` buffers, ``next_event()`` returns an event or ``NEED_DATA``,
``send(event)`` returns the bytes to write. The connections track the handshake, channels
(cid/sid), operations (ioid) and their states, the per-direction type caches and the byte order,
and refuse what the state does not allow: a bad peer gets RemoteProtocolError (sticky: the
connection stays in ERROR), a bad local ``send`` gets LocalProtocolError (the state is left as
it was).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from ._constants import Command
from ._events import Event
from ._types import FieldDesc, Structure


class _Sentinel:
    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


NEED_DATA: Any = _Sentinel("NEED_DATA")
"""Returned by ``next_event()`` when the buffered bytes hold no complete message."""


class Role(enum.Enum):
    CLIENT = "client"
    SERVER = "server"


class ConnectionState(enum.Enum):
    """Handshake states; the same names on both sides (see docs/pva-protocol.md)."""

    IDLE = "idle"
    VALIDATION_REQUESTED = "validation requested"
    VALIDATION_ANSWERED = "validation answered"
    VALIDATED = "validated"
    CLOSED = "closed"
    ERROR = "error"


class ChannelState(enum.Enum):
    CREATING = "creating"
    CONNECTED = "connected"


class RequestState(enum.Enum):
    INIT_PENDING = "init pending"
    READY = "ready"
    EXECUTING = "executing"
    RUNNING = "running"  # a started monitor


@dataclass
class ChannelInfo:
    cid: int
    name: str
    sid: int | None = None
    state: ChannelState = ChannelState.CREATING


@dataclass
class RequestInfo:
    ioid: int
    sid: int
    command: Command
    state: RequestState = RequestState.INIT_PENDING
    type: FieldDesc | None = None
    get_type: Structure | None = None
    queue_size: int | None = None
    last: bool = False
    subcommand: int = 0
    value: Any = None
    get_value: Any = None
    extra: dict[str, Any] = field(default_factory=dict)


DEFAULT_MAX_MESSAGE_SIZE = 64 * 1024 * 1024
DEFAULT_MAX_DEPTH = 32


class _Connection:
    role: Role

    def __init__(
        self,
        *,
        big_endian: bool = False,
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
        max_depth: int = DEFAULT_MAX_DEPTH,
        max_channels: int = 65536,
        max_requests: int = 65536,
        use_numpy: bool = True,
        cache_types: bool = False,
    ) -> None:
        raise NotImplementedError

    state: ConnectionState
    big_endian: bool

    @property
    def channels(self) -> Mapping[int, ChannelInfo]:
        """Live channels keyed by sid (server) or cid (client)."""
        raise NotImplementedError

    @property
    def requests(self) -> Mapping[int, RequestInfo]:
        """Live operations keyed by ioid."""
        raise NotImplementedError

    def receive_data(self, data: bytes) -> None:
        """Buffer bytes from the peer; ``b""`` means the peer closed the stream."""
        raise NotImplementedError

    def next_event(self) -> Event | Any:
        """The next event, or NEED_DATA. Raises RemoteProtocolError on bad input (sticky)."""
        raise NotImplementedError

    def events(self) -> Iterator[Event]:
        """Every event available now (stops at NEED_DATA)."""
        raise NotImplementedError

    def send(self, event: Event) -> bytes:
        """Bytes for one event; LocalProtocolError if the state does not allow it."""
        raise NotImplementedError

    def send_many(self, events: Iterable[Event]) -> bytes:
        raise NotImplementedError


class ServerConnection(_Connection):
    """The server side of one TCP connection."""

    role = Role.SERVER

    def initiate(self, auth_methods: Iterable[str] = ("anonymous", "ca")) -> bytes:
        """The server's opening bytes: SetByteOrder then ConnectionValidationRequest."""
        raise NotImplementedError


class ClientConnection(_Connection):
    """The client side of one TCP connection."""

    role = Role.CLIENT
