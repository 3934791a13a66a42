"""Operations (ioids) on a connection: how a received operation message is checked against
the operation table and applied, the one place an operation changes state (``_step``), and the
answer to a message over the size limit. The connection classes take these from
:class:`Operations`; sending checks the same rows (``refusal``)."""

from __future__ import annotations

import struct
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from ._codec import Codec
from ._constants import Command
from ._errors import LimitExceededError, RemoteProtocolError
from ._event import Event
from ._events import MessageTooBig
from ._generate import READERS_BY_SUB, OpContext, read_message, reply_event
from ._header import FLAG_BIG, Framer
from ._op_events import Get, MonitorFinish
from ._state import OPERATIONS, ConnectionState, RequestState, Step
from ._status import Status
from ._table import DESTROY, INIT, OP_COMMANDS
from ._wire import U32

#: finished operations and channels remembered (to tell a late message from a bad one)
TOMBSTONES = 1024
MONITOR = int(Command.MONITOR)
GET_FIELD = int(Command.GET_FIELD)
#: the ids an operation's message starts with, by byte order: a client's sid and ioid
_IDS = {be: struct.Struct(">II" if be else "<II") for be in (False, True)}
#: (constants: reading an enum member through its class costs ~0.1 us, a few times a message)
_S = RequestState
_INIT_PENDING, _EXECUTING, _READY = _S.INIT_PENDING, _S.EXECUTING, _S.READY


@dataclass
class ChannelInfo:
    cid: int
    name: str
    sid: int | None = None


@dataclass(kw_only=True, slots=True)
class RequestInfo(OpContext):
    """One operation: its ids, state and the types/values its messages need."""

    ioid: int
    sid: int
    state: RequestState = RequestState.INIT_PENDING
    queue_size: int | None = None
    last: bool = False
    cancelled: bool = False


def refusal(req: RequestInfo, row: Step, event: type) -> str | None:
    """Why the operation table's ``row`` may not apply to ``req`` now (None when it may): the
    text of the error the side that meets it raises (local when sending, remote when
    receiving)."""
    if row.command is not None and req.command != row.command:
        return f"{event.__name__}: ioid {req.ioid} is a 0x{req.command:02x} operation"
    if req.state not in row.before:
        return f"{event.__name__} on ioid {req.ioid} while it is {req.state.value}"
    return None


class Operations:
    """The operation bookkeeping of a connection (mixed into :class:`BaseConnection`, which
    owns these attributes)."""

    state: ConnectionState
    max_requests: int
    _server: bool
    _rx: Codec
    _framer: Framer
    _channels: dict[int, ChannelInfo]
    _dead_channels: OrderedDict[int, None]
    _requests: dict[int, RequestInfo]
    _dead_requests: OrderedDict[int, RequestInfo]

    def _require_validated(self, cmd: int) -> None:
        if self.state is not ConnectionState.VALIDATED:
            raise RemoteProtocolError(
                f"command 0x{cmd:02x} before the connection was validated "
                f"(state {self.state.value})"
            )

    def _too_big(self, cmd: int, flags: int, size: int, head: bytes) -> list[Event]:
        """A message the framer read past, over ``max_message_size``. An operation's request
        (server side) or reply (client side) fails that operation alone, with a status that
        says why and how to raise the limit; anything else is no message a peer sends that
        big, and drops it as before."""
        limit = self._framer.max_message_size
        over = f"message of {size} bytes is over the limit of {limit} bytes (max_message_size)"
        if cmd not in OP_COMMANDS or len(head) < (5 if not self._server else 9):
            raise LimitExceededError(over)
        self._require_validated(cmd)
        be = bool(flags & FLAG_BIG)
        sid, ioid = _IDS[be].unpack_from(head) if self._server else (-1, *U32[be].unpack_from(head))
        sub = 0 if cmd == Command.GET_FIELD else head[8 if self._server else 4]
        who = "server" if self._server else "client"
        status = Status.error(
            f"a message of {size} bytes is over this {who}'s limit of {limit} bytes; "
            f"raise the {who}'s max_message_size to transfer it"
        )
        init = bool(sub & INIT)
        if self._server:
            destroy = False
            if init:
                if not self._open(cmd, sid, ioid):
                    return []
            else:
                req, live = self._known(cmd, ioid, sid)
                if not live:
                    return []
                if cmd == MONITOR or req.state is not _READY:
                    raise LimitExceededError(over)
                destroy = bool(sub & DESTROY)
                self._step(req, _EXECUTE, destroy)  # as the request would have
            reply = reply_event(cmd, sub)(ioid=ioid, status=status)  # (the request's answer)
            return [MessageTooBig(cmd, sid, ioid, size, limit, reply, destroy)]
        # client: the reply fails its operation, as an error reply would
        req, live = self._known(cmd, ioid)
        if not live:
            return []
        # (a monitor's update fails as the subscription's end)
        cls = MonitorFinish if cmd == MONITOR and not init else reply_event(cmd, sub)
        ev: Event = cls(ioid=ioid, status=status)
        row = OPERATIONS[type(ev)]
        why = refusal(req, row, type(ev))
        if why is not None:
            raise RemoteProtocolError(why)
        self._step(req, row, bool(sub & DESTROY), failed=True)
        return [ev]

    # ------------------------------------------------------------------ operations
    def _open(self, cmd: int, sid: int, ioid: int, queue_size: int | None = None) -> bool:
        """Server side: a client's message opens operation ``ioid`` on channel ``sid`` (False:
        the client destroyed the channel meanwhile, drop the message)."""
        if sid not in self._channels:
            if sid in self._dead_channels:
                return False
            raise RemoteProtocolError(f"operation on unknown channel sid {sid}")
        if ioid in self._requests:
            raise RemoteProtocolError(f"ioid {ioid} is already in use")
        if len(self._requests) >= self.max_requests:
            raise LimitExceededError(f"more than {self.max_requests} operations (max_requests)")
        self._add_request(cmd, sid, ioid, queue_size)
        return True

    def _add_request(self, cmd: int, sid: int, ioid: int, queue_size: int | None) -> None:
        """Operation ``ioid`` opens: an init's (INIT_PENDING) or a get-field's, which
        executes at once."""
        self._dead_requests.pop(ioid, None)
        state = _EXECUTING if cmd == GET_FIELD else _INIT_PENDING
        self._requests[ioid] = RequestInfo(
            command=cmd, ioid=ioid, sid=sid, state=state, queue_size=queue_size
        )

    def _known(self, cmd: int, ioid: int, sid: int | None = None) -> tuple[RequestInfo, bool]:
        """The operation a message of command ``cmd`` on ``ioid`` (on channel ``sid``, as a
        client says) is for, and whether it is live (else a tombstone: the message is late)."""
        req = self._requests.get(ioid)
        live = req is not None
        if req is None:
            req = self._dead_requests.get(ioid)
            if req is None:
                raise RemoteProtocolError(f"command 0x{cmd:02x} for unknown ioid {ioid}")
        if req.command != cmd:
            raise RemoteProtocolError(
                f"ioid {ioid} is a 0x{req.command:02x} operation, not 0x{cmd:02x}"
            )
        if sid is not None and req.sid != sid:
            raise RemoteProtocolError(f"ioid {ioid} is not on channel sid {sid}")
        return req, live

    def _server_op(self, cmd: int, data: bytes) -> list[Event]:
        rx = self._rx
        sid, ioid = _IDS[rx.big_endian].unpack_from(data)
        sub = 0 if cmd == GET_FIELD else data[8]
        reads = READERS_BY_SUB[cmd, False, rx.big_endian][sub]  # (read_message's choice)
        if cmd == GET_FIELD or sub & INIT:  # (an init, or a get-field: it executes)
            ev = reads[0](data, rx, None)  # (an init has one reader)
            if not self._open(cmd, sid, ioid, getattr(ev, "queue_size", None)):
                return []
            return [ev]
        req, live = self._requests.get(ioid), True
        if req is None or req.command != cmd or req.sid != sid:
            req, live = self._known(cmd, ioid, sid)  # (raises what is wrong, or it is late)
        if req.state is _INIT_PENDING:
            raise RemoteProtocolError(f"ioid {ioid} used before its init completed")
        # (a combined message's readers: several, or none for an unknown subcommand)
        events = [reads[0](data, rx, req)] if len(reads) == 1 else [r(data, rx, req) for r in reads]
        if not live:
            req.value = req.get_value = None  # a tombstone keeps no value (see _drop_request)
            return []
        for ev in events:
            row = OPERATIONS.get(type(ev))
            if row is not None:
                # (the operation is of the row's command: only the state is left to check)
                if req.state not in row.before:
                    raise RemoteProtocolError(refusal(req, row, type(ev)))
                # (a request has no status: _apply's failure is a response's)
                self._step(req, row, getattr(ev, "destroy", False))
        return events

    def _client_op(self, cmd: int, data: bytes) -> list[Event]:
        req, live = self._known(cmd, U32[self._rx.big_endian].unpack_from(data)[0])
        [ev] = read_message(cmd, data, self._rx, True, req)
        if not live:
            req.value = req.get_value = None  # a tombstone keeps no value (see _drop_request)
            return []
        row = OPERATIONS[type(ev)]
        why = refusal(req, row, type(ev))
        if why is not None:
            if row.drop_if_cancelled and req.cancelled:
                return []  # the answer to an execution this client cancelled meanwhile
            raise RemoteProtocolError(why)
        self._apply(req, row, ev)
        return [ev]

    def _apply(self, req: RequestInfo, row: Step, ev: Any) -> None:
        """Apply the operation table's ``row`` for event ``ev`` (checked already); an init's
        response (the row that ends on failure) agrees the types the operation's messages
        will carry."""
        failed = row.ends_on_failure and not ev.status.success
        if row.ends_on_failure and not failed:
            req.type = getattr(ev, "type", None) or getattr(ev, "put_type", None)
            req.get_type = getattr(ev, "get_type", None)
        self._step(req, row, bool(getattr(ev, "destroy", False)), failed)

    def _step(
        self, req: RequestInfo, row: Step, destroy: bool = False, failed: bool = False
    ) -> None:
        """Apply a row of the operation table to ``req`` (checked already: ``_refusal``):
        ``destroy`` is the message's destroy flag, ``failed`` whether an init response's
        status is a failure. The one place an operation changes state."""
        if row.cancels:
            if req.state is _EXECUTING:
                req.state = _READY
                req.cancelled = True
            return
        if row.ends or (row.ends_if_destroy and destroy) or (row.ends_on_failure and failed):
            self._drop_request(req.ioid)
            return
        after = row.after
        if after is _EXECUTING:
            req.cancelled = False
            req.last = destroy
        if after is not None:
            req.state = after

    def _drop_request(self, ioid: int) -> None:
        req = self._requests.pop(ioid, None)
        if req is not None:
            # a tombstone only tells a late message for a destroyed operation from a bad one
            # (and decodes it, for the type cache): it keeps the agreed types, never a value or
            # a reply, so a thousand finished gets of an image hold no image
            req.value = req.get_value = None
            self._dead_requests[ioid] = req
            while len(self._dead_requests) > TOMBSTONES:
                self._dead_requests.popitem(last=False)


#: the operation table's row of an execution request (READY -> EXECUTING)
_EXECUTE = OPERATIONS[Get]
