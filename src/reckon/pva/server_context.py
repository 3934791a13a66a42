"""What the connections of one server share, without I/O framework: where PVs come from, the
limits every connection keeps, access control, channel ids, and the live sessions.

The asyncio server (:mod:`reckon.pva.server`) builds one and gives it to every connection's
:class:`~reckon.pva.server_session.ServerSession`; a session reaches the server through
nothing else.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, Protocol

from reckon.pva.config import ServerConfig
from reckon.pva.protocol import BitSet, Event, SearchRequest, Status
from reckon.pva.pv import Peer, SharedPV
from reckon.pva.selection import ALL

#: access(peer, pv name, operation) -> allowed; operation is "put", "rpc" or "process"
AccessHook = Callable[[Peer, str, str], bool]
#: answer(search, the searcher's address) -> the reply to send back on its connection, or None
SearchHook = Callable[[SearchRequest, tuple[str, int]], "Event | None"]


class PvSource(Protocol):
    """Where a server's PVs come from: a name to a PV, or None when there is none (a dict of
    :class:`SharedPV` is one)."""

    def get(self, name: str, /) -> SharedPV | None: ...

    def __contains__(self, name: object, /) -> bool: ...


class ByteSink(Protocol):
    """Where a session's bytes go (an asyncio transport is one): writes that never block, and
    reading paused while the peer does not take what was written."""

    def write(self, data: Any, /) -> None: ...

    def writelines(self, pieces: Any, /) -> None: ...

    def pause_reading(self) -> None: ...

    def resume_reading(self) -> None: ...

    def abort(self) -> None: ...

    def close(self) -> None: ...


class Scheduler(Protocol):
    """What a session needs of an event loop (an asyncio loop is one)."""

    def time(self) -> float: ...

    def call_soon(self, callback: Callable[[], object], /) -> Any: ...

    def call_at(self, when: float, callback: Callable[[], object], /) -> Any: ...

    def create_task(self, coro: Coroutine[Any, Any, Any], /) -> asyncio.Task[Any]: ...


@dataclass(slots=True)
class Op:
    """One operation (ioid) of a connection: its PV, its selection, what handlers keep."""

    sid: int
    pv: SharedPV
    name: str
    mask: int = ALL
    #: request_options(pvRequest), shared like ``sent`` (read-only: handlers get a copy)
    options: dict[str, str] = field(default_factory=dict)
    task: asyncio.Task[None] | None = None
    #: pv.assigned -> (what a full reply sends: sent_mask, its BitSet), shared by the
    #: operations of one selection (p4p makes one get operation per get)
    sent: dict[int, tuple[int, BitSet]] = field(default_factory=dict)
    #: the paths of the last put's changed mask (puts usually set the same fields each time)
    put_mask: int = -1
    put_paths: tuple[str, ...] = ()


@dataclass(eq=False, kw_only=True)
class ServerContext:
    """The state every connection of one server shares (see the module's docstring)."""

    pvs: PvSource
    config: ServerConfig
    access: AccessHook | None
    max_message_size: int
    send_high_water: int
    max_queue_size: int
    max_queue_bytes: int
    #: answers searches that arrive over TCP (set while the server's UDP responder runs)
    search: SearchHook | None = None
    sessions: set[Any] = field(default_factory=set)
    #: (id(pvRequest), id(type)) -> (pvRequest, type, mask, sent, options), for every connection:
    #: the protocol shares the decoded pvRequest of repeated INITs, so an INIT (p4p sends
    #: one per get and put) costs a lookup, and a new connection's first one too
    selections: dict[
        tuple[int, int], tuple[Any, Any, int, dict[int, tuple[int, BitSet]], dict[str, str]]
    ] = field(default_factory=dict)
    turn: Any = None  # (server_session's WriteTurn: the connections with updates to write)
    _sid: int = field(default=0, init=False)

    def refused(self, peer: Peer, name: str, operation: str) -> Status | None:
        """The error status of an ``operation`` ("put", "rpc", "process") on PV ``name`` the
        access hook refuses to ``peer``, or None when it is allowed."""
        if self.access is None or self.access(peer, name, operation):
            return None
        return Status.error(f"{operation} to {name} refused by access control")

    def next_sid(self) -> int:
        """A channel id no live channel of this server has (they wrap at 32 bits)."""
        self._sid = (self._sid + 1) & 0xFFFFFFFF or 1
        return self._sid
