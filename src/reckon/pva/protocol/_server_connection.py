"""The server side of a connection: what only a server does on top of :class:`BaseConnection`.

A server mostly reads one whole request per read: :meth:`ServerConnection.receive_message`
skips the framer for it (decoded, checked and applied by the same readers and tables). Values
posted to many subscribers are encoded once (:class:`PreparedUpdate`) and sent behind a head
of each message's own, written by the same generated writers.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from typing import Any

from ._bitset import BitSet
from ._connection import BaseConnection
from ._constants import HEADER_SIZE, MAGIC, PROTOCOL_VERSION, Command
from ._errors import LocalProtocolError
from ._event import NO_BITS, Event
from ._generate import write_around, write_payload
from ._header import FLAG_BIG, FLAG_CONTROL, FLAG_FROM_SERVER, FLAG_SEG_MASK, HEADER_STRUCT
from ._op_events import (
    ConnectionValidationRequest,
    GetInitResponse,
    GetResponse,
    MonitorUpdate,
    PutInitResponse,
    SetByteOrder,
)
from ._operations import RequestInfo
from ._prepared import PreparedUpdate
from ._state import OPERATIONS, ConnectionState, RequestState, Role
from ._status import Status
from ._wire import U32

_GET = int(Command.GET)
#: (as constants: an enum member costs a lookup through its class's __getattr__, ~0.1 us)
_VALIDATED, _EXECUTING = ConnectionState.VALIDATED, RequestState.EXECUTING
#: prepared replies kept per connection
_MAX_REPLIES = 32
_SERVER_FLAGS = (FLAG_FROM_SERVER, FLAG_FROM_SERVER | FLAG_BIG)
#: (is it a get's) -> the init response's class and its row of the operation table
_INITS = [(cls, OPERATIONS[cls]) for cls in (PutInitResponse, GetInitResponse)]
_GET_RESPONSE_ROW = OPERATIONS[GetResponse]
_UPDATE_ROW = OPERATIONS[MonitorUpdate]
#: the replies prepared around a value (ioid a hole, status OK, no overrun)
_TEMPLATES = {
    GetResponse: GetResponse.unchecked(0, Status.OK, None, NO_BITS, False),
    MonitorUpdate: MonitorUpdate.unchecked(0, None, NO_BITS, NO_BITS),
}
_MONITOR = int(Command.MONITOR)
#: a response's header and the ioid it starts with (every response's layout does, see
#: ._table: a hole to fill), written at once
_HEAD_IOID = {be: struct.Struct(HEADER_STRUCT[be].format + "I") for be in (False, True)}
_HEAD_LE, _SIZE_BE = HEADER_STRUCT[False], U32[True]
_NOT_ONE_REQUEST = FLAG_CONTROL | FLAG_SEG_MASK | FLAG_FROM_SERVER


class ServerConnection(BaseConnection):
    """The server side of one TCP connection."""

    role = Role.SERVER

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        #: prepared replies: (event class, byte order, id(type)) -> (type, bytes); a successful
        #: GET reply's head is (GetResponse, byte order, 0)'s
        self._replies: dict[tuple[type, bool, int], tuple[Any, bytes]] = {}

    def receive_message(self, data: bytes | memoryview) -> list[Event] | None:
        """Take ``data`` (may be a reused buffer: copied once) when it is exactly one whole
        unsegmented request with nothing buffered or pending ahead of it (a server's usual
        read): its events, as ``receive_data`` then :meth:`next_event` give them, for the
        caller to handle (``[]``: a late message). None (other bytes) changes nothing: give
        them to :meth:`receive_data`. A bad message raises RemoteProtocolError (sticky)."""
        n = len(data) - HEADER_SIZE
        framer = self._framer
        if n < 0 or self._error is not None or self._pending or self._eof or not framer.idle:
            return None
        magic, version, flags, cmd, size = _HEAD_LE.unpack_from(data)
        if flags >= FLAG_BIG:  # (the byte-order flag: the size is big-endian)
            size = _SIZE_BE.unpack_from(data, 4)[0]
        if (
            magic != MAGIC
            or version == 0  # header version 0 is invalid: the framer says so
            or flags & _NOT_ONE_REQUEST
            or size != n
            or n > framer.max_message_size
        ):
            return None
        framer.bytes_received += n + HEADER_SIZE
        return self._decoded(cmd, flags, n, bytes(data[HEADER_SIZE:]))

    def initiate(self, auth_methods: Iterable[str] = ("anonymous", "ca")) -> bytes:
        """The server's opening bytes: SetByteOrder then ConnectionValidationRequest."""
        return self.send(SetByteOrder(self.big_endian)) + self.send(
            ConnectionValidationRequest(tuple(auth_methods))
        )

    def send_init_ok(self, ioid: int, command: int, type: Any) -> bytes | bytearray:
        """The bytes of a successful get (``command`` GET) or put (PUT) init response with
        ``type``: ``send(GetInitResponse(ioid, type=type))`` without checking the event's
        fields (the server's own type and an ioid it received).

        p4p's client opens an operation for every get and put, so this is a prepared reply:
        the generated writer's bytes for ``type`` with the ioid left as a hole, kept per
        connection (bounded) while what they depend on (byte order, no segmenting, no type
        cache) holds; the operation table's row checks and applies the step as ``send`` does.
        """
        cls, row = _INITS[command == _GET]
        req = self._requests.get(ioid)
        if (
            req is None
            or self.state is not _VALIDATED  # (so no error either)
            or self.segment_size
            or self._tx.send_cache is not None
            or req.state not in row.before
            or req.command != command
        ):
            return self.send(cls.unchecked(ioid, Status.OK, type))  # (raises what is wrong)
        be = self.big_endian
        known = self._replies.get(key := (cls, be, id(type)))
        if known is None or known[0] is not type:
            template = cls.unchecked(0, Status.OK, type)
            out = bytearray(HEADER_SIZE)
            self._tx.big_endian = be
            cmd = write_payload(template, self._tx, None, out)
            if len(self._replies) >= _MAX_REPLIES:
                self._replies.clear()
            known = self._replies[key] = (type, bytes(self._framed(cmd, out)))
        out = bytearray(known[1])
        U32[be].pack_into(out, HEADER_SIZE, ioid)  # (the ioid's hole)
        req.type = type  # (what the init agrees: get_type stays None)
        self._step(req, row)
        self.bytes_sent += len(out)
        return out

    def send_get_update_pieces(self, ioid: int, update: PreparedUpdate) -> Sequence[Any] | None:
        """The reply to a GET whose value was encoded once (a PV nobody posted to since the
        last get costs no encoding at all), as buffers for a vectored write (a big array is
        sent from its buffer); or None when the operation is not a GET executing without
        destroying itself on an unsegmented connection, or is of another type: then send a
        :class:`GetResponse` (the general path decides, with all its checks)."""
        req = self._requests.get(ioid)
        if (
            req is None
            or req.command != _GET
            or req.state is not _EXECUTING
            or req.last
            or self.segment_size
            or self.state is not _VALIDATED  # (so no error either)
            or (req.type is not update.type and req.type != update.type)
        ):
            return None
        self._step(req, _GET_RESPONSE_ROW)
        made = update.messages.get((self.big_endian, ioid, GetResponse))  # (a kept get's)
        if made is None:
            return self._prepared(GetResponse, req, update)[1]
        self.bytes_sent += made[0]
        return made[1]

    def _prepared(
        self, cls: type, req: RequestInfo, update: PreparedUpdate, tail: bytes | None = None
    ) -> tuple[int, tuple[Any, ...]]:
        """A prepared reply carrying ``update`` (a GET's or a monitor's), as (its size, its
        buffers): the generated writer's head (ioid, subcommand, status OK) with the ioid as a
        hole, kept per connection and byte order, then the value's shared pieces, then its
        tail (no overrun, or ``tail``). Checked already; the caller applies the table's row.
        Without ``tail``, ``update`` keeps the message per byte order, ioid and kind: for every
        get of it on that ioid, and every connection whose monitor has that ioid; for another
        ioid, a copy with that ioid (p4p opens an operation, with a new ioid, for every get)."""
        be, ioid, messages = self.big_endian, req.ioid, update.messages
        key = (be, ioid, cls)  # (not kept: the callers looked)
        if tail is None and (like := messages.get((be, cls))) is not None:
            head = bytearray(like[1][0])
            U32[be].pack_into(head, HEADER_SIZE, ioid)  # (the ioid's hole)
            made = messages[key] = like[0], (bytes(head), *like[1][1:])
            if len(messages) >= _MAX_REPLIES:
                messages.clear()
                messages[be, cls] = like
            self.bytes_sent += made[0]
            return made
        known = self._replies.get((cls, be, 0))
        if known is None:
            self._tx.big_endian = be
            head, after = bytearray(HEADER_SIZE), bytearray()
            write_around(_TEMPLATES[cls], self._tx, req, head, after)
            known = self._replies[cls, be, 0] = (bytes(after), bytes(head))
        end, out = known[0] if tail is None else tail, bytearray(known[1])
        body, pieces = update.encoded(be, None if self._tx.send_cache else self._tx)
        size = len(out) + body + len(end)
        cmd = _GET if cls is GetResponse else _MONITOR
        _HEAD_IOID[be].pack_into(
            out, 0, MAGIC, PROTOCOL_VERSION, _SERVER_FLAGS[be], cmd, size - HEADER_SIZE, ioid
        )
        self.bytes_sent += size
        if size < 65536:  # one buffer is cheaper to write
            made = size, (b"".join((out, *pieces, end)),)
        else:
            made = size, (bytes(out), *pieces, end) if end else (bytes(out), *pieces)
        if tail is None:
            if len(messages) >= _MAX_REPLIES:
                messages.clear()
            messages[key] = messages[be, cls] = made
        return made

    def send_update(self, ioid: int, update: PreparedUpdate, overrun: BitSet = NO_BITS) -> bytes:
        """A MonitorUpdate whose value was encoded once for all subscribers. Same rules as
        ``send(MonitorUpdate(...))``: the monitor must be initialised with the same type; an
        ioid the client just destroyed gives ``b""``."""
        return b"".join(self.send_update_pieces(ioid, update, overrun))

    def send_update_pieces(
        self, ioid: int, update: PreparedUpdate, overrun: BitSet = NO_BITS
    ) -> Sequence[Any]:
        """:meth:`send_update` as buffers for a vectored write (not to be mutated).

        On an unsegmented connection it is a prepared message (see :meth:`_prepared`: without
        overrun, the same bytes go to every connection whose monitor has that ioid, and most
        clients number their first monitor alike). The table's row allows it, changing no
        state. Else the general way applies."""
        req = self._requests.get(ioid)
        if req is None or (req.type is not update.type and req.type != update.type):
            if req is not None:
                raise LocalProtocolError(f"ioid {ioid} has another type than the update's")
        elif (
            req.state in _UPDATE_ROW.before
            and req.command == _MONITOR
            and self.state is _VALIDATED  # (not after an error)
            and not self.segment_size
        ):
            if overrun.mask:
                over = overrun.encode(self.big_endian)
                return self._prepared(MonitorUpdate, req, update, over)[1]
            made = update.messages.get((self.big_endian, ioid, MonitorUpdate))  # (most sends)
            if made is None:
                return self._prepared(MonitorUpdate, req, update)[1]
            self.bytes_sent += made[0]
            return made[1]
        return [self.send(MonitorUpdate.unchecked(ioid, update.value, update.changed, overrun))]
