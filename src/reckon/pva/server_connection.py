"""One TCP connection of the server: an asyncio protocol around one sans-I/O
``ServerConnection`` (bytes in, events out, replies written straight back), its channels,
operations and monitors.

A peer that breaks the protocol is logged and dropped; nothing it sends can reach another
connection. Memory stays bounded: the receive side by the protocol's ``max_message_size``; when
the socket's send buffer passes its high-water mark the connection stops reading and stops
processing buffered requests (backpressure); monitor queues hold at most ``queueSize`` updates.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

from reckon.pva.monitor_queue import MonitorQueue
from reckon.pva.protocol import (
    GET_EXECUTE,
    GET_INIT,
    NEED_DATA,
    RPC,
    ArrayGet,
    ArrayGetLength,
    ArrayGetLengthResponse,
    ArrayGetResponse,
    ArrayInit,
    ArrayInitResponse,
    ArrayPut,
    ArrayPutResponse,
    ArraySetLength,
    ArraySetLengthResponse,
    BitSet,
    CancelRequest,
    Command,
    ConnectionClosed,
    ConnectionValidated,
    ConnectionValidationResponse,
    ControlEchoRequest,
    ControlEchoResponse,
    CreateChannelRequest,
    CreateChannelResponse,
    DestroyChannel,
    DestroyRequest,
    Echo,
    Event,
    Get,
    GetField,
    GetFieldResponse,
    GetInit,
    GetInitResponse,
    GetResponse,
    MessageTooBig,
    MonitorAck,
    MonitorDestroy,
    MonitorInit,
    MonitorInitResponse,
    MonitorStart,
    MonitorStop,
    Process,
    ProcessInit,
    ProcessInitResponse,
    ProcessResponse,
    ProtocolError,
    Put,
    PutGet,
    PutGetInit,
    PutGetInitResponse,
    PutGetRead,
    PutGetReadResponse,
    PutGetResponse,
    PutInit,
    PutInitResponse,
    PutRead,
    PutReadResponse,
    PutResponse,
    RemoteProtocolError,
    RPCInit,
    RPCInitResponse,
    RPCResponse,
    ScalarArray,
    SearchRequest,
    ServerConnection,
    Status,
    VariantValue,
    request_options,
)
from reckon.pva.pv import Peer, PutOperation, RpcOperation, SharedPV, coerce
from reckon.pva.replies import status_of, to_typed
from reckon.pva.selection import ALL, request_mask, sent_mask, truthy

if TYPE_CHECKING:
    from reckon.pva.server import Server


log = logging.getLogger("reckon.pva.server")

_ALL_BITS = BitSet.from_mask(ALL)
DEFAULT_QUEUE_SIZE = 4
#: monitor updates posted within this many seconds of the last write share the next write
COALESCE = 0.0001
_GET, _PUT = int(Command.GET), int(Command.PUT)
#: reads up to this size may be one whole request, taken by the shortcut; bigger ones (array
#: values) go straight to the framer, which copies them out of the receive buffer only once
_ONE_REQUEST_MAX = 4096


@dataclass(slots=True)
class _Op:
    kind: str
    sid: int
    ioid: int
    pv: SharedPV
    name: str
    mask: int = ALL
    request: VariantValue | None = None
    task: asyncio.Task[None] | None = None
    #: pv.assigned -> (what a full reply sends: sent_mask, its BitSet), shared by the
    #: operations of one selection (p4p makes one get operation per get)
    sent: dict[int, tuple[int, BitSet]] = field(default_factory=dict)
    #: request_options(request), computed on first use (p4p sends one put per operation, but
    #: reckon's client and others reuse an operation for many)
    options: dict[str, Any] | None = None
    #: the paths of the last put's changed mask (puts usually set the same fields each time)
    put_mask: int = -1
    put_paths: tuple[str, ...] = ()
    #: a get was answered on this operation before (a client polling through it)
    polled: bool = False


# ------------------------------------------------------------------------------------------
# one TCP connection
# ------------------------------------------------------------------------------------------


class ServerProtocol(asyncio.BufferedProtocol):
    """One connection. A BufferedProtocol: the transport reads into the server's one receive
    buffer (``recv_into``), where a plain Protocol's ``recv(256 KiB)`` allocates, and the kernel
    maps and unmaps, a fresh 256 KiB object per read: that cost more CPU per small message than
    the rest of asyncio's read path (server CPU per echoed message 23 -> 8 us)."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self._rxbuf = server._rxbuf
        self.loop = server.loop
        self.conn = ServerConnection(max_message_size=server.max_message_size)
        self.transport: asyncio.Transport | None = None
        self.peer = Peer(("?", 0))
        self.channels: dict[int, tuple[str, SharedPV, int]] = {}  # sid -> (name, pv, cid)
        self.ops: dict[int, _Op] = {}
        self._selections = server._selections
        self.monitors: dict[int, MonitorQueue] = {}
        #: bytes of the monitor updates queued behind others (see MonitorQueue), and the limit
        self.queued_bytes = 0
        self.max_queue_bytes = server.max_queue_bytes
        self._dirty: dict[int, MonitorQueue] = {}
        self._busy = False
        self._write_timer: asyncio.TimerHandle | None = None
        self._last_write = 0.0
        #: set on every read; the idle sweeper turns it into ``last_rx`` (no clock per read)
        self.heard = False
        self.last_rx = server.loop.time()
        self._write_paused = False
        self._closed = False
        self._out: list[Any] = []  # buffers to write, in order
        self._pending = 0
        #: a polled PV's GET bytes -> (op, the value answered, the reply): a client that gets
        #: the same PV again and again sends the same 17 bytes; while nothing else happens on
        #: the connection and the value is the same, the answer is the same bytes
        self._repeats: dict[bytes, tuple[_Op, Any, bytes]] = {}

    # ------------------------------------------------------------------ transport callbacks
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # cast, not isinstance: uvloop's transports are not subclasses of asyncio.Transport
        tr = cast(asyncio.Transport, transport)
        self.transport = tr
        peername = transport.get_extra_info("peername") or ("?", 0)
        self.peer = Peer((str(peername[0]), int(peername[1])))
        # no TCP_NODELAY here: asyncio's and uvloop's TCP transports both set it
        tr.set_write_buffer_limits(high=self.server.send_high_water)
        self.heard = True  # connecting counts as hearing from the peer (the state may be old)
        server = self.server
        server._connections.add(self)
        tr.write(self.conn.initiate(server.config.auth_methods))
        self.loop.call_soon(server.build_spare)  # the next connection's, after this write

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        self._repeats.clear()
        self.server._connections.discard(self)
        for mon in self.monitors.values():
            mon.close()
        self.monitors.clear()
        for op in self.ops.values():
            if op.task is not None:
                op.task.cancel()
        self.ops.clear()
        self.channels.clear()
        self._dirty.clear()
        if self._write_timer is not None:
            self._write_timer.cancel()
            self._write_timer = None

    def pause_writing(self) -> None:
        self._write_paused = True
        self._repeats.clear()
        if self.transport is not None:
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        self._write_paused = False
        self._process()
        if self._dirty or self._out:
            self._flush()
        if self.transport is not None and not self._write_paused and not self._closed:
            self.transport.resume_reading()

    def get_buffer(self, sizehint: int) -> memoryview:
        return self._rxbuf

    def buffer_updated(self, nbytes: int) -> None:
        self.heard = True
        if nbytes > _ONE_REQUEST_MAX or self._write_paused or self._closed:
            self._receive(self._rxbuf[:nbytes])  # copied out by the framer, once
            return
        data = self._rxbuf[:nbytes].tobytes()  # the buffer is reused by the next read
        repeats = self._repeats
        if repeats:
            # a client polling a PV sends the same GET again: while nothing else happened on
            # the connection and the value is the one answered, so is the answer
            hit = repeats.get(data)
            if hit is not None and hit[0].pv.value is hit[1]:
                reply = hit[2]
                self.conn.repeat_get(reply)
                self.transport.write(reply)  # type: ignore[union-attr]
                return
            repeats.clear()
        # one request per read (the usual case) skips the framer and the event queue; the
        # messages of a get (p4p's client: INIT, GET, DESTROY for every get) skip the events
        conn = self.conn
        got = conn.receive_get(data)
        if got is None:
            ev = conn.receive_message(data)
            if ev is None:
                self._receive(data)
                return
        quiet = not self._out and not self._dirty
        self._busy = True
        try:
            if got is None:
                _HANDLERS[type(ev)](self, ev)
                answer = None
            else:
                step, sid, ioid, detail = got
                if step == GET_EXECUTE:
                    answer = self._answer_get(ioid, detail, None if detail else data)
                elif step == GET_INIT:
                    init = self._get_init(sid, ioid, detail)
                    answer = None if init is None else [init]
                else:
                    self._destroy(ioid)
                    answer = None
        except Exception as exc:
            self._failed(exc)
            return
        finally:
            self._busy = False
        if answer is not None and quiet and not self._out and not self._dirty:
            # a get's one reply, and nothing to send before or with it (the usual case)
            if len(answer) == 1:
                self.transport.write(answer[0])  # type: ignore[union-attr]
            else:
                self.transport.writelines(answer)  # type: ignore[union-attr]
            return
        self._queue(answer)
        self._end_batch()

    def _receive(self, data: bytes | memoryview) -> None:
        """The general path: buffer the bytes, then handle every event they complete."""
        self._repeats.clear()
        try:
            self.conn.receive_data(data)
        except ProtocolError as exc:
            self._drop(exc)
            return
        self._process()

    def data_received(self, data: bytes | memoryview) -> None:
        self.heard = True
        self._receive(data)

    def eof_received(self) -> bool | None:
        return None

    # ------------------------------------------------------------------ event loop
    def _process(self) -> None:
        conn = self.conn
        self._busy = True
        try:
            handlers = _HANDLERS
            while not self._write_paused and not self._closed:
                ev = conn.next_event()
                if ev is NEED_DATA:
                    break
                handler = handlers.get(type(ev))
                if handler is None:
                    self._handle(ev)  # logs and ignores it
                else:
                    handler(self, ev)
        except Exception as exc:
            self._failed(exc)
            return
        finally:
            self._busy = False
        self._end_batch()

    def _failed(self, exc: Exception) -> None:
        """Handling this peer's requests raised: drop the peer, only it. Call from the except
        block (a bug of ours, or an invalid send, is logged with its traceback)."""
        if not isinstance(exc, RemoteProtocolError):
            log.exception("pva server: internal error serving %s", self._who())
        self._drop(exc)

    def _end_batch(self) -> None:
        """After the requests of one read: monitor updates made while handling them go out in
        the same write as the replies."""
        if self._dirty and not self._write_paused:
            self._flush()
        elif self._out:
            self._write()

    def _who(self) -> str:
        return f"{self.peer.address[0]}:{self.peer.address[1]}"

    def _drop(self, exc: BaseException) -> None:
        log.warning("pva server: dropping client %s: %s", self._who(), exc)
        self._closed = True
        self._repeats.clear()
        if self.transport is not None:
            self.transport.abort()

    def _send(self, ev: Event) -> None:
        self._repeats.clear()
        data = self.conn.send(ev)
        self._out.append(data)
        self._pending += len(data)
        if self._pending > 65536:
            # hand big batches to the transport now: past its high-water mark it calls
            # pause_writing(), which stops _process() from answering more requests
            self._write()

    def _write(self) -> None:
        out = self._out
        if not out or self.transport is None or self._closed:
            out.clear()
            return
        self._pending = 0
        if len(out) == 1:
            self.transport.write(out.pop())
            return
        # one vectored write: big arrays go from their own buffers (uvloop: writev; asyncio
        # before 3.12 joins them, once)
        self._out = []
        self.transport.writelines(out)

    def send_later(self, ev: Event) -> None:
        """Send from a task (handler completion)."""
        if self._closed:
            return
        try:
            self._send(ev)
        except ProtocolError as exc:
            log.debug("pva server: not sent to %s: %s", self._who(), exc)
            self._out.clear()
            return
        self._write()

    # ------------------------------------------------------------------ monitors
    def want_flush(self, mon: MonitorQueue) -> None:
        """A monitor has something to send.

        An update after a quiet spell leaves at once (lowest latency). Updates within
        ``COALESCE`` seconds of the last write are encoded at once (so the queue stays drained
        and nothing is squashed while the client keeps up) and written together when the
        window ends: a burst costs one syscall per window, not per post, and the client reads
        many updates per wakeup. Updates queue, and coalesce, only while the transport is paused
        or the pipeline window is closed. Inside request processing they go out with the
        replies when the batch ends.
        """
        self._dirty[mon.ioid] = mon
        if self._write_paused or self._busy or self._closed:
            return
        now = self.loop.time()
        if self._write_timer is None and now - self._last_write >= COALESCE:
            self._last_write = now
            self._flush()
            return
        self._take()
        if self._write_timer is None and self._out:
            self._write_timer = self.loop.call_at(self._last_write + COALESCE, self._timed_write)

    def _timed_write(self) -> None:
        self._write_timer = None
        self._last_write = self.loop.time()
        self._flush()

    def _take(self) -> None:
        """Encode what the dirty monitors may send into the pending output."""
        if self._closed or self._write_paused:
            return
        self._repeats.clear()
        dirty = self._dirty
        self._dirty = {}
        items: list[Any] = []
        for mon in dirty.values():
            if not mon.closed or mon.finished:
                mon.take(items)
        if not items:
            return
        conn = self.conn
        send_update = conn.send_update_pieces
        out = self._out
        n = self._pending
        for item in items:
            try:
                if type(item) is tuple:
                    ioid, update, overrun = item
                    if overrun:
                        pieces = send_update(ioid, update, BitSet.from_mask(overrun))
                    else:
                        pieces = send_update(ioid, update)
                else:
                    pieces = [conn.send(item)]
            except ProtocolError as exc:  # the client destroyed it meanwhile
                log.debug("pva server: monitor update dropped: %s", exc)
                continue
            for data in pieces:
                if data:
                    out.append(data)
                    n += len(data)
        self._pending = n
        if n > 65536:
            self._write()

    def _flush(self) -> None:
        if self._closed:
            return
        if not self._write_paused:
            self._take()
        if self._out:
            self._write()

    # ------------------------------------------------------------------ dispatch
    def _handle(self, ev: Event) -> None:
        handler = _HANDLERS.get(type(ev))
        if handler is None:
            log.debug("pva server: ignoring %s from %s", type(ev).__name__, self._who())
            return
        handler(self, ev)

    def _on_validation(self, ev: ConnectionValidationResponse) -> None:
        method = ev.auth_method or "anonymous"
        if method not in self.server.config.auth_methods:
            self._send(ConnectionValidated(Status.error(f"authentication {method!r} refused")))
            return
        if method == "ca":
            self.peer = Peer(self.peer.address, "ca", ev.user or "", ev.host or "")
        else:
            self.peer = Peer(self.peer.address, method)
        self._send(ConnectionValidated.unchecked(Status.OK))

    def _on_echo(self, ev: Echo) -> None:
        self._send(Echo(ev.payload))

    def _on_control_echo(self, ev: ControlEchoRequest) -> None:
        self._send(ControlEchoResponse(ev.value))

    def _on_search(self, ev: SearchRequest) -> None:
        responder = self.server._responder
        if responder is None:
            return
        reply = responder.answer(ev, self.peer.address)
        if reply is not None:
            self._send(reply)

    def _on_create_channel(self, ev: CreateChannelRequest) -> None:
        pv = self.server._pvs.get(ev.name)
        if pv is None:
            self._send(
                CreateChannelResponse(ev.cid, 0xFFFFFFFF, Status.error(f"no PV named {ev.name!r}"))
            )
            return
        sid = self.server._next_sid()
        self.channels[sid] = (ev.name, pv, ev.cid)
        self._send(CreateChannelResponse.unchecked(ev.cid, sid, Status.OK))

    def _on_destroy_channel(self, ev: DestroyChannel) -> None:
        if self.channels.pop(ev.sid, None) is None:
            return
        for ioid in [i for i, op in self.ops.items() if op.sid == ev.sid]:
            self._forget(ioid)
        self._send(DestroyChannel(ev.sid, ev.cid))

    def _forget(self, ioid: int) -> None:
        self._repeats.clear()
        op = self.ops.pop(ioid, None)
        if op is not None and op.task is not None:
            op.task.cancel()
        mon = self.monitors.pop(ioid, None)
        if mon is not None:
            mon.close()
        self._dirty.pop(ioid, None)

    def _on_destroy_request(self, ev: DestroyRequest | MonitorDestroy) -> None:
        self._destroy(ev.ioid)

    def _destroy(self, ioid: int) -> None:
        op = self.ops.pop(ioid, None)
        if op is not None and op.task is None and ioid not in self.monitors:
            return  # a finished get or put (p4p destroys one per operation)
        if op is not None:
            self.ops[ioid] = op
        self._forget(ioid)

    def _on_cancel(self, ev: CancelRequest) -> None:
        op = self.ops.get(ev.ioid)
        if op is not None and op.task is not None:
            op.task.cancel()

    def _channel(self, sid: int) -> tuple[str, SharedPV] | None:
        ch = self.channels.get(sid)
        return None if ch is None else (ch[0], ch[1])

    def _init(self, sid: int, ioid: int, req: VariantValue | None, kind: str) -> _Op:
        ch = self.channels.get(sid)
        if ch is None:
            raise RemoteProtocolError(f"{kind} on unknown channel sid {sid}")
        name, pv = ch[0], ch[1]
        t = pv.type
        key = (id(req), id(t))
        sel = self._selections.get(key)
        if sel is None or sel[0] is not req or sel[1] is not t:
            mask = ALL if t is None else request_mask(t, req)
            if len(self._selections) >= 32:
                self._selections.clear()
            sel = self._selections[key] = (req, t, mask, {})
        op = _Op(kind, sid, ioid, pv, name, sel[2], req, None, sel[3])
        self.ops[ioid] = op
        return op

    def _refuse(self, reply: Any) -> None:
        """Send an init's failure: the client forgets the operation, and so does the server
        (kept, a client that retries on new ioids would fill the table)."""
        self.ops.pop(reply.ioid, None)
        self._send(reply)

    # get
    def _on_get_init(self, ev: GetInit) -> None:
        data = self._get_init(ev.sid, ev.ioid, ev.pv_request)
        if data is not None:
            self._queue([data])

    def _get_init(self, sid: int, ioid: int, request: VariantValue | None) -> bytes | None:
        """Open a get operation; its reply's bytes when they are the caller's to send (see
        ``_init_ok``)."""
        t = self._init(sid, ioid, request, "get").pv.type
        if t is None:
            name = self.ops[ioid].name
            self._refuse(GetInitResponse(ioid, Status.error(f"{name} only supports RPC")))
            return None
        return self._init_ok(ioid, _GET, t)

    def _init_ok(self, ioid: int, command: int, t: Any) -> bytes | None:
        """A get or put init's success: the reply's bytes, from the type's cached encoding,
        for the caller to queue (``_queue``) or write; None when it went the general way
        (queued already)."""
        data = self.conn.send_init_ok(ioid, command, t)
        if data is None:
            cls = GetInitResponse if command == _GET else PutInitResponse
            self._send(cls.unchecked(ioid, Status.OK, t))
            return None
        self._repeats.clear()
        return data

    def _queue(self, pieces: list[Any] | None) -> None:
        """Queue a reply made by a shortcut (its buffers) for the batch's write."""
        if pieces is None:
            return
        self._out += pieces
        self._pending += sum(len(p) for p in pieces)
        if self._pending > 65536:
            self._write()  # as _send does: past the high-water mark, backpressure

    def _on_get(self, ev: Get) -> None:
        self._queue(self._answer_get(ev.ioid, ev.destroy))

    def _answer_get(
        self, ioid: int, destroy: bool, request: bytes | None = None
    ) -> list[Any] | None:
        """Answer a GET: the reply's buffers when the PV's shared encoding makes them, for the
        caller to queue or write; None when it went the general way (queued already).
        ``request``: the GET's bytes, when it came alone through ``receive_get`` (then the
        operation is back as the GET found it once answered, and the same bytes again can be
        answered with the same reply while nothing else happens: see ``buffer_updated``)."""
        op = self.ops.get(ioid)
        if op is None:
            return None
        pv = op.pv  # (a PV without a type refused the init, and forgot the operation)
        value = pv.value
        assigned = pv.assigned  # read after the value: it covers every field the value set
        sent = op.sent.get(assigned)
        if sent is None:
            if len(op.sent) >= 64:
                op.sent.clear()
            assert pv.type is not None
            mask = sent_mask(pv.type, op.mask, assigned)
            sent = op.sent[assigned] = (mask, BitSet.from_mask(mask))
        data = None
        if not destroy:
            # the value's encoding is shared with every get and monitor that sends it
            data = self.conn.send_get_update_pieces(ioid, pv._prepared(value, sent[0]))
            if data is not None and request is not None and not self._out and len(data) == 1:
                # remembered from an operation's second get on: p4p's client makes one
                # operation per get and would only fill and empty the table
                if op.polled:
                    self._repeats[request] = (op, value, data[0])
                op.polled = True
        if data is not None:
            return data
        self._send(GetResponse.unchecked(ioid, Status.OK, value, sent[1], False))
        if destroy:
            self.ops.pop(ioid, None)
        return None

    # put and put-get
    def _on_put_init(self, ev: PutInit) -> None:
        op = self._init(ev.sid, ev.ioid, ev.pv_request, "put")
        if op.pv.type is None or not op.pv.writable:
            self._refuse(PutInitResponse(ev.ioid, Status.error(f"{op.name} is not writable")))
            return
        data = self._init_ok(ev.ioid, _PUT, op.pv.type)
        if data is not None:
            self._queue([data])

    def _on_put_get_init(self, ev: PutGetInit) -> None:
        op = self._init(ev.sid, ev.ioid, ev.pv_request, "putget")
        t = op.pv.type
        if t is None or not op.pv.writable:
            self._refuse(PutGetInitResponse(ev.ioid, Status.error(f"{op.name} is not writable")))
            return
        self._send(PutGetInitResponse(ev.ioid, put_type=t, get_type=t))

    def _on_put_read(self, ev: PutRead) -> None:
        op = self.ops.get(ev.ioid)
        if op is None:
            return
        self._send(PutReadResponse.unchecked(ev.ioid, Status.OK, op.pv.value, _ALL_BITS, False))

    def _on_put_get_read(self, ev: PutGetRead) -> None:
        op = self.ops.get(ev.ioid)
        if op is None:
            return
        self._send(PutGetReadResponse(ev.ioid, ev.part, value=op.pv.value))

    def _on_put(self, ev: Put | PutGet) -> None:
        op = self.ops.get(ev.ioid)
        if op is None:
            return
        pv = op.pv
        assert pv.type is not None
        mask = ev.changed.mask
        if mask != op.put_mask:
            op.put_paths = tuple(pv.type.field_at(bit)[0] for bit in ev.changed)
            op.put_mask = mask
        access = self.server.access
        if access is not None and not access(self.peer, op.name, "put"):
            self._reply_put(ev, op, Status.error(f"put to {op.name} refused by access control"))
            return
        put = PutOperation(pv, op.name, self.peer, ev.value, op.put_paths, self._options(op))
        handler = pv.put_handler
        if handler is None:
            try:
                pv.post(put.fields)
            except Exception as exc:  # a value the PV cannot take: tell the client
                self._reply_put(ev, op, status_of(exc))
                return
            self._reply_put(ev, op, Status.OK)
            return
        try:
            result = handler(put)
        except Exception as exc:
            self._reply_put(ev, op, status_of(exc))
            return
        if asyncio.iscoroutine(result) or isinstance(result, asyncio.Future):
            op.task = self.loop.create_task(
                self._finish_later(op, result, lambda st, _: self._reply_put(ev, op, st, True))
            )
        else:
            self._reply_put(ev, op, Status.OK)

    async def _finish_later(
        self, op: _Op, pending: Any, reply: Callable[[Status, Any], None]
    ) -> None:
        """Await a put or RPC handler's awaitable and reply with its outcome (a cancelled or
        failed handler gives the client an error status, never a silent operation)."""
        try:
            result = await pending
        except asyncio.CancelledError:
            reply(Status.error("cancelled"), None)
            return
        except Exception as exc:
            reply(status_of(exc), None)
            return
        finally:
            op.task = None
        reply(Status.OK, result)

    def _options(self, op: _Op) -> dict[str, Any]:
        """The operation's pvRequest options, parsed once per operation (clients that reuse an
        operation send the same pvRequest only at INIT); a fresh dict for each handler."""
        options = op.options
        if options is None:
            options = op.options = request_options(op.request)
        return dict(options)

    def _reply_put(self, ev: Put | PutGet, op: _Op, status: Status, later: bool = False) -> None:
        if isinstance(ev, PutGet):
            value = op.pv.value if status.success else None
            reply: Event = PutGetResponse(ev.ioid, status, value=value)
        else:
            reply = PutResponse.unchecked(ev.ioid, status, False)
        self._reply(ev.ioid, ev.destroy, reply, later)

    def _reply(self, ioid: int, destroy: bool, reply: Event, later: bool) -> None:
        """Send an operation's reply: ``later`` from a handler's task (it writes at once), else
        with the replies of the read being handled; a request that destroys its operation ends
        it here."""
        if destroy:
            self.ops.pop(ioid, None)
        if later:
            self.send_later(reply)
        else:
            self._send(reply)

    # monitor
    def _on_monitor_init(self, ev: MonitorInit) -> None:
        op = self._init(ev.sid, ev.ioid, ev.pv_request, "monitor")
        pv = op.pv
        if pv.type is None:
            self._refuse(MonitorInitResponse(ev.ioid, Status.error(f"{op.name} only supports RPC")))
            return
        opts = request_options(ev.pv_request)
        limit = DEFAULT_QUEUE_SIZE
        try:
            if "queueSize" in opts:
                limit = max(2, int(opts["queueSize"]))
        except (TypeError, ValueError):
            pass
        limit = min(limit, self.server.max_queue_size)
        window: int | None = None
        if ev.queue_size is not None or truthy(opts.get("pipeline", False)):
            window = ev.queue_size if ev.queue_size is not None else limit
        self.monitors[ev.ioid] = MonitorQueue(self, ev.sid, ev.ioid, pv, op.mask, limit, window)
        self._send(MonitorInitResponse(ev.ioid, type=pv.type))

    def _on_monitor_start(self, ev: MonitorStart) -> None:
        mon = self.monitors.get(ev.ioid)
        if mon is not None:
            mon.start()

    def _on_monitor_stop(self, ev: MonitorStop) -> None:
        mon = self.monitors.get(ev.ioid)
        if mon is not None:
            mon.stop()

    def _on_monitor_ack(self, ev: MonitorAck) -> None:
        mon = self.monitors.get(ev.ioid)
        if mon is not None and mon.pipelined:
            mon.ack(ev.nfree)

    # rpc
    def _on_rpc_init(self, ev: RPCInit) -> None:
        op = self._init(ev.sid, ev.ioid, ev.pv_request, "rpc")
        if op.pv.rpc_handler is None:
            self._refuse(RPCInitResponse(ev.ioid, Status.error(f"{op.name} does not support RPC")))
            return
        self._send(RPCInitResponse(ev.ioid))

    def _on_rpc(self, ev: RPC) -> None:
        op = self.ops.get(ev.ioid)
        if op is None:
            return
        handler = op.pv.rpc_handler
        assert handler is not None
        if self.server.access is not None and not self.server.access(self.peer, op.name, "rpc"):
            self._reply_rpc(ev, Status.error(f"RPC to {op.name} refused by access control"), None)
            return
        call = RpcOperation(op.pv, op.name, self.peer, ev.argument, self._options(op))
        try:
            result = handler(call)
        except Exception as exc:
            self._reply_rpc(ev, status_of(exc), None)
            return
        if asyncio.iscoroutine(result) or isinstance(result, asyncio.Future):
            op.task = self.loop.create_task(
                self._finish_later(op, result, lambda st, r: self._reply_rpc(ev, st, r, True))
            )
        else:
            self._reply_rpc(ev, Status.OK, result)

    def _reply_rpc(self, ev: RPC, status: Status, result: Any, later: bool = False) -> None:
        typed: VariantValue | None = None
        if status.success:
            try:
                typed = to_typed(result)
            except Exception as exc:
                status = Status.error(f"RPC handler returned an unusable value: {exc}")
        self._reply(ev.ioid, ev.destroy, RPCResponse(ev.ioid, status, result=typed), later)

    # get-field
    def _on_get_field(self, ev: GetField) -> None:
        ch = self._channel(ev.sid)
        if ch is None:
            raise RemoteProtocolError(f"get-field on unknown channel sid {ev.sid}")
        name, pv = ch
        if pv.type is None:
            self._send(GetFieldResponse(ev.ioid, Status.error(f"{name} only supports RPC")))
            return
        t: Any = pv.type
        if ev.sub_field:
            try:
                t = pv.type[ev.sub_field]
            except Exception:
                self._send(GetFieldResponse(ev.ioid, Status.error(f"no field {ev.sub_field!r}")))
                return
        self._send(GetFieldResponse(ev.ioid, type=t))

    # process
    def _on_process_init(self, ev: ProcessInit) -> None:
        self._init(ev.sid, ev.ioid, ev.pv_request, "process")
        self._send(ProcessInitResponse(ev.ioid))

    def _on_process(self, ev: Process) -> None:
        op = self.ops.get(ev.ioid)
        if op is None:
            return
        if self.server.access is not None and not self.server.access(self.peer, op.name, "process"):
            self._send(ProcessResponse(ev.ioid, Status.error("process refused by access control")))
        else:
            # processing a SharedPV re-posts its value (monitors see a fresh timestamp)
            if op.pv.type is not None:
                op.pv.post({})
            self._send(ProcessResponse(ev.ioid))
        if ev.destroy:
            self.ops.pop(ev.ioid, None)

    # array
    def _array_type(self, op: _Op) -> ScalarArray | None:
        t = op.pv.type
        if t is None or "value" not in t:
            return None
        vt = t["value"]
        return vt if isinstance(vt, ScalarArray) else None

    def _on_array_init(self, ev: ArrayInit) -> None:
        op = self._init(ev.sid, ev.ioid, ev.pv_request, "array")
        at = self._array_type(op)
        if at is None:
            self._refuse(ArrayInitResponse(ev.ioid, Status.error(f"{op.name} has no array value")))
            return
        self._send(ArrayInitResponse(ev.ioid, type=at))

    def _on_array_get(self, ev: ArrayGet) -> None:
        op = self.ops.get(ev.ioid)
        if op is None:
            return
        arr = op.pv.value["value"]
        end = len(arr) if ev.count == 0 else ev.offset + ev.count * max(ev.stride, 1)
        self._send(ArrayGetResponse(ev.ioid, value=arr[ev.offset : end : max(ev.stride, 1)]))

    def _array_write(
        self, ioid: int, op: _Op, reply: type[ArrayPutResponse | ArraySetLengthResponse]
    ) -> ScalarArray | None:
        """The array type of a write (a put or a new length) this peer may make, or None once
        the refusal is sent: both are puts, under the PV's ``writable`` and the access hook."""
        at = self._array_type(op)
        if at is None or not op.pv.writable:
            self._send(reply(ioid, Status.error(f"{op.name} is not writable")))
            return None
        access = self.server.access
        if access is not None and not access(self.peer, op.name, "put"):
            self._send(reply(ioid, Status.error(f"put to {op.name} refused by access control")))
            return None
        return at

    def _array_post(
        self,
        ioid: int,
        op: _Op,
        at: ScalarArray,
        values: list[Any],
        reply: type[ArrayPutResponse | ArraySetLengthResponse],
    ) -> None:
        """Post the new array and answer; a value the PV cannot take is the client's error,
        not a reason to drop it."""
        try:
            op.pv.post({"value": coerce(at, values)})
        except Exception as exc:
            self._send(reply(ioid, status_of(exc)))
            return
        self._send(reply(ioid))

    def _grown(
        self,
        ioid: int,
        op: _Op,
        at: ScalarArray,
        values: list[Any],
        length: int,
        reply: type[ArrayPutResponse | ArraySetLengthResponse],
    ) -> list[Any] | None:
        """``values`` grown to ``length`` with the element type's zero ("" for strings), or
        None once refused: an offset or length is a 32-bit number in a message of a few
        bytes, so growth is bounded by what one message could carry (memory stays bounded
        whatever a peer asks)."""
        if length <= len(values):
            return values
        limit = max(len(values), self.server.max_message_size // 8)
        if length > limit:
            self._send(
                reply(
                    ioid,
                    Status.error(
                        f"{op.name}: an array write may grow it to {limit} elements, not {length}"
                    ),
                )
            )
            return None
        return values + ["" if at.kind == "s" else 0] * (length - len(values))

    def _on_array_put(self, ev: ArrayPut) -> None:
        op = self.ops.get(ev.ioid)
        if op is None:
            return
        at = self._array_write(ev.ioid, op, ArrayPutResponse)
        if at is None:
            return
        cur = list(op.pv.value["value"])
        stride = max(ev.stride, 1)
        new = list(ev.value)
        need = ev.offset + (len(new) - 1) * stride + 1 if new else 0
        grown = self._grown(ev.ioid, op, at, cur, need, ArrayPutResponse)
        if grown is None:
            return
        cur = grown
        for i, v in enumerate(new):
            cur[ev.offset + i * stride] = v
        self._array_post(ev.ioid, op, at, cur, ArrayPutResponse)

    def _on_array_set_length(self, ev: ArraySetLength) -> None:
        op = self.ops.get(ev.ioid)
        if op is None:
            return
        at = self._array_write(ev.ioid, op, ArraySetLengthResponse)
        if at is None:
            return
        kept = list(op.pv.value["value"])[: ev.length]
        cur = self._grown(ev.ioid, op, at, kept, ev.length, ArraySetLengthResponse)
        if cur is not None:
            self._array_post(ev.ioid, op, at, cur, ArraySetLengthResponse)

    def _on_array_get_length(self, ev: ArrayGetLength) -> None:
        op = self.ops.get(ev.ioid)
        if op is None:
            return
        self._send(ArrayGetLengthResponse(ev.ioid, length=len(op.pv.value["value"])))

    def _on_too_big(self, ev: MessageTooBig) -> None:
        """A request over ``max_message_size``, read past: its error reply says so."""
        log.info("pva server: %s sent %d bytes, over max_message_size", self._who(), ev.size)
        if ev.destroy:
            self.ops.pop(ev.ioid, None)
        self._send(ev.reply)

    def _on_closed(self, ev: ConnectionClosed) -> None:
        if self.transport is not None:
            self.transport.close()


_HANDLERS: dict[type, Callable[[ServerProtocol, Any], None]] = {
    ConnectionValidationResponse: ServerProtocol._on_validation,
    Echo: ServerProtocol._on_echo,
    ControlEchoRequest: ServerProtocol._on_control_echo,
    SearchRequest: ServerProtocol._on_search,
    CreateChannelRequest: ServerProtocol._on_create_channel,
    DestroyChannel: ServerProtocol._on_destroy_channel,
    DestroyRequest: ServerProtocol._on_destroy_request,
    MonitorDestroy: ServerProtocol._on_destroy_request,
    CancelRequest: ServerProtocol._on_cancel,
    GetInit: ServerProtocol._on_get_init,
    Get: ServerProtocol._on_get,
    PutInit: ServerProtocol._on_put_init,
    Put: ServerProtocol._on_put,
    PutRead: ServerProtocol._on_put_read,
    PutGetInit: ServerProtocol._on_put_get_init,
    PutGet: ServerProtocol._on_put,
    PutGetRead: ServerProtocol._on_put_get_read,
    MonitorInit: ServerProtocol._on_monitor_init,
    MonitorStart: ServerProtocol._on_monitor_start,
    MonitorStop: ServerProtocol._on_monitor_stop,
    MonitorAck: ServerProtocol._on_monitor_ack,
    RPCInit: ServerProtocol._on_rpc_init,
    RPC: ServerProtocol._on_rpc,
    GetField: ServerProtocol._on_get_field,
    ProcessInit: ServerProtocol._on_process_init,
    Process: ServerProtocol._on_process,
    ArrayInit: ServerProtocol._on_array_init,
    ArrayGet: ServerProtocol._on_array_get,
    ArrayPut: ServerProtocol._on_array_put,
    ArraySetLength: ServerProtocol._on_array_set_length,
    ArrayGetLength: ServerProtocol._on_array_get_length,
    ConnectionClosed: ServerProtocol._on_closed,
    MessageTooBig: ServerProtocol._on_too_big,
}
