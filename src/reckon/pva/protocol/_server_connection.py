"""The server side of a connection, with its hot paths.

p4p's client opens a new operation for every get and put (INIT, GET, DESTROY: three messages)
and every monitor update and get reply is a value message. These paths decode and encode
exactly those messages without the general decoder's layers; anything unusual (an error, a
segmented connection, a state they do not expect) returns None and takes the general path in
:class:`BaseConnection`, with all its checks.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from typing import Any

from ._bitset import BitSet
from ._connection import (
    FAST_INITS,
    INIT_EVENTS,
    LOW_LEVEL_ERRORS,
    MONITOR,
    NO_BITS,
    BaseConnection,
    ChannelInfo,
    RequestInfo,
)
from ._constants import HEADER_SIZE, MAGIC, PROTOCOL_VERSION, Command
from ._errors import (
    LocalProtocolError,
    ProtocolError,
)
from ._events import (
    CA_CREDENTIALS,
    ConnectionValidated,
    ConnectionValidationRequest,
    ConnectionValidationResponse,
    CreateChannelRequest,
    CreateChannelResponse,
    DestroyRequest,
    Event,
    Get,
    GetInitResponse,
    GetResponse,
    MonitorUpdate,
    Put,
    PutInitResponse,
    PutRead,
    PutReadResponse,
    PutResponse,
    SetByteOrder,
    maker,
)
from ._header import FLAG_BIG, FLAG_CONTROL, FLAG_FROM_SERVER, FLAG_SEG_MASK, HEADER_STRUCT
from ._messages import DESTROY, GET, GET_PUT, INIT
from ._prepared import PreparedUpdate
from ._state import (
    OPERATIONS,
    ConnectionState,
    RequestState,
    Role,
)
from ._status import Status
from ._typecodec import full_type_bytes
from ._types import Structure
from ._values import VariantValue
from ._wire import U32

_GET = int(Command.GET)
_PUT = int(Command.PUT)
_DESTROY_REQUEST = int(Command.DESTROY_REQUEST)
_VALIDATED = ConnectionState.VALIDATED
_INIT, _DESTROY_BIT, _GET_BIT, _GET_PUT_BIT = INIT, DESTROY, GET, GET_PUT
_U32x2 = {False: struct.Struct("<II"), True: struct.Struct(">II")}
_MISSING: Any = object()
_READY = RequestState.READY
#: the operation table's rows the shortcuts apply: an execution (GET, PUT) starts, is answered
#: (a successful response that does not destroy it), an init is answered, a destroy
_EXECUTE, _ANSWER = OPERATIONS[Get], OPERATIONS[GetResponse]
_INITIALISE, _DESTROY = OPERATIONS[GetInitResponse], OPERATIONS[DestroyRequest]
#: the steps :meth:`ServerConnection.receive_get` reports
GET_INIT, GET_EXECUTE, GET_DESTROY = 0, 1, 2
_INIT_MAKERS: dict[int, Any] = {cmd: maker(cls) for cmd, cls in INIT_EVENTS.items()}
_NEW_GET = maker(Get)
_NEW_DESTROY = maker(DestroyRequest)
_FAST_SERVER = frozenset({*FAST_INITS, _DESTROY_REQUEST})
#: the commands :meth:`ServerConnection.receive_get` takes: GET (an INIT or an execution), DESTROY
_GET_LIFE = frozenset({_GET, _DESTROY_REQUEST})
_VALIDATION = int(Command.CONNECTION_VALIDATION)
_CREATE_CHANNEL = int(Command.CREATE_CHANNEL)
_VALIDATED_CMD = int(Command.CONNECTION_VALIDATED)
_ASKED, _ANSWERED = ConnectionState.VALIDATION_REQUESTED, ConnectionState.VALIDATION_ANSWERED
#: a validation response's fixed part: buffer size, registry size, quality of service
_VALIDATION_HEAD = {False: struct.Struct("<IHH"), True: struct.Struct(">IHH")}
#: a channel creation's fixed part for one channel: count, cid, the name's one-byte size
_CREATE_HEAD = {False: struct.Struct("<HIB"), True: struct.Struct(">HIB")}
#: the "ca" credentials' type as pvxs and reckon send it: {string user; string host}
_CA_TYPE_BYTES = b"\x80\x00\x02\x04user\x60\x04host\x60"
#: header, cid, sid and status OK: a created channel's reply
_CREATED = {False: struct.Struct("<BBBBIIIB"), True: struct.Struct(">BBBBIIIB")}
#: the flags byte of a server's application message, by byte order
_SERVER_FLAGS = {False: FLAG_FROM_SERVER, True: FLAG_FROM_SERVER | FLAG_BIG}
#: a successful ConnectionValidated, by byte order: the same 9 bytes on every connection
_VALIDATED_OK = {
    be: HEADER_STRUCT[be].pack(MAGIC, PROTOCOL_VERSION, _SERVER_FLAGS[be], _VALIDATED_CMD, 1)
    + b"\xff"
    for be in (False, True)
}
_NEW_VALIDATION = maker(ConnectionValidationResponse)
_NEW_CREATE = maker(CreateChannelRequest)
#: (id of the type, byte order, command) -> (the type, a successful init response with ioid
#: 0): an init (p4p sends one per get and put) copies it and writes its ioid
_INIT_OK: dict[tuple[int, bool, int], tuple[Any, bytes]] = {}
#: (byte order, auth methods, segment size) -> (a new connection's opening bytes, the state
#: sending them leaves it in)
_OPENINGS: dict[tuple[bool, tuple[str, ...], int | None], tuple[bytes, ConnectionState]] = {}


class ServerConnection(BaseConnection):
    """The server side of one TCP connection."""

    role = Role.SERVER

    def receive_message(self, data: bytes) -> Event | None:
        """Take ``data`` if it is exactly one whole message of the kinds a client polling or
        writing a PV sends (an INIT whose pvRequest bytes were seen before, a GET, a PUT, a
        put's read, a destroy), or of a client's connect (its validation with the usual
        credentials, one channel's creation), and return its event: the connection is then as after
        ``receive_data(data)`` and ``next_event()`` gave that event, without the framer and
        the general decoder's layers. This is what a server mostly reads: one request per read.

        Anything else (other messages, more or fewer bytes, buffered bytes or events, a state
        or an operation the message does not fit, bytes that do not decode) returns None and
        changes nothing: give the bytes to :meth:`receive_data` as usual, which decides with
        all its checks.
        """
        head = self._one_message(data)
        if head is None:
            return self._opening(data)
        cmd, sid, ioid = head
        try:
            ev = self._fast_request(cmd, sid, ioid, data, HEADER_SIZE)
        except (*LOW_LEVEL_ERRORS, ProtocolError):
            # a put whose value does not decode: it changed nothing, and the general path
            # reports it as the error it is
            return None
        if ev is not None:
            self._framer.bytes_received += len(data)
        return ev

    def receive_get(self, data: bytes) -> tuple[int, int, int, Any] | None:
        """:meth:`receive_message` for the messages of a get operation's life, as a tuple
        ``(step, sid, ioid, detail)`` instead of an event: ``GET_INIT`` (detail: the
        pvRequest), ``GET_EXECUTE`` (detail: whether the GET destroys the operation) or
        ``GET_DESTROY`` (a destroy of any operation; detail None).

        p4p's client makes a new operation for every get, so these three messages are most of
        what a polled server reads; the tuple spares each of them an event object and the
        dispatch on its class. Same contract as :meth:`receive_message`: taken with the
        effect of ``receive_data(data)`` then ``next_event()``, or None with nothing changed.
        """
        if len(data) < 16 or data[3] not in _GET_LIFE:
            return None  # (before the checks below: receive_message makes them for the rest)
        head = self._one_message(data)
        if head is None:
            return None
        got = self._take_step(head[0], head[1], head[2], data, HEADER_SIZE)
        if got is not None:
            self._framer.bytes_received += len(data)
        return got

    def _one_message(self, data: bytes) -> tuple[int, int, int] | None:
        """``(command, sid, ioid)`` of ``data`` when it is one whole message of a command the
        shortcuts take (see :meth:`_alone`) on a validated connection (its byte order is then
        the decoder's); otherwise None."""
        if len(data) < 16 or data[3] not in _FAST_SERVER or self.state is not _VALIDATED:
            return None
        if not self._alone(data):
            return None
        be = self._rx.big_endian = data[2] >= FLAG_BIG  # the byte-order flag is the top bit
        sid, ioid = _U32x2[be].unpack_from(data, HEADER_SIZE)
        return data[3], sid, ioid

    def _alone(self, data: bytes) -> bool:
        """Whether ``data`` (8 bytes or more) is one whole unsegmented application message from
        a client with nothing buffered, pending or failed ahead of it: what a shortcut may
        take as the general path would."""
        framer = self._framer
        n = len(data)
        flags = data[2]
        return not (
            not self.shortcuts
            or self._error is not None
            or self._pending
            or self._eof
            or not framer.idle
            or n - HEADER_SIZE > framer.max_message_size
            or data[0] != MAGIC
            or data[1] == 0  # header version 0 is invalid: the general path says so
            or flags & (FLAG_CONTROL | FLAG_SEG_MASK | FLAG_FROM_SERVER)
            or U32[flags >= FLAG_BIG].unpack_from(data, 4)[0] != n - HEADER_SIZE
        )

    def _opening(self, data: bytes) -> Event | None:
        """:meth:`receive_message` for the two messages of a client's connect that the server
        reads: the validation response and a channel's creation.

        Every connect pays for them once, right after an idle spell in which the client set
        itself up: the general decoder's layers (the framer, the variant's type decoder, the
        state tables) are then code and data the CPU no longer holds, tens of microseconds
        each. This reads the usual shapes with a struct and a few slices."""
        cmd = data[3] if len(data) >= 12 else 0
        if (cmd != _VALIDATION and cmd != _CREATE_CHANNEL) or not self._alone(data):
            return None
        be = data[2] >= FLAG_BIG
        ev = self._validation(data, be) if cmd == _VALIDATION else self._creation(data, be)
        if ev is not None:
            self._framer.bytes_received += len(data)
        return ev

    def _validation(self, data: bytes, be: bool) -> Event | None:
        """A validation response with no credentials, a null variant or pvxs's "ca" ones."""
        n = len(data)
        if self.state is not _ASKED or n < 17:
            return None
        buffer_size, registry_size, qos = _VALIDATION_HEAD[be].unpack_from(data, HEADER_SIZE)
        size = data[16]
        pos = 17 + size
        if size >= 254 or pos > n:
            return None
        method = data[17:pos].decode("utf-8", "replace")
        auth: VariantValue | None = None
        if pos < n and not (pos + 1 == n and data[pos] == 0xFF):
            if data[pos : pos + len(_CA_TYPE_BYTES)] != _CA_TYPE_BYTES:
                return None
            pos += len(_CA_TYPE_BYTES)
            fields = []
            for _ in range(2):
                size = data[pos] if pos < n else 255
                pos += 1
                if size >= 254 or pos + size > n:
                    return None
                fields.append(data[pos : pos + size].decode("utf-8", "replace"))
                pos += size
            if pos != n:
                return None
            auth = VariantValue(CA_CREDENTIALS, {"user": fields[0], "host": fields[1]})
        self.state = _ANSWERED
        return _NEW_VALIDATION(  # type: ignore[no-any-return]
            method, auth, buffer_size, registry_size, qos
        )

    def _creation(self, data: bytes, be: bool) -> Event | None:
        """A request to create one channel whose name is shorter than 254 bytes."""
        n = len(data)
        if self.state is not _VALIDATED or n < 16:
            return None
        count, cid, size = _CREATE_HEAD[be].unpack_from(data, HEADER_SIZE)
        if count != 1 or size >= 254 or 15 + size != n:  # (n >= 16: a name)
            return None
        if self._creation_refused(cid) is not None:
            return None  # the general path says why
        name = data[15:].decode("utf-8", "replace")
        self._creating[cid] = ChannelInfo(cid, name)
        return _NEW_CREATE(cid, name)  # type: ignore[no-any-return]

    def _send_opening_fast(self, ev: ConnectionValidated | CreateChannelResponse) -> bytes | None:
        """A successful ConnectionValidated or CreateChannelResponse: their bytes without the
        encoder (the one the same on every connection, the other a struct's pack)."""
        if ev.status is not Status.OK:
            return None
        be = self.big_endian
        if type(ev) is ConnectionValidated:
            if self.state is not _ANSWERED:
                return None
            self.state = _VALIDATED
            data = _VALIDATED_OK[be]
        else:
            assert isinstance(ev, CreateChannelResponse)
            cid, sid = ev.cid, ev.sid
            ch = self._creating.get(cid)
            if (
                ch is None
                or self.state is not _VALIDATED
                or sid in self._channels
                or not 0 <= sid <= 0xFFFFFFFF
            ):
                return None
            del self._creating[cid]
            self._created(ch, cid, sid)
            flags = _SERVER_FLAGS[be]
            data = _CREATED[be].pack(
                MAGIC, PROTOCOL_VERSION, flags, _CREATE_CHANNEL, 9, cid, sid, 0xFF
            )
        self.bytes_sent += len(data)
        return data

    def _server_fast(self, cmd: int, flags: int, data: bytes) -> Event | None:
        """The server's hot path for the messages of p4p's get and put cycles (an INIT whose
        pvRequest bytes were seen before, a GET, a put's read, a destroy): no decoder layers.
        None hands anything unusual (errors included) to the general path."""
        if cmd not in _FAST_SERVER or len(data) < 8 or self.state is not _VALIDATED:
            return None
        be = self._rx.big_endian = bool(flags & FLAG_BIG)
        sid, ioid = _U32x2[be].unpack_from(data, 0)
        return self._fast_request(cmd, sid, ioid, data, 0)

    def _fast_request(self, cmd: int, sid: int, ioid: int, data: bytes, off: int) -> Event | None:
        """The request whose body starts at ``data[off]`` (its sid and ioid already read), for
        a validated connection whose byte order for it is set; None for the general path."""
        size = len(data) - off
        if cmd in _GET_LIFE or (size >= 9 and data[off + 8] & _INIT):
            got = self._take_step(cmd, sid, ioid, data, off)
            if got is None:
                return None
            step = got[0]
            if step == GET_EXECUTE:
                return _NEW_GET(sid, ioid, got[3])  # type: ignore[no-any-return]
            if step == GET_DESTROY:
                return _NEW_DESTROY(sid, ioid)  # type: ignore[no-any-return]
            return _INIT_MAKERS[cmd](sid, ioid, got[3])  # type: ignore[no-any-return]
        if size < 9:
            return None
        req = self._ready_request(cmd, sid, ioid)
        if req is None:
            return None
        sub = data[off + 8]
        destroy = bool(sub & _DESTROY_BIT)
        if cmd == _PUT and sub & _GET_BIT and size == 9:
            ev: Event = PutRead._trusted(sid, ioid, destroy)
        elif cmd == _PUT and not sub & (_GET_BIT | _GET_PUT_BIT):
            st = req.type
            if st.__class__ is not Structure:
                return None
            assert isinstance(st, Structure)
            mask, value, _ = self._rx.decode_partial(st, data, off + 9, None)
            ev = Put._trusted(sid, ioid, value, BitSet.from_mask(mask), destroy)
        else:
            return None
        self._step(req, _EXECUTE, destroy)
        return ev

    def _take_step(
        self, cmd: int, sid: int, ioid: int, data: bytes, off: int
    ) -> tuple[int, int, int, Any] | None:
        """:meth:`receive_get`'s steps, from a message whose body starts at ``data[off]``; the
        INIT step also for the other commands whose INITs take the shortcut (``_fast_request``
        makes their events of it)."""
        if cmd == _DESTROY_REQUEST:
            req = self._requests.get(ioid)
            if req is None or req.sid != sid:
                return None
            self._step(req, _DESTROY)
            return (GET_DESTROY, sid, ioid, None)
        if len(data) - off < 9:
            return None
        sub = data[off + 8]
        if sub & _INIT:
            # an INIT whose pvRequest bytes were seen before, which may open ioid now
            requests = self._requests
            cached = self._request_caches[self._rx.big_endian].get(data[off + 9 :], _MISSING)
            if (
                cached is _MISSING
                or sid not in self._channels
                or ioid in requests
                or len(requests) >= self.max_requests
            ):
                return None
            self._dead_requests.pop(ioid, None)
            requests[ioid] = RequestInfo(command=cmd, ioid=ioid, sid=sid)
            return (GET_INIT, sid, ioid, cached)
        if cmd != _GET:
            return None
        req = self._ready_request(cmd, sid, ioid)
        if req is None or len(data) - off != 9:
            return None
        destroy = bool(sub & _DESTROY_BIT)
        self._step(req, _EXECUTE, destroy)
        return (GET_EXECUTE, sid, ioid, destroy)

    def _ready_request(self, cmd: int, sid: int, ioid: int) -> RequestInfo | None:
        """Operation ``ioid`` when a ``cmd`` message on channel ``sid`` may execute it now."""
        req = self._requests.get(ioid)
        if req is None or req.command != cmd or req.sid != sid or req.state is not _READY:
            return None
        return req

    def _send_put_done_fast(self, ev: PutResponse) -> bytes | None:
        """A successful put's reply: eight bytes of header and six of body."""
        req = self._requests.get(ev.ioid)
        if (
            req is None
            or req.command != _PUT
            or req.state is not RequestState.EXECUTING
            or ev.status is not Status.OK
            or ev.destroy
            or req.last
            or self.state is not _VALIDATED
        ):
            return None
        be = self.big_endian
        self._step(req, _ANSWER)
        self.bytes_sent += 14
        return (
            HEADER_STRUCT[be].pack(MAGIC, PROTOCOL_VERSION, _SERVER_FLAGS[be], _PUT, 6)
            + U32[be].pack(ev.ioid)
            + b"\x00\xff"
        )

    def _send_init_fast(self, ev: GetInitResponse | PutInitResponse) -> bytes | None:
        if ev.status is not Status.OK:
            return None
        return self.send_init_ok(ev.ioid, _GET if type(ev) is GetInitResponse else _PUT, ev.type)

    def send_init_ok(self, ioid: int, command: int, type: Any) -> bytes | None:
        """The bytes of a successful get (``command`` GET) or put (PUT) init response with
        ``type``: what ``send(GetInitResponse(ioid, type=type))`` gives, in a few copies (the
        type's encoding is cached per type; p4p sends one init per get and put). None when
        the shortcut does not apply (the type cache, anything unusual): then send the event.
        """
        req = self._requests.get(ioid)
        if (
            req is None
            or req.state is not RequestState.INIT_PENDING
            or req.command != command
            or type.__class__ is not Structure
            or self._tx.send_cache is not None
            or self.state is not _VALIDATED
            or self.segment_size  # then messages may need cutting: send() does that
            or self._error is not None
            or not self.shortcuts
        ):
            return None
        be = self.big_endian
        # keyed by the type's identity: its hash is a Python method, a call per init
        key = (id(type), be, command)
        known = _INIT_OK.get(key)
        reply = known[1] if known is not None and known[0] is type else None
        if reply is None:
            body = full_type_bytes(type, be)
            build = bytearray(HEADER_SIZE + 4)
            build += b"\x08\xff"  # INIT, status OK
            build += body
            flags = _SERVER_FLAGS[be]
            HEADER_STRUCT[be].pack_into(
                build, 0, MAGIC, PROTOCOL_VERSION, flags, command, len(build) - HEADER_SIZE
            )
            if len(_INIT_OK) >= 256:
                _INIT_OK.clear()
            reply = bytes(build)
            _INIT_OK[key] = (type, reply)
        out = bytearray(reply)
        U32[be].pack_into(out, HEADER_SIZE, ioid)
        self._step(req, _INITIALISE)
        req.type = type
        req.get_type = None
        self.bytes_sent += len(out)
        return bytes(out)

    def _send_value_fast(self, ev: MonitorUpdate | GetResponse | PutReadResponse) -> bytes | None:
        """The server's hot path (monitor updates, get responses): one buffer, no detours.
        Returns None to fall back to the general path for anything unusual."""
        req = self._requests.get(ev.ioid)
        if req is None or self.state is not ConnectionState.VALIDATED:
            return None
        st = req.type
        if not isinstance(st, Structure):
            return None
        be = self.big_endian
        tx = self._tx
        tx.big_endian = be
        out = bytearray(HEADER_SIZE)
        out += U32[be].pack(ev.ioid)
        if type(ev) is MonitorUpdate:
            assert isinstance(ev, MonitorUpdate)
            if req.command != Command.MONITOR or req.state is RequestState.INIT_PENDING:
                return None
            out.append(0)
            tx.encode_partial(st, ev.value, ev.changed.mask, out)
            out += ev.overrun.encode(be) if ev.overrun.mask else b"\x00"
            cmd = MONITOR
        else:
            assert isinstance(ev, (GetResponse, PutReadResponse))
            cmd = _GET if type(ev) is GetResponse else _PUT
            if (
                req.command != cmd
                or req.state is not RequestState.EXECUTING
                or ev.status is not Status.OK
                or ev.value is None
                or ev.destroy
                or req.last
            ):
                return None
            out += b"\x00\xff" if cmd == _GET else b"\x40\xff"
            tx.encode_partial(st, ev.value, ev.changed.mask, out)
            self._step(req, _ANSWER)
        HEADER_STRUCT[be].pack_into(
            out, 0, MAGIC, PROTOCOL_VERSION, _SERVER_FLAGS[be], cmd, len(out) - 8
        )
        self.bytes_sent += len(out)
        # a big message (an image) is handed over as the bytearray it was built in: copying
        # megabytes into a bytes object would cost more than encoding them
        return out if len(out) > 65536 else bytes(out)  # type: ignore[return-value]

    def initiate(self, auth_methods: Iterable[str] = ("anonymous", "ca")) -> bytes:
        """The server's opening bytes: SetByteOrder then ConnectionValidationRequest.

        Every new connection of a server sends the same bytes and goes through the same
        states, so they are encoded once per (byte order, methods, segment size) and replayed.
        """
        methods = tuple(auth_methods)
        key = (self.big_endian, methods, self.segment_size)
        fresh = self.state is ConnectionState.IDLE and not self.bytes_sent and self._error is None
        known = _OPENINGS.get(key) if fresh else None
        if known is not None:
            data, self.state = known
            self.bytes_sent = len(data)
            return data
        data = self.send(SetByteOrder(self.big_endian)) + self.send(
            ConnectionValidationRequest(methods)
        )
        if fresh and len(_OPENINGS) < 64:
            _OPENINGS[key] = (data, self.state)
        return data

    def send_get_update(self, ioid: int, update: PreparedUpdate) -> bytes | None:
        """The reply to a GET whose value was encoded once (a PV nobody posted to since the
        last get costs no encoding at all), or None when this get cannot take the shortcut:
        then send a :class:`GetResponse` (the general path decides, with all its checks).

        The shortcut covers a successful reply on an unsegmented, validated connection to a
        get that is executing and does not destroy its operation.
        """
        pieces = self.send_get_update_pieces(ioid, update)
        return None if pieces is None else _joined(pieces)

    def send_get_update_pieces(self, ioid: int, update: PreparedUpdate) -> list[Any] | None:
        """:meth:`send_get_update` as buffers for a vectored write (``writelines``): a head
        of its own, then the update's shared pieces (a big array is sent from its buffer)."""
        req = self._requests.get(ioid)
        if (
            req is None
            or self.segment_size
            or not self.shortcuts
            or self._error is not None
            or self.state is not ConnectionState.VALIDATED
            or req.command != _GET
            or req.state is not RequestState.EXECUTING
            or req.last
            or (req.type is not update.type and req.type != update.type)
        ):
            return None
        be = self.big_endian
        self._step(req, _ANSWER)
        return self._value_message(be, _GET, ioid, b"\x00\xff", update, b"")

    def send_update(self, ioid: int, update: PreparedUpdate, overrun: BitSet = NO_BITS) -> bytes:
        """A MonitorUpdate whose value was encoded once for all subscribers.

        Same rules as ``send(MonitorUpdate(...))``: the monitor must be initialised with the
        same type; an ioid the client just destroyed gives ``b""``.
        """
        return _joined(self.send_update_pieces(ioid, update, overrun))

    def send_update_pieces(
        self, ioid: int, update: PreparedUpdate, overrun: BitSet = NO_BITS
    ) -> list[Any]:
        """:meth:`send_update` as buffers for a vectored write: every subscriber's message is
        a head of its own and the same shared pieces (no copy per connection)."""
        if self._error is not None:
            raise LocalProtocolError(f"connection is in ERROR after: {self._error}")
        req = self._requests.get(ioid)
        if req is None:
            if ioid in self._dead_requests:
                return []
            raise LocalProtocolError(f"no operation ioid {ioid}")
        if req.command != MONITOR or req.state is RequestState.INIT_PENDING:
            raise LocalProtocolError(f"send_update: ioid {ioid} is not an initialised monitor")
        if req.type is not update.type and req.type != update.type:
            raise LocalProtocolError(f"send_update: ioid {ioid} has another type")
        be = self.big_endian
        tail = overrun.encode(be) if overrun.mask else b"\x00"
        if self.segment_size:
            payload = U32[be].pack(ioid) + b"\x00" + update.partial(be) + tail
            data = self._frame(MONITOR, payload)
            self.bytes_sent += len(data)
            return [data]
        return self._value_message(be, MONITOR, ioid, b"\x00", update, tail)

    def _value_message(
        self, be: bool, cmd: int, ioid: int, head: bytes, update: PreparedUpdate, tail: bytes
    ) -> list[Any]:
        """One unsegmented message carrying an encoded value, as buffers: header, ioid,
        ``head`` (subcommand, status), the update's pieces, ``tail`` (a monitor's overrun set).
        A small one is joined into one bytes object (one buffer is cheaper to write)."""
        pieces = update.pieces(be)
        size = 4 + len(head) + update.size(be) + len(tail)
        first = (
            HEADER_STRUCT[be].pack(MAGIC, PROTOCOL_VERSION, _SERVER_FLAGS[be], cmd, size)
            + U32[be].pack(ioid)
            + head
        )
        self.bytes_sent += HEADER_SIZE + size
        if size < 65536:
            return [b"".join((first, *pieces, tail))]
        return [first, *pieces, tail] if tail else [first, *pieces]


def _joined(pieces: list[Any]) -> bytes:
    """Buffers as one bytes-like object (a lone one as it is)."""
    if len(pieces) == 1:
        return pieces[0]  # type: ignore[no-any-return]
    return b"".join(pieces)
