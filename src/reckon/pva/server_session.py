"""One connection's PV semantics, without I/O framework: its channels, operations and
monitors over one sans-I/O ``ServerConnection`` (bytes in, events out, replies written
straight back to a byte sink).

A :class:`ServerSession` is given the bytes its peer sent (``receive``) and writes its replies
to a sink with ``write``/``writelines`` (an asyncio transport is one; see
:class:`reckon.pva.server.ServerProtocol`). It runs its handlers' coroutines and its writes on a
scheduler (``time``, ``call_soon``, ``call_at``, ``create_task``: an asyncio loop is one), and
reaches the server only through its :class:`~reckon.pva.server_context.ServerContext`.

A peer that breaks the protocol is logged and dropped; nothing it sends can reach another
connection. Memory stays bounded in bytes: the receive side by the protocol's
``max_message_size`` (a message over it is read past and answered with an error); when the
sink passes its high-water mark the session stops taking requests (backpressure); the monitor
updates queued behind others are held to ``max_queue_bytes`` (then they coalesce).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from reckon.pva import server_calls
from reckon.pva.monitor_queue import MonitorQueue
from reckon.pva.protocol import (
    NEED_DATA,
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
    ProtocolError,
    PutInit,
    PutInitResponse,
    RemoteProtocolError,
    SearchRequest,
    ServerConnection,
    Status,
    VariantValue,
    request_options,
)
from reckon.pva.pv import Peer, SharedPV
from reckon.pva.selection import ALL, request_mask, sent_mask, truthy
from reckon.pva.server_context import ByteSink, Op, Scheduler, ServerContext

log = logging.getLogger("reckon.pva.server")

DEFAULT_QUEUE_SIZE = 4
#: monitor updates posted within this many seconds of the last write share the next write
COALESCE = 0.0001
#: a session's ``_write_timer`` while it waits for its :class:`WriteTurn`
_DUE = True
_GET, _PUT = int(Command.GET), int(Command.PUT)
#: reads up to this size may be one whole request, taken by the shortcut; bigger ones (array
#: values) go straight to the framer, which copies them out of the receive buffer only once
_ONE_REQUEST_MAX = 4096


# ------------------------------------------------------------------------------------------
# one connection
# ------------------------------------------------------------------------------------------


class ServerSession:
    """One connection's channels, operations and monitors (see the module's docstring)."""

    def __init__(self, context: ServerContext, scheduler: Scheduler) -> None:
        self.context = context
        self.loop = scheduler
        self.conn = ServerConnection(max_message_size=context.max_message_size)
        self.sink: ByteSink | None = None
        self.peer = Peer(("?", 0))
        self.channels: dict[int, tuple[str, SharedPV, int]] = {}  # sid -> (name, pv, cid)
        self.ops: dict[int, Op] = {}
        #: sid -> (pvRequest, PV type, Op) of the channel's last get: p4p opens a get per get
        self._gets: dict[int, tuple[Any, Any, Op]] = {}
        self._selections = context.selections
        self.monitors: dict[int, MonitorQueue] = {}
        #: bytes of the monitor updates queued behind others (see MonitorQueue), and the limit
        self.queued_bytes = 0
        self.max_queue_bytes = context.max_queue_bytes
        self._dirty: dict[int, MonitorQueue] = {}
        self._write_timer: Any = None  # the scheduler's handle of a pending write
        self._last_write = 0.0
        #: set on every read; the idle sweeper turns it into ``last_rx`` (no clock per read)
        self.heard = False
        self.last_rx = scheduler.time()
        self._write_paused = False
        self.closed = False
        self._out: list[Any] = []  # buffers to write, in order
        self._pending = 0

    # ------------------------------------------------------------------ the sink's life
    def opened(self, sink: ByteSink, address: tuple[str, int]) -> None:
        """The peer at ``address`` connected; bytes for it go to ``sink``."""
        self.sink = sink
        self.peer = Peer(address)
        self.heard = True  # connecting counts as hearing from the peer (the state may be old)
        self.context.sessions.add(self)
        sink.write(self.conn.initiate(self.context.config.auth_methods))

    def lost(self) -> None:
        """The connection is gone: end every operation and monitor."""
        self.closed = True
        self.context.sessions.discard(self)
        for ioid in [*self.ops, *self.monitors]:
            self._forget(ioid)
        self.channels.clear()
        self._dirty.clear()  # (a write still scheduled finds nothing to write)

    def pause(self) -> None:
        """The sink is full: take no more requests until :meth:`resume`."""
        self._write_paused = True
        if self.sink is not None:
            self.sink.pause_reading()

    def resume(self) -> None:
        self._write_paused = False
        self._process()  # (it sends what waited, and what its requests add)
        if self.sink is not None and not self._write_paused and not self.closed:
            self.sink.resume_reading()

    def receive(self, view: bytes | memoryview) -> None:
        """Bytes from the peer, in a buffer reused after this returns: one whole request (the
        usual read) skips the framer; the framer copies what it keeps of anything else."""
        self.heard = True
        events = None
        try:
            if len(view) <= _ONE_REQUEST_MAX and not self._write_paused and not self.closed:
                events = self.conn.receive_message(view)
            if events is None:
                self.conn.receive_data(view)
        except ProtocolError as exc:
            self.drop(exc)
            return
        self._process(events)

    # ------------------------------------------------------------------ event loop
    def _process(self, events: list[Event] | None = None) -> None:
        """Handle ``events`` (one whole message's, together) or else every event the connection
        has until the sink pauses; then write the replies and the updates they made."""
        if self._dirty:  # (updates waiting for their write go out ahead of the replies)
            self._take()
        try:
            if events is not None:  # (receive() took them: neither paused nor closed)
                for ev in events:
                    _HANDLERS.get(type(ev), _ignored)(self, ev)
                    if self.closed:
                        break
            elif not self._write_paused and not self.closed:
                for ev in iter(self.conn.next_event, NEED_DATA):
                    _HANDLERS.get(type(ev), _ignored)(self, ev)
                    if self.closed or self._write_paused:
                        break
        except Exception as exc:
            self._failed(exc)
            return
        if self._dirty:
            self._take()  # (nothing while closed or paused)
        if self._out:
            self._write()  # (drops it when closed)

    def _failed(self, exc: Exception) -> None:
        """Handling this peer's requests raised: drop the peer, only it. Call from the except
        block (a bug of ours, or an invalid send, is logged with its traceback)."""
        if not isinstance(exc, RemoteProtocolError):
            log.exception("pva server: internal error serving %s:%s", *self.peer.address)
        self.drop(exc)

    def drop(self, exc: BaseException) -> None:
        """Disconnect the peer, saying why in the log."""
        log.warning("pva server: dropping client %s:%s: %s", *self.peer.address, exc)
        self.closed = True
        if self.sink is not None:
            self.sink.abort()

    def send(self, ev: Event) -> None:
        self.queue_out(self.conn.send(ev))

    def _write(self) -> None:
        out = self._out
        if not out or self.sink is None or self.closed:
            out.clear()
            return
        self._pending = 0
        if len(out) == 1:
            self.sink.write(out.pop())
        else:  # one vectored write: big arrays go from their own buffers (uvloop: writev)
            self._out = []
            self.sink.writelines(out)

    def send_later(self, ev: Event) -> None:
        """Send from a task (handler completion)."""
        if self.closed:
            return
        try:
            self.send(ev)
        except ProtocolError as exc:
            log.debug("pva server: not sent to %s:%s: %s", *self.peer.address, exc)
            self._out.clear()
            return
        self._write()

    # ------------------------------------------------------------------ monitors
    def want_flush(self, mon: MonitorQueue) -> None:
        """A monitor has something to send.

        It is taken from its queue, encoded and written at the end of this turn of the loop
        (by a :class:`WriteTurn`), with what else the turn adds: one write per connection for
        every post a thread handed over in one batch. Within ``COALESCE`` seconds of the last
        write it waits for the window to end: a burst costs a syscall per window. Until taken,
        updates queue and a full queue squashes later posts into its newest entry, as pvxs's
        does while its sender is busy. Requests being handled take them before their replies.
        """
        self._dirty[mon.ioid] = mon
        if self._write_paused or self.closed or self._write_timer is not None:
            return
        self._write_timer = _DUE
        turn = self.context.turn
        if turn is None:
            turn = self.context.turn = WriteTurn(self.loop)
        if not turn.due:
            self.loop.call_soon(turn.run)
        turn.due.append(self)

    def _timed_write(self) -> None:
        self._turn_taken(self.loop.time())
        self._write()

    def _turn_taken(self, now: float) -> None:
        """This connection's write turn has come (at ``now``): its updates are taken; the
        caller writes them."""
        self._write_timer, self._last_write = None, now
        self._take()

    def _take(self) -> None:
        """Encode what the dirty monitors may send into the pending output."""
        dirty = self._dirty
        if not dirty or self.closed or self._write_paused:
            return
        # (uncounted by _pending: their queues bounded them in bytes; the coming write sends them)
        self._dirty, out = {}, self._out
        for mon in dirty.values():
            mon.take(out)  # (a closed monitor's queue is empty: it sends nothing)

    # ------------------------------------------------------------------ dispatch
    def _on_validation(self, ev: ConnectionValidationResponse) -> None:
        method = ev.auth_method or "anonymous"
        if method not in self.context.config.auth_methods:
            self.send(ConnectionValidated(Status.error(f"authentication {method!r} refused")))
            return
        who = (ev.user or "", ev.host or "") if method == "ca" else ()
        self.peer = Peer(self.peer.address, method, *who)
        self.send(ConnectionValidated.unchecked(Status.OK))

    def _on_search(self, ev: SearchRequest) -> None:
        search = self.context.search
        reply = None if search is None else search(ev, self.peer.address)
        if reply is not None:
            self.send(reply)

    def _on_create_channel(self, ev: CreateChannelRequest) -> None:
        pv = self.context.pvs.get(ev.name)
        if pv is None:
            self.send(
                CreateChannelResponse(ev.cid, 0xFFFFFFFF, Status.error(f"no PV named {ev.name!r}"))
            )
            return
        sid = self.context.next_sid()
        self.channels[sid] = (ev.name, pv, ev.cid)
        self.send(CreateChannelResponse.unchecked(ev.cid, sid, Status.OK))

    def _on_destroy_channel(self, ev: DestroyChannel) -> None:
        if self.channels.pop(ev.sid, None) is not None:
            self._forget_channel(ev.sid)
            self.send(DestroyChannel(ev.sid, ev.cid))

    def close_pv(self, name: str) -> None:
        """``name`` is no longer published: its channels here are destroyed (the client sees
        them go), with their operations and monitors."""
        for sid, (chname, _pv, cid) in list(self.channels.items()):
            if chname == name:
                del self.channels[sid]
                self._forget_channel(sid)
                self.send_later(DestroyChannel(sid, cid))

    def _forget_channel(self, sid: int) -> None:
        self._gets.pop(sid, None)
        for ioid in [i for i, op in self.ops.items() if op.sid == sid]:
            self._forget(ioid)

    def _forget(self, ioid: int) -> None:
        if (op := self.ops.pop(ioid, None)) is not None and op.task is not None:
            op.task.cancel()
        mon = self.monitors.pop(ioid, None)
        if mon is not None:
            mon.close()
        self._dirty.pop(ioid, None)

    def _on_cancel(self, ev: CancelRequest) -> None:
        if (op := self.ops.get(ev.ioid)) is not None and op.task is not None:
            op.task.cancel()

    def _channel(self, sid: int, kind: str) -> tuple[str, SharedPV, int]:
        if (ch := self.channels.get(sid)) is None:
            raise RemoteProtocolError(f"{kind} on unknown channel sid {sid}")
        return ch

    def open_op(self, sid: int, ioid: int, req: VariantValue | None, kind: str) -> Op:
        name, pv, _cid = self._channel(sid, kind)
        t = pv.type
        key = (id(req), id(t))
        sel = self._selections.get(key)
        if sel is None or sel[0] is not req or sel[1] is not t:
            mask = ALL if t is None else request_mask(t, req)
            if len(self._selections) >= 32:
                self._selections.clear()
            sel = self._selections[key] = (req, t, mask, {}, request_options(req))
        op = Op(sid, pv, name, sel[2], sel[4], None, sel[3])
        self.ops[ioid] = op
        return op

    def refuse(self, reply: Any) -> None:
        """Send an init's failure: the client forgets the operation, and so does the server
        (kept, a client that retries on new ioids would fill the table)."""
        self.ops.pop(reply.ioid, None)
        self.send(reply)

    # get
    def _on_get_init(self, ev: GetInit) -> None:
        last = self._gets.get(ev.sid)  # (a get's Op is never changed: they may share one)
        if last is not None and last[0] is ev.pv_request and last[2].pv.type is last[1]:
            op = self.ops[ev.ioid] = last[2]
        else:
            op = self.open_op(ev.sid, ev.ioid, ev.pv_request, "get")
            self._gets[ev.sid] = (ev.pv_request, op.pv.type, op)
        t = op.pv.type
        if t is None:
            self.refuse(GetInitResponse(ev.ioid, Status.error(f"{op.name} only supports RPC")))
            return
        # a prepared reply (the type's encoding with the ioid as a hole): p4p inits every get
        self.queue_out(self.conn.send_init_ok(ev.ioid, _GET, t))

    def queue_out(self, *pieces: Any) -> None:
        """Queue a reply's buffers for the batch's write."""
        self._out += pieces
        self._pending += sum(map(len, pieces))
        if self._pending > 65536:
            # hand big batches to the transport now: past its high-water mark it calls
            # pause_writing(), which stops _process() from answering more requests
            self._write()

    def _on_get(self, ev: Get) -> None:
        """Answer a GET: the value's prepared pieces (shared with every get and monitor that
        sends it: a PV nobody posted to since costs no encoding) behind a head of this
        reply's own, or the general way."""
        ioid, destroy = ev.ioid, ev.destroy
        if (op := self.ops.get(ioid)) is None:
            return
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
        if not destroy:
            data = self.conn.send_get_update_pieces(ioid, pv.prepared(value, sent[0]))
            if data is not None:
                self.queue_out(*data)
                return
        self.send(GetResponse.unchecked(ioid, Status.OK, value, sent[1], False))
        if destroy:
            self.ops.pop(ioid, None)

    # put and put-get
    def _on_put_init(self, ev: PutInit) -> None:
        op = self.open_op(ev.sid, ev.ioid, ev.pv_request, "put")
        if op.pv.type is None or not op.pv.writable:
            self.refuse(PutInitResponse(ev.ioid, Status.error(f"{op.name} is not writable")))
            return
        self.queue_out(self.conn.send_init_ok(ev.ioid, _PUT, op.pv.type))

    # monitor
    def _on_monitor_init(self, ev: MonitorInit) -> None:
        op = self.open_op(ev.sid, ev.ioid, ev.pv_request, "monitor")
        pv = op.pv
        if pv.type is None:
            self.refuse(MonitorInitResponse(ev.ioid, Status.error(f"{op.name} only supports RPC")))
            return
        opts = op.options
        try:
            limit = max(2, int(opts.get("queueSize", DEFAULT_QUEUE_SIZE)))
        except (TypeError, ValueError):
            limit = DEFAULT_QUEUE_SIZE
        limit = min(limit, self.context.max_queue_size)
        window = ev.queue_size
        if window is None and truthy(opts.get("pipeline", False)):
            window = limit
        self.monitors[ev.ioid] = MonitorQueue(self, ev.ioid, pv, op.mask, limit, window)
        self.send(MonitorInitResponse(ev.ioid, type=pv.type))

    def _on_monitor(self, ev: MonitorStart | MonitorStop | MonitorAck) -> None:
        if (mon := self.monitors.get(ev.ioid)) is None:
            return
        if type(ev) is MonitorAck:  # (exact classes, see _HANDLERS; acks are the most frequent)
            mon.ack(ev.nfree)
        elif type(ev) is MonitorStart:
            mon.start()
        else:
            mon.stop()

    # get-field
    def _on_get_field(self, ev: GetField) -> None:
        name, pv, _cid = self._channel(ev.sid, "get-field")
        if pv.type is None:
            self.send(GetFieldResponse(ev.ioid, Status.error(f"{name} only supports RPC")))
            return
        t: Any = pv.type
        if ev.sub_field:
            try:
                t = pv.type[ev.sub_field]
            except Exception:
                self.send(GetFieldResponse(ev.ioid, Status.error(f"no field {ev.sub_field!r}")))
                return
        self.send(GetFieldResponse(ev.ioid, type=t))

    def _on_too_big(self, ev: MessageTooBig) -> None:
        """A request over ``max_message_size``, read past: its error reply says so."""
        log.info(
            "pva server: %s:%s sent %d bytes, over max_message_size", *self.peer.address, ev.size
        )
        if ev.destroy:
            self.ops.pop(ev.ioid, None)
        self.send(ev.reply)

    def _on_closed(self, ev: ConnectionClosed) -> None:
        if self.sink is not None:
            self.sink.close()


class WriteTurn:
    """A server's connections with monitor updates to write this turn of the loop: one
    callback at its end writes each (one per connection cost a post to 50 monitors ~3 us
    each), except those within ``COALESCE`` of their last write, which wait for its end.

    Every connection's updates are encoded first, then written: a write wakes its client, which
    may take the CPU, and Python run between such switches ran on cold caches (12-18% more)."""

    __slots__ = ("due", "loop")

    def __init__(self, loop: Scheduler) -> None:
        self.loop = loop
        self.due: list[ServerSession] = []

    def run(self) -> None:
        due, self.due = self.due, []
        now = self.loop.time()
        taken: list[ServerSession] = []
        for session in due:  # (one lost meanwhile writes nothing)
            if now - session._last_write >= COALESCE:
                session._turn_taken(now)
                taken.append(session)
            else:
                when = session._last_write + COALESCE
                session._write_timer = self.loop.call_at(when, session._timed_write)
        for session in taken:
            session._write()


def _ignored(session: ServerSession, ev: Event) -> None:
    log.debug("pva server: ignoring %s from %s:%s", type(ev).__name__, *session.peer.address)


_HANDLERS: dict[type, Callable[[ServerSession, Any], None]] = {
    ConnectionValidationResponse: ServerSession._on_validation,
    Echo: lambda session, ev: session.send(Echo(ev.payload)),
    ControlEchoRequest: lambda session, ev: session.send(ControlEchoResponse(ev.value)),
    SearchRequest: ServerSession._on_search,
    CreateChannelRequest: ServerSession._on_create_channel,
    DestroyChannel: ServerSession._on_destroy_channel,
    DestroyRequest: lambda session, ev: session._forget(ev.ioid),  # (p4p: one per get and put)
    MonitorDestroy: lambda session, ev: session._forget(ev.ioid),
    CancelRequest: ServerSession._on_cancel,
    GetInit: ServerSession._on_get_init,
    Get: ServerSession._on_get,
    PutInit: ServerSession._on_put_init,
    MonitorInit: ServerSession._on_monitor_init,
    MonitorStart: ServerSession._on_monitor,
    MonitorStop: ServerSession._on_monitor,
    MonitorAck: ServerSession._on_monitor,
    GetField: ServerSession._on_get_field,
    ConnectionClosed: ServerSession._on_closed,
    MessageTooBig: ServerSession._on_too_big,
    **server_calls.HANDLERS,
}
