"""ServerConnection / ClientConnection: the pvAccess TCP state machines, without I/O.

``receive_data(bytes)`` buffers, ``next_event()`` returns an event or ``NEED_DATA``,
``send(event)`` returns the bytes to write. The connections track the handshake, channels
(cid/sid), operations (ioid) and their states (tables in ``_state.py``), the per-direction
type caches and the byte order, and refuse what the state does not allow: a bad peer gets
RemoteProtocolError (sticky: the connection stays in ERROR), a bad local ``send`` gets
LocalProtocolError (the state is left as it was).

The protocol has no acknowledgement of destroy, so a message for a channel or operation that
this side destroyed a moment ago is normal: such messages are decoded (to keep the type cache
right) and dropped. Responses the local user sends for them become ``b""``.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Iterator, Mapping
from typing import Any

from ._codec import Codec
from ._constants import HEADER_SIZE, MAGIC, PROTOCOL_VERSION, Command
from ._errors import (
    LOW_LEVEL_ERRORS,
    DecodeError,
    LimitExceededError,
    LocalProtocolError,
    RemoteProtocolError,
)
from ._events import ConnectionClosed, Event
from ._generate import READER_BY_SUB, read_message, write_payload
from ._header import (
    FLAG_BIG,
    FLAG_CONTROL,
    FLAG_FROM_SERVER,
    FLAG_SEG_FIRST,
    FLAG_SEG_LAST,
    FLAG_SEG_MIDDLE,
    FLAG_TOO_BIG,
    HEADER_STRUCT,
    Framer,
    encode_header,
)
from ._op_events import (
    AuthNZ,
    Beacon,
    CancelRequest,
    ConnectionValidated,
    CreateChannelRequest,
    CreateChannelResponse,
    DestroyChannel,
    DestroyRequest,
    Echo,
    Message,
    OriginTag,
    SearchRequest,
    SearchResponse,
    SetByteOrder,
)
from ._operations import TOMBSTONES, ChannelInfo, Operations, RequestInfo, refusal
from ._state import (
    HANDSHAKE,
    OPENERS,
    OPERATIONS,
    ConnectionState,
    Role,
)
from ._table import CONTROL, MESSAGES, OP_COMMANDS
from ._typecodec import TypeRecvCache, TypeSendCache


class _Sentinel:
    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


NEED_DATA: Any = _Sentinel("NEED_DATA")
"""Returned by ``next_event()`` when the buffered bytes hold no complete message."""


#: pvxs and pvAccessCPP take messages as big as memory allows; a message over this is read
#: past unbuffered and answered with an error, so the default only has to fit real data
DEFAULT_MAX_MESSAGE_SIZE = 256 * 1024 * 1024
DEFAULT_MAX_DEPTH = 32
_CONTROL_OF = {cmd: cls for cls, (cmd, _) in CONTROL.items()}
#: who sends each message (the table's "sender")
_SENT_BY: dict[type, str] = {row.event: row.sender for row in MESSAGES}
#: messages taken in any state once validated, not about a channel or operation
_ANY_TIME = frozenset({Echo, Message, SearchRequest, SearchResponse, AuthNZ})
_CHANNEL_EVENTS = frozenset({CreateChannelRequest, CreateChannelResponse, DestroyChannel})
#: flags of a message that is not read as an operation's (see _receive)
_NOT_AN_OPERATION = FLAG_TOO_BIG | FLAG_CONTROL
_VALIDATED = ConnectionState.VALIDATED  # (a constant: an enum member's lookup costs ~0.1 us)
_DESTROY = int(Command.DESTROY_REQUEST)  # (its reader by byte order:)
_READ_DESTROY = [read for be in (False, True) if (read := READER_BY_SUB[_DESTROY, False, be][0])]
_IGNORED_COMMANDS = frozenset({int(Command.ACL_CHANGE), int(Command.MULTIPLE_DATA)})
_UDP_ONLY = frozenset({int(Command.BEACON), int(Command.ORIGIN_TAG)})


class BaseConnection(Operations):
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
        segment_size: int | None = None,
        max_fields: int = 20_000,
        max_elements: int = 1_000_000,
    ) -> None:
        if max_message_size < 16:
            raise LocalProtocolError("max_message_size must be at least 16 bytes")
        if segment_size is not None and segment_size < 8:
            raise LocalProtocolError("segment_size must be at least 8 bytes")
        self.state = ConnectionState.IDLE
        #: byte order we send in (a client adopts the server's from SetByteOrder)
        self.big_endian = big_endian
        self.max_channels = max_channels
        self.max_requests = max_requests
        self.segment_size = segment_size
        self._server = self.role is Role.SERVER
        self._me, self._peer = ("server", "client") if self._server else ("client", "server")
        #: the header flags of every message this side sends
        self._flags = FLAG_FROM_SERVER if self._server else 0
        self._framer = Framer(max_message_size, expect_from_server=not self._server)
        self._tx = Codec(
            big_endian=big_endian,
            max_depth=max_depth,
            use_numpy=use_numpy,
            send_cache=TypeSendCache() if cache_types else None,
        )
        self._rx = Codec(
            max_depth=max_depth,
            use_numpy=use_numpy,
            recv_cache=TypeRecvCache(),
            max_fields=max_fields,
            max_elements=max_elements,
        )
        self._pending: deque[Event] = deque()
        self._error: RemoteProtocolError | None = None
        self._eof = False
        self._closed_reported = False
        # server: sid -> channel (and cid -> channel while creating); client: cid -> channel
        self._channels: dict[int, ChannelInfo] = {}
        self._creating: dict[int, ChannelInfo] = {}
        # the other id of live channels: server cid -> sid, client sid -> cid
        self._other_ids: dict[int, int] = {}
        self._dead_channels: OrderedDict[int, None] = OrderedDict()
        self._requests: dict[int, RequestInfo] = {}
        self._dead_requests: OrderedDict[int, RequestInfo] = OrderedDict()
        self.bytes_sent = 0
        # the role's handshake tables, shared read-only by its connections
        self._send_table, self._recv_table = HANDSHAKE[self.role]

    # ----------------------------------------------------------------------- public
    @property
    def channels(self) -> Mapping[int, ChannelInfo]:
        """Live channels keyed by sid (server) or cid (client)."""
        return self._channels

    @property
    def requests(self) -> Mapping[int, RequestInfo]:
        """Live operations keyed by ioid."""
        return self._requests

    @property
    def bytes_received(self) -> int:
        return self._framer.bytes_received

    @property
    def buffered(self) -> int:
        """Bytes received and not yet turned into events (bounded by max_message_size)."""
        return self._framer.buffered

    def receive_data(self, data: bytes | bytearray | memoryview) -> None:
        """Buffer bytes from the peer; ``b""`` means the peer closed the stream."""
        if self._error is not None:
            raise self._error
        if not data:
            self._eof = True
            return
        if self._eof:
            raise LocalProtocolError("receive_data after the end of the stream")
        self._framer.feed(data)

    def next_event(self) -> Event | Any:
        """The next event, or NEED_DATA. Raises RemoteProtocolError on bad input (sticky)."""
        if self._error is not None:
            raise self._error
        if self._pending:
            return self._pending.popleft()
        framer = self._framer
        if framer.idle and not self._eof:
            return NEED_DATA  # everything received is consumed (no call into the framer)
        while True:
            try:
                msg = framer.next_message()
            except RemoteProtocolError as exc:
                self._fail(exc)
            if msg is None:
                if self._eof and not self._closed_reported:
                    self._closed_reported = True
                    self.state = ConnectionState.CLOSED
                    return ConnectionClosed()
                return NEED_DATA
            events = self._decoded(*msg)
            if events:
                self._pending.extend(events[1:])
                return events[0]

    def _decoded(self, cmd: int, flags: int, size: int, payload: bytes) -> list[Event]:
        """The events of one whole message, applied to the state; bad input fails the
        connection (sticky RemoteProtocolError)."""
        try:
            if cmd in OP_COMMANDS and not flags & _NOT_AN_OPERATION:
                # an operation's message (most of what a server reads): no further dispatch
                self._rx.big_endian = flags >= FLAG_BIG  # (the byte-order flag: top bit)
                if self.state is not _VALIDATED:
                    self._require_validated(cmd)
                if self._server:
                    return self._server_op(cmd, payload)
                return self._client_op(cmd, payload)
            if cmd == _DESTROY and self._server and not flags & _NOT_AN_OPERATION:  # (p4p: per get)
                ev = _READ_DESTROY[flags >= FLAG_BIG](payload, self._rx, None)
                return [ev] if self._end_or_cancel(ev) else []
            return self._receive(cmd, flags, size, payload)
        except RemoteProtocolError as exc:
            return self._fail(exc)  # type: ignore[no-any-return]
        except LocalProtocolError as exc:  # an event built from wire data was invalid
            return self._fail(DecodeError(str(exc)))  # type: ignore[no-any-return]
        except LOW_LEVEL_ERRORS as exc:
            return self._fail(DecodeError(f"truncated or malformed message: {exc!r}"))  # type: ignore[no-any-return]

    def events(self) -> Iterator[Event]:
        """Every event available now (stops at NEED_DATA)."""
        while (ev := self.next_event()) is not NEED_DATA:
            yield ev
            if isinstance(ev, ConnectionClosed):
                return

    def send(self, event: Event) -> bytes:
        """Bytes for one event; LocalProtocolError if the state does not allow it."""
        if self._error is not None:
            raise LocalProtocolError(f"connection is in ERROR after: {self._error}")
        if not isinstance(event, Event):
            raise LocalProtocolError(f"send() takes an Event, not {event!r:.60}")
        ctl = CONTROL.get(type(event))
        if ctl is not None:
            return self._send_control(event, ctl)
        commit = self._check_send(event)
        if commit is None:
            return b""
        event, op = commit
        tx = self._tx
        tx.big_endian = self.big_endian
        out = bytearray(HEADER_SIZE)
        cmd = write_payload(event, tx, op, out)
        self._commit_send(event)
        data = self._framed(cmd, out)
        self.bytes_sent += len(data)
        return data

    # ------------------------------------------------------------------- framing
    def _framed(self, cmd: int, out: bytearray) -> bytes:
        """The message whose payload follows ``HEADER_SIZE`` free bytes in ``out``: its
        header written there (or the payload cut into segments). A big message is handed over
        as the bytearray it was built in: copying megabytes would cost more than encoding."""
        be = self.big_endian
        seg = self.segment_size
        size = len(out) - HEADER_SIZE
        if seg is None or size <= seg:
            HEADER_STRUCT[be].pack_into(
                out, 0, MAGIC, PROTOCOL_VERSION, self._flags | (FLAG_BIG if be else 0), cmd, size
            )
            return out if size > 65536 else bytes(out)  # type: ignore[return-value]
        payload = memoryview(out)[HEADER_SIZE:]
        segments = bytearray()
        for i in range(0, size, seg):
            part = payload[i : i + seg]
            f = FLAG_SEG_FIRST if i == 0 else FLAG_SEG_LAST if i + seg >= size else FLAG_SEG_MIDDLE
            segments += encode_header(cmd, self._flags | f, len(part), be)
            segments += part
        return bytes(segments)

    def _send_control(self, event: Event, ctl: tuple[int, str]) -> bytes:
        value = getattr(event, ctl[1]) if ctl[1] else 0
        if isinstance(event, SetByteOrder):
            if not self._server:
                raise LocalProtocolError("only the server sends SetByteOrder")
            self.big_endian = event.big_endian
        be = self.big_endian
        data = encode_header(ctl[0], self._flags | FLAG_CONTROL, value, be)
        self.bytes_sent += len(data)
        return data

    def _fail(self, exc: RemoteProtocolError) -> Any:
        self._error = exc
        self.state = ConnectionState.ERROR
        raise exc

    # ------------------------------------------------------------------- receiving
    def _receive(self, cmd: int, flags: int, size: int, payload: bytes) -> list[Event]:
        if flags & FLAG_TOO_BIG:
            return self._too_big(cmd, flags, size, payload)
        if flags & FLAG_CONTROL:
            cls = _CONTROL_OF.get(cmd)
            if cls is None:
                return []  # unknown control messages carry nothing: ignore, like pvxs
            if cls is not SetByteOrder:
                return [cls(size)]
            be = bool(flags & FLAG_BIG)
            if not self._server:
                self.big_endian = be
            return [SetByteOrder(be)]
        self._rx.big_endian = bool(flags & FLAG_BIG)  # (operations were read by _decoded)
        if cmd in _IGNORED_COMMANDS:
            return []
        if cmd in _UDP_ONLY:
            raise DecodeError(f"UDP-only command 0x{cmd:02x} on a TCP connection")
        events = read_message(cmd, payload, self._rx, not self._server)
        return list(filter(self._accept, events))

    def _accept(self, ev: Event) -> bool:
        """Apply a received non-operation event to the state; False drops it silently."""
        t = ev.__class__
        if _SENT_BY[t] == self._me:
            raise RemoteProtocolError(
                f"a {self._peer} sent {t.__name__} (only a {_SENT_BY[t]} does)"
            )
        if t is DestroyRequest or t is CancelRequest:
            return self._end_or_cancel(ev)  # type: ignore[arg-type]
        table = self._recv_table.get(t)
        if table is not None:
            new = table.get(self.state)
            if new is None:
                raise RemoteProtocolError(
                    f"{type(ev).__name__} not expected in state {self.state.value}"
                )
            if isinstance(ev, ConnectionValidated) and not ev.status.success:
                return True
            self.state = new
            return True
        if t in _ANY_TIME:
            return True
        self._require_validated(0)
        if isinstance(ev, CreateChannelRequest):
            if ev.cid in self._creating or ev.cid in self._other_ids:
                raise RemoteProtocolError(f"channel cid {ev.cid} is already in use")
            if len(self._channels) + len(self._creating) >= self.max_channels:
                raise LimitExceededError(f"more than {self.max_channels} channels (max_channels)")
        elif isinstance(ev, CreateChannelResponse):
            if ev.cid not in self._creating:
                if ev.cid in self._dead_channels:
                    return False
                raise RemoteProtocolError(f"create channel response for unknown cid {ev.cid}")
        elif isinstance(ev, DestroyChannel):
            key = ev.sid if self._server else ev.cid
            if key not in self._channels:
                if key in self._dead_channels:
                    return not self._server  # the server's echo confirms our destroy
                raise RemoteProtocolError(f"destroy of unknown channel sid {ev.sid} cid {ev.cid}")
        else:  # pragma: no cover
            raise RemoteProtocolError(f"unexpected {t.__name__}")
        self._apply_channel(ev)
        return True

    def _end_or_cancel(self, ev: DestroyRequest | CancelRequest) -> bool:
        """A received DestroyRequest or CancelRequest (a server reads one per p4p get)."""
        if self.state is not _VALIDATED:
            self._require_validated(0)
        req = self._requests.get(ev.ioid)
        if req is None:
            if ev.ioid in self._dead_requests:
                return False
            raise RemoteProtocolError(f"{type(ev).__name__} for unknown ioid {ev.ioid}")
        if req.sid != ev.sid:
            raise RemoteProtocolError(
                f"{type(ev).__name__}: ioid {ev.ioid} is not on channel sid {ev.sid}"
            )
        self._step(req, OPERATIONS[type(ev)])  # (neither has a status or a destroy flag)
        return True

    def _apply_channel(self, ev: Event) -> None:
        """A channel's creation or destruction, sent or received (checked already): each side
        keys its channels by its own id (server: sid, client: cid) and maps the other's."""
        if isinstance(ev, CreateChannelRequest):
            self._creating[ev.cid] = ChannelInfo(ev.cid, ev.name)
        elif isinstance(ev, CreateChannelResponse):
            ch = self._creating.pop(ev.cid)
            if ev.status.success:
                ch.sid = ev.sid
                key, other = (ev.sid, ev.cid) if self._server else (ev.cid, ev.sid)
                self._channels[key] = ch
                self._other_ids[other] = key
        elif isinstance(ev, DestroyChannel):
            key = ev.sid if self._server else ev.cid
            if key in self._channels:
                self._drop_channel(key)

    def _drop_channel(self, key: int) -> None:
        ch = self._channels.pop(key)
        self._other_ids.pop((ch.cid if self._server else ch.sid) or 0, None)
        self._dead_channels[key] = None
        while len(self._dead_channels) > TOMBSTONES:
            self._dead_channels.popitem(last=False)
        for ioid in [i for i, r in self._requests.items() if r.sid == ch.sid]:
            self._drop_request(ioid)

    # ------------------------------------------------------------------ sending
    def _check_send(self, ev: Event) -> tuple[Event, RequestInfo | None] | None:
        """Validate ``ev`` against the state (no changes yet). None = drop silently."""
        t = type(ev)
        if t in _SERVER_ROWS and self._server and self.state is _VALIDATED:
            return self._check_server_send(ev)  # (a server's reply: what it sends most)
        name = t.__name__
        if _SENT_BY.get(t, self._peer) == self._peer:
            raise LocalProtocolError(f"a {self.role.value} does not send {name}")
        table = self._send_table.get(t)
        if table is not None:
            if self.state not in table:
                raise LocalProtocolError(f"cannot send {name} in state {self.state.value}")
            return ev, None
        if t is Beacon or t is OriginTag:
            raise LocalProtocolError(f"{name} is a UDP message: use Discovery")
        if t in _ANY_TIME:
            return ev, None
        if self.state is not _VALIDATED:
            raise LocalProtocolError(f"cannot send {name} before the connection is validated")
        if self._server:
            return self._check_server_send(ev)
        return self._check_client_send(ev)

    def _check_server_send(self, ev: Event) -> tuple[Event, RequestInfo | None] | None:
        t = type(ev)
        if isinstance(ev, CreateChannelResponse):
            if ev.cid not in self._creating:
                raise LocalProtocolError(f"no pending create channel for cid {ev.cid}")
            if ev.status.success and ev.sid in self._channels:
                raise LocalProtocolError(f"sid {ev.sid} is already in use")
            return ev, None
        if isinstance(ev, DestroyChannel):
            if ev.sid in self._channels or ev.sid in self._dead_channels:
                return ev, None
            raise LocalProtocolError(f"no channel sid {ev.sid}")
        ioid = ev.ioid  # type: ignore[attr-defined]
        req = self._requests.get(ioid)
        if req is None:
            if ioid in self._dead_requests:
                return None  # the client destroyed it meanwhile
            raise LocalProtocolError(f"no operation ioid {ioid}")
        row = OPERATIONS[t]  # (every other message a server sends is checked before)
        why = refusal(req, row, t)
        if why is not None:
            if row.drop_if_cancelled and req.cancelled and req.command == row.command:
                return None  # the client cancelled it meanwhile
            raise LocalProtocolError(why)
        if row.ends_if_destroy and req.last and not getattr(ev, "destroy", True):
            ev = ev._replaced(destroy=True)  # the request destroyed the operation: say so
        return ev, req

    def _check_client_send(self, ev: Event) -> tuple[Event, RequestInfo | None] | None:
        t = type(ev)
        if isinstance(ev, CreateChannelRequest):
            if ev.cid in self._creating or ev.cid in self._channels:
                raise LocalProtocolError(f"cid {ev.cid} is already in use")
            return ev, None
        if isinstance(ev, DestroyChannel):
            ch = self._channels.get(ev.cid)
            if ch is None or ch.sid != ev.sid:
                raise LocalProtocolError(f"no connected channel cid {ev.cid} sid {ev.sid}")
            return ev, None
        sid, ioid = ev.sid, ev.ioid  # type: ignore[attr-defined]
        if t in OPENERS:
            if sid not in self._other_ids:
                raise LocalProtocolError(f"no connected channel with sid {sid}")
            if ioid in self._requests:
                raise LocalProtocolError(f"ioid {ioid} is already in use")
            return ev, None
        req = self._requests.get(ioid)
        if req is None or req.sid != sid:
            raise LocalProtocolError(f"no operation ioid {ioid} on channel sid {sid}")
        row = OPERATIONS[t]  # (every other message a client sends is checked before)
        why = refusal(req, row, t)
        if why is not None:
            raise LocalProtocolError(why)
        return ev, req

    def _commit_send(self, ev: Event) -> None:
        """Apply a sent event to the state (after it encoded without error)."""
        t = type(ev)
        row = OPERATIONS.get(t)
        if row is not None:  # a message on an operation (inits, which open one, are not rows)
            req = self._requests.get(ev.ioid)  # type: ignore[attr-defined]
            if req is not None:
                self._apply(req, row, ev)
            return
        table = self._send_table.get(t)
        if table is not None:
            if isinstance(ev, ConnectionValidated) and not ev.status.success:
                return
            self.state = table[self.state]
            return
        if t in _CHANNEL_EVENTS:
            self._apply_channel(ev)
            return
        command = OPENERS.get(t)
        if command is not None:  # a client opening an operation
            queue_size = getattr(ev, "queue_size", None)
            self._add_request(command, ev.sid, ev.ioid, queue_size)  # type: ignore[attr-defined]


#: the operation table's rows a server sends
_SERVER_ROWS = frozenset(t for t, row in OPERATIONS.items() if row.by is Role.SERVER)


class ClientConnection(BaseConnection):
    """The client side of one TCP connection."""

    role = Role.CLIENT
