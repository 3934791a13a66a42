"""The asyncio pvAccess server: TCP connections, channels and operations over SharedPVs.

Each TCP connection is an ``asyncio.Protocol`` around one sans-I/O ``ServerConnection``: bytes
in, events out, replies written straight back. A peer that breaks the protocol is logged and
dropped; nothing it sends can reach another connection.

Memory stays bounded per connection: the receive side is bounded by the protocol's
``max_message_size``; when the socket's send buffer passes its high-water mark the connection
stops reading and stops processing buffered requests (backpressure), and monitor queues hold at
most ``queueSize`` updates, coalescing into the newest when full (so the last value always
arrives, pipelined or not).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from reckon.errors import PvaAccessDeniedError, PvaError
from reckon.pva.config import ServerConfig
from reckon.pva.discovery import SearchResponder, new_guid
from reckon.pva.protocol import (
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
    MonitorAck,
    MonitorDestroy,
    MonitorFinish,
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
    Structure,
    VariantValue,
    request_fields,
    request_options,
)
from reckon.pva.pv import Peer, PutOperation, RpcOperation, SharedPV, coerce

log = logging.getLogger("reckon.pva.server")

#: access(peer, pv name, operation) -> allowed; operation is "put", "rpc" or "process"
AccessHook = Callable[[Peer, str, str], bool]

_ALL = 1  # bit 0: the whole structure
_ALL_BITS = BitSet.from_mask(_ALL)
DEFAULT_QUEUE_SIZE = 4
#: bytes one read may take from a socket
RECEIVE_BUFFER = 256 * 1024
#: monitor updates posted within this many seconds of the last write share the next write
COALESCE = 0.0001


def request_mask(t: Structure, pv_request: VariantValue | None) -> int:
    """The bit mask of the fields a pvRequest's ``field(...)`` selects (bit 0 = everything).

    Fields the structure does not have are ignored, as pvxs does.
    """
    offsets = t.offsets
    mask = 0
    for path in request_fields(pv_request):
        bit = offsets.get(path)
        if bit is not None:
            mask |= 1 << bit
    return mask or _ALL


def _expand(t: Structure, mask: int) -> int:
    """Every offset a mask covers (a structure's bit covers its fields)."""
    if mask & _ALL:
        return (1 << t.bit_count) - 1
    out = 0
    m = mask
    while m:
        low = m & -m
        bit = low.bit_length() - 1
        m ^= low
        _, sub = t.field_at(bit)
        out |= ((1 << sub.bit_count) - 1) << bit
    return out


def _truthy(v: Any) -> bool:
    if isinstance(v, str):
        return v.strip().lower() in ("true", "1", "yes")
    return bool(v)


# ------------------------------------------------------------------------------------------
# operations
# ------------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Op:
    kind: str
    sid: int
    ioid: int
    pv: SharedPV
    name: str
    mask: int = _ALL
    request: VariantValue | None = None
    task: asyncio.Task[None] | None = None
    changed: BitSet | None = None
    #: request_options(request), computed on first use (p4p sends one put per operation, but
    #: reckon's client and others reuse an operation for many)
    options: dict[str, Any] | None = None
    #: the paths of the last put's changed mask (puts usually set the same fields each time)
    put_mask: int = -1
    put_paths: tuple[str, ...] = ()


class _Monitor:
    """One subscription: a bounded queue of [changed, value, overrun] that coalesces when full."""

    __slots__ = (
        "closed", "conn", "expanded", "finished", "ioid", "limit", "loop", "mask", "pipelined",
        "pv", "queue", "running", "sid", "squashed", "window",
    )  # fmt: skip

    def __init__(
        self, conn: _ServerProtocol, sid: int, ioid: int, pv: SharedPV, mask: int, limit: int,
        window: int | None,
    ) -> None:  # fmt: skip
        assert pv.type is not None
        self.conn = conn
        self.loop = conn.loop
        self.sid = sid
        self.ioid = ioid
        self.pv = pv
        self.mask = mask
        self.expanded = _expand(pv.type, mask)
        self.limit = max(1, limit)
        self.pipelined = window is not None
        self.window = window or 0
        self.queue: deque[list[Any]] = deque()
        self.running = False
        self.finished = False
        self.closed = False
        self.squashed = 0

    def start(self) -> None:
        if self.running or self.closed:
            return
        self.running = True
        self.pv._subscribe(self)
        self.queue.clear()
        self.queue.append([self.mask, self.pv.value, 0])
        self.conn.want_flush(self)

    def stop(self) -> None:
        self.running = False
        self.pv._unsubscribe(self)

    def on_post(self, mask: int, value: dict[str, Any]) -> None:
        if not self.running or self.closed:
            return
        if self.mask != _ALL:
            mask &= self.expanded
            if not mask:
                return
        q = self.queue
        if len(q) < self.limit:
            q.append([mask, value, 0])
        else:
            # full: fold into the newest entry; fields changed twice are marked as overrun
            last = q[-1]
            last[2] |= last[0] & mask
            last[0] |= mask
            last[1] = value
            self.squashed += 1
        if self.pipelined and self.window <= 0:
            return  # nothing may leave before the client acks (ack() flushes)
        self.conn.want_flush(self)

    def on_close(self) -> None:
        self.finished = True
        self.conn.want_flush(self)

    def ack(self, nfree: int) -> None:
        self.window += nfree
        # unlike pvxs 1.5.3, an ack always resumes a stalled queue
        if self.queue:
            self.conn.want_flush(self)

    def take(self, out: list[Any]) -> None:
        """Move what the window allows from the queue into ``out``: (ioid, update encoded once
        for every subscriber with the same fields, overrun mask) tuples, or MonitorFinish."""
        q = self.queue
        prepared = self.pv._prepared
        while q and (not self.pipelined or self.window > 0):
            mask, value, overrun = q.popleft()
            out.append((self.ioid, prepared(value, mask), overrun))
            if self.pipelined:
                self.window -= 1
        if self.finished and not q and not self.closed:
            out.append(MonitorFinish(self.ioid, Status.OK))
            self.closed = True

    def close(self) -> None:
        self.closed = True
        self.running = False
        self.queue.clear()
        self.pv._unsubscribe(self)


# ------------------------------------------------------------------------------------------
# one TCP connection
# ------------------------------------------------------------------------------------------


class _ServerProtocol(asyncio.BufferedProtocol):
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
        # (id(pvRequest), id(type)) -> (pvRequest, type, mask, changed): the protocol shares
        # the decoded pvRequest of repeated INITs, so p4p's one-op-per-get costs a lookup
        self._selections: dict[tuple[int, int], tuple[Any, Any, int, BitSet]] = {}
        self.monitors: dict[int, _Monitor] = {}
        self._dirty: dict[int, _Monitor] = {}
        self._busy = False
        self._write_timer: asyncio.TimerHandle | None = None
        self._last_write = 0.0
        #: set on every read; the idle sweeper turns it into ``last_rx`` (no clock per read)
        self.heard = False
        self.last_rx = server.loop.time()
        self._write_paused = False
        self._closed = False
        self._out: list[bytes] = []
        self._pending = 0

    # ------------------------------------------------------------------ transport callbacks
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # cast, not isinstance: uvloop's transports are not subclasses of asyncio.Transport
        tr = cast(asyncio.Transport, transport)
        self.transport = tr
        peername = transport.get_extra_info("peername") or ("?", 0)
        self.peer = Peer((str(peername[0]), int(peername[1])))
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        tr.set_write_buffer_limits(high=self.server.send_high_water)
        self.server._connections.add(self)
        tr.write(self.conn.initiate(self.server.config.auth_methods))

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
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
        try:
            # receive_data copies the bytes out (the buffer is reused by the next read)
            self.conn.receive_data(self._rxbuf[:nbytes])
        except ProtocolError as exc:
            self._drop(exc)
            return
        self._process()

    def data_received(self, data: bytes | memoryview) -> None:
        self.heard = True
        try:
            self.conn.receive_data(data)
        except ProtocolError as exc:
            self._drop(exc)
            return
        self._process()

    def eof_received(self) -> bool | None:
        return None

    # ------------------------------------------------------------------ event loop
    def _process(self) -> None:
        conn = self.conn
        out = self._out
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
        except RemoteProtocolError as exc:
            self._drop(exc)
            return
        except Exception as exc:  # a bug of ours (or an invalid send): this peer only
            log.exception("pva server: internal error serving %s", self._who())
            self._drop(exc)
            return
        finally:
            self._busy = False
        if self._dirty and not self._write_paused:
            self._flush()  # monitor updates made while handling requests go out with replies
        elif out:
            self._write()

    def _who(self) -> str:
        return f"{self.peer.address[0]}:{self.peer.address[1]}"

    def _drop(self, exc: BaseException) -> None:
        log.warning("pva server: dropping client %s: %s", self._who(), exc)
        self._closed = True
        if self.transport is not None:
            self.transport.abort()

    def _send(self, ev: Event) -> None:
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
        data = out[0] if len(out) == 1 else b"".join(out)
        out.clear()
        self._pending = 0
        self.transport.write(data)

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
    def want_flush(self, mon: _Monitor) -> None:
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
        dirty = self._dirty
        self._dirty = {}
        items: list[Any] = []
        for mon in dirty.values():
            if not mon.closed or mon.finished:
                mon.take(items)
        if not items:
            return
        conn = self.conn
        send_update = conn.send_update
        out = self._out
        n = self._pending
        for item in items:
            try:
                if type(item) is tuple:
                    ioid, update, overrun = item
                    if overrun:
                        data = send_update(ioid, update, BitSet.from_mask(overrun))
                    else:
                        data = send_update(ioid, update)
                else:
                    data = conn.send(item)
            except ProtocolError as exc:  # the client destroyed it meanwhile
                log.debug("pva server: monitor update dropped: %s", exc)
                continue
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
        self._send(ConnectionValidated(Status.OK))

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
        self._send(CreateChannelResponse(ev.cid, sid))

    def _on_destroy_channel(self, ev: DestroyChannel) -> None:
        if self.channels.pop(ev.sid, None) is None:
            return
        for ioid in [i for i, op in self.ops.items() if op.sid == ev.sid]:
            self._forget(ioid)
        self._send(DestroyChannel(ev.sid, ev.cid))

    def _forget(self, ioid: int) -> None:
        op = self.ops.pop(ioid, None)
        if op is not None and op.task is not None:
            op.task.cancel()
        mon = self.monitors.pop(ioid, None)
        if mon is not None:
            mon.close()
        self._dirty.pop(ioid, None)

    def _on_destroy_request(self, ev: DestroyRequest | MonitorDestroy) -> None:
        ioid = ev.ioid
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

    def _init(self, ev: Any, kind: str) -> _Op | None:
        ch = self.channels.get(ev.sid)
        if ch is None:
            raise RemoteProtocolError(f"{kind} on unknown channel sid {ev.sid}")
        name, pv = ch[0], ch[1]
        req = ev.pv_request
        t = pv.type
        key = (id(req), id(t))
        sel = self._selections.get(key)
        if sel is None or sel[0] is not req or sel[1] is not t:
            mask = _ALL if t is None else request_mask(t, req)
            if len(self._selections) >= 32:
                self._selections.clear()
            sel = self._selections[key] = (req, t, mask, BitSet.from_mask(mask))
        op = _Op(kind, ev.sid, ev.ioid, pv, name, sel[2], req, None, sel[3])
        self.ops[ev.ioid] = op
        return op

    # get
    def _on_get_init(self, ev: GetInit) -> None:
        op = self._init(ev, "get")
        assert op is not None
        if op.pv.type is None:
            self._send(GetInitResponse(ev.ioid, Status.error(f"{op.name} only supports RPC")))
            return
        self._send(GetInitResponse.unchecked(ev.ioid, Status.OK, op.pv.type))

    def _on_get(self, ev: Get) -> None:
        op = self.ops.get(ev.ioid)
        if op is None:
            return
        changed = op.changed
        if changed is None:
            changed = op.changed = BitSet.from_mask(op.mask)
        self._send(GetResponse.unchecked(ev.ioid, Status.OK, op.pv.value, changed, False))
        if ev.destroy:
            self.ops.pop(ev.ioid, None)

    # put and put-get
    def _on_put_init(self, ev: PutInit) -> None:
        op = self._init(ev, "put")
        assert op is not None
        if op.pv.type is None or not op.pv.writable:
            self._send(PutInitResponse(ev.ioid, Status.error(f"{op.name} is not writable")))
            return
        self._send(PutInitResponse.unchecked(ev.ioid, Status.OK, op.pv.type))

    def _on_put_get_init(self, ev: PutGetInit) -> None:
        op = self._init(ev, "putget")
        assert op is not None
        t = op.pv.type
        if t is None or not op.pv.writable:
            self._send(PutGetInitResponse(ev.ioid, Status.error(f"{op.name} is not writable")))
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
        options = op.options
        if options is None:
            options = op.options = request_options(op.request)
        put = PutOperation(pv, op.name, self.peer, ev.value, op.put_paths, dict(options))
        access = self.server.access
        if access is not None and not access(self.peer, op.name, "put"):
            self._reply_put(ev, op, Status.error(f"put to {op.name} refused by access control"))
            return
        handler = pv.put_handler
        if handler is None:
            try:
                pv.post(put.fields)
            except Exception as exc:  # a value the PV cannot take: tell the client
                self._reply_put(ev, op, _status_of(exc))
                return
            self._reply_put(ev, op, Status.OK)
            return
        try:
            result = handler(put)
        except Exception as exc:
            self._reply_put(ev, op, _status_of(exc))
            return
        if asyncio.iscoroutine(result) or isinstance(result, asyncio.Future):
            op.task = self.loop.create_task(self._finish_put(ev, op, result))
        else:
            self._reply_put(ev, op, Status.OK)

    async def _finish_put(self, ev: Put | PutGet, op: _Op, pending: Any) -> None:
        try:
            await pending
        except asyncio.CancelledError:
            self._reply_put(ev, op, Status.error("cancelled"), later=True)
            return
        except Exception as exc:
            self._reply_put(ev, op, _status_of(exc), later=True)
            return
        finally:
            op.task = None
        self._reply_put(ev, op, Status.OK, later=True)

    def _reply_put(self, ev: Put | PutGet, op: _Op, status: Status, later: bool = False) -> None:
        if isinstance(ev, PutGet):
            value = op.pv.value if status.success else None
            reply: Event = PutGetResponse(ev.ioid, status, value=value)
        else:
            reply = PutResponse.unchecked(ev.ioid, status, False)
        if ev.destroy:
            self.ops.pop(ev.ioid, None)
        if later:
            self.send_later(reply)
        else:
            self._send(reply)

    # monitor
    def _on_monitor_init(self, ev: MonitorInit) -> None:
        op = self._init(ev, "monitor")
        assert op is not None
        pv = op.pv
        if pv.type is None:
            self._send(MonitorInitResponse(ev.ioid, Status.error(f"{op.name} only supports RPC")))
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
        if ev.queue_size is not None or _truthy(opts.get("pipeline", False)):
            window = ev.queue_size if ev.queue_size is not None else limit
        self.monitors[ev.ioid] = _Monitor(self, ev.sid, ev.ioid, pv, op.mask, limit, window)
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
        op = self._init(ev, "rpc")
        assert op is not None
        if op.pv.rpc_handler is None:
            self._send(RPCInitResponse(ev.ioid, Status.error(f"{op.name} does not support RPC")))
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
        call = RpcOperation(op.pv, op.name, self.peer, ev.argument, request_options(op.request))
        try:
            result = handler(call)
        except Exception as exc:
            self._reply_rpc(ev, _status_of(exc), None)
            return
        if asyncio.iscoroutine(result) or isinstance(result, asyncio.Future):
            op.task = self.loop.create_task(self._finish_rpc(ev, op, result))
        else:
            self._reply_rpc(ev, Status.OK, result)

    async def _finish_rpc(self, ev: RPC, op: _Op, pending: Any) -> None:
        try:
            result = await pending
        except asyncio.CancelledError:
            self._reply_rpc(ev, Status.error("cancelled"), None, later=True)
            return
        except Exception as exc:
            self._reply_rpc(ev, _status_of(exc), None, later=True)
            return
        finally:
            op.task = None
        self._reply_rpc(ev, Status.OK, result, later=True)

    def _reply_rpc(self, ev: RPC, status: Status, result: Any, later: bool = False) -> None:
        typed: VariantValue | None = None
        if status.success:
            try:
                typed = to_typed(result)
            except Exception as exc:
                status = Status.error(f"RPC handler returned an unusable value: {exc}")
        reply = RPCResponse(ev.ioid, status, result=typed)
        if ev.destroy:
            self.ops.pop(ev.ioid, None)
        if later:
            self.send_later(reply)
        else:
            self._send(reply)

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
        self._init(ev, "process")
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
        op = self._init(ev, "array")
        assert op is not None
        at = self._array_type(op)
        if at is None:
            self._send(ArrayInitResponse(ev.ioid, Status.error(f"{op.name} has no array value")))
            return
        self._send(ArrayInitResponse(ev.ioid, type=at))

    def _on_array_get(self, ev: ArrayGet) -> None:
        op = self.ops.get(ev.ioid)
        if op is None:
            return
        arr = op.pv.value["value"]
        end = len(arr) if ev.count == 0 else ev.offset + ev.count * max(ev.stride, 1)
        self._send(ArrayGetResponse(ev.ioid, value=arr[ev.offset : end : max(ev.stride, 1)]))

    def _on_array_put(self, ev: ArrayPut) -> None:
        op = self.ops.get(ev.ioid)
        if op is None:
            return
        at = self._array_type(op)
        assert at is not None
        if self.server.access is not None and not self.server.access(self.peer, op.name, "put"):
            self._send(ArrayPutResponse(ev.ioid, Status.error("put refused by access control")))
            return
        cur = list(op.pv.value["value"])
        stride = max(ev.stride, 1)
        new = list(ev.value)
        need = ev.offset + (len(new) - 1) * stride + 1 if new else 0
        if need > len(cur):
            cur.extend(["" if at.kind == "s" else 0] * (need - len(cur)))
        for i, v in enumerate(new):
            cur[ev.offset + i * stride] = v
        op.pv.post({"value": coerce(at, cur)})
        self._send(ArrayPutResponse(ev.ioid))

    def _on_array_set_length(self, ev: ArraySetLength) -> None:
        op = self.ops.get(ev.ioid)
        if op is None:
            return
        cur = list(op.pv.value["value"])
        cur = cur[: ev.length] + [0] * max(0, ev.length - len(cur))
        at = self._array_type(op)
        assert at is not None
        op.pv.post({"value": coerce(at, cur)})
        self._send(ArraySetLengthResponse(ev.ioid))

    def _on_array_get_length(self, ev: ArrayGetLength) -> None:
        op = self.ops.get(ev.ioid)
        if op is None:
            return
        self._send(ArrayGetLengthResponse(ev.ioid, length=len(op.pv.value["value"])))

    def _on_closed(self, ev: ConnectionClosed) -> None:
        if self.transport is not None:
            self.transport.close()


def _status_of(exc: BaseException) -> Status:
    if isinstance(exc, PvaAccessDeniedError):
        return Status.error(f"access denied: {exc}")
    text = str(exc) or type(exc).__name__
    return Status.error(text)


def to_typed(result: Any) -> VariantValue:
    """An RPC handler's return value as a typed value (a dict infers a structure)."""
    if isinstance(result, VariantValue):
        return result
    if hasattr(result, "typed") and callable(result.typed):
        typed = result.typed()
        assert isinstance(typed, VariantValue)
        return typed
    if isinstance(result, tuple) and len(result) == 2 and isinstance(result[0], Structure):
        t, v = result
        return VariantValue(t, coerce(t, v))
    if result is None:
        return VariantValue(Structure([]), {})
    if not isinstance(result, dict):
        from reckon.pva import nt

        return nt.typed_scalar(result)
    return VariantValue.of(result)


_HANDLERS: dict[type, Callable[[_ServerProtocol, Any], None]] = {
    ConnectionValidationResponse: _ServerProtocol._on_validation,
    Echo: _ServerProtocol._on_echo,
    ControlEchoRequest: _ServerProtocol._on_control_echo,
    SearchRequest: _ServerProtocol._on_search,
    CreateChannelRequest: _ServerProtocol._on_create_channel,
    DestroyChannel: _ServerProtocol._on_destroy_channel,
    DestroyRequest: _ServerProtocol._on_destroy_request,
    MonitorDestroy: _ServerProtocol._on_destroy_request,
    CancelRequest: _ServerProtocol._on_cancel,
    GetInit: _ServerProtocol._on_get_init,
    Get: _ServerProtocol._on_get,
    PutInit: _ServerProtocol._on_put_init,
    Put: _ServerProtocol._on_put,
    PutRead: _ServerProtocol._on_put_read,
    PutGetInit: _ServerProtocol._on_put_get_init,
    PutGet: _ServerProtocol._on_put,
    PutGetRead: _ServerProtocol._on_put_get_read,
    MonitorInit: _ServerProtocol._on_monitor_init,
    MonitorStart: _ServerProtocol._on_monitor_start,
    MonitorStop: _ServerProtocol._on_monitor_stop,
    MonitorAck: _ServerProtocol._on_monitor_ack,
    RPCInit: _ServerProtocol._on_rpc_init,
    RPC: _ServerProtocol._on_rpc,
    GetField: _ServerProtocol._on_get_field,
    ProcessInit: _ServerProtocol._on_process_init,
    Process: _ServerProtocol._on_process,
    ArrayInit: _ServerProtocol._on_array_init,
    ArrayGet: _ServerProtocol._on_array_get,
    ArrayPut: _ServerProtocol._on_array_put,
    ArraySetLength: _ServerProtocol._on_array_set_length,
    ArrayGetLength: _ServerProtocol._on_array_get_length,
    ConnectionClosed: _ServerProtocol._on_closed,
}


# ------------------------------------------------------------------------------------------
# the server
# ------------------------------------------------------------------------------------------


class Server:
    """A pvAccess server publishing :class:`SharedPV` objects by name.

    ``Server()`` reads EPICS_PVAS_* / EPICS_PVA_* from the environment; pass a
    :class:`ServerConfig` to set things explicitly. ``access(peer, name, operation)`` may refuse
    puts, RPCs and process requests. PVs can be added and removed while running.

    Use ``async with Server() as s:`` or ``await s.start()`` / ``await s.stop()``.
    """

    def __init__(
        self,
        pvs: dict[str, SharedPV] | None = None,
        *,
        config: ServerConfig | None = None,
        access: AccessHook | None = None,
        max_message_size: int = 16 * 1024 * 1024,
        send_high_water: int = 4 * 1024 * 1024,
        max_queue_size: int = 10_000,
    ) -> None:
        self.config = config or ServerConfig.from_env()
        self.access = access
        self.max_message_size = max_message_size
        self.send_high_water = send_high_water
        self.max_queue_size = max_queue_size
        self.guid = new_guid()
        # every connection of this server reads into this buffer: all run on one event loop,
        # and each read is consumed (copied into the connection's framer) before the next
        self._rxbuf = memoryview(bytearray(RECEIVE_BUFFER))
        self._pvs: dict[str, SharedPV] = dict(pvs or {})
        self._change_count = 0
        self._sid = 0
        self._connections: set[_ServerProtocol] = set()
        self._tcp: asyncio.AbstractServer | None = None
        self._responder: SearchResponder | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self.tcp_port = 0
        self.udp_port = 0
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            raise PvaError("the server is not running; call `await server.start()` first")
        return self._loop

    # ---------------------------------------------------------------------- PVs
    def add(self, name: str, pv: SharedPV) -> SharedPV:
        """Publish ``pv`` as ``name`` (replacing any PV of that name)."""
        if not name or not isinstance(name, str):
            raise PvaError(f"a PV name is a non-empty string, not {name!r}")
        old = self._pvs.get(name)
        self._pvs[name] = pv
        self._change_count += 1
        if old is not None and old is not pv:
            self._disconnect(name)
        return pv

    def create(self, name: str, type: Any, initial: Any = None, **kw: Any) -> SharedPV:
        """Create and publish a PV in one call: ``server.create("x", nt.NTScalar("d"), 1.5)``."""
        return self.add(name, SharedPV(type, initial, **kw))

    def remove(self, name: str) -> SharedPV | None:
        """Stop publishing ``name``; clients connected to it see the channel destroyed."""
        pv = self._pvs.pop(name, None)
        if pv is not None:
            self._change_count += 1
            self._disconnect(name)
        return pv

    def __contains__(self, name: str) -> bool:
        return name in self._pvs

    def names(self) -> list[str]:
        return sorted(self._pvs)

    def _disconnect(self, name: str) -> None:
        for conn in list(self._connections):
            for sid, (chname, _pv, cid) in list(conn.channels.items()):
                if chname != name:
                    continue
                for ioid in [i for i, op in conn.ops.items() if op.sid == sid]:
                    conn._forget(ioid)
                del conn.channels[sid]
                conn.send_later(DestroyChannel(sid, cid))

    def _next_sid(self) -> int:
        self._sid = (self._sid + 1) & 0xFFFFFFFF or 1
        return self._sid

    # ---------------------------------------------------------------------- lifecycle
    async def start(self) -> Server:
        self._loop = asyncio.get_running_loop()
        cfg = self.config
        host = cfg.interfaces[0] if cfg.interfaces else "0.0.0.0"
        try:
            self._tcp = await self._loop.create_server(
                lambda: _ServerProtocol(self), host, cfg.tcp_port, reuse_address=True
            )
        except OSError as exc:
            log.warning(
                "pva server: TCP port %d unavailable (%s); using a random port", cfg.tcp_port, exc
            )
            self._tcp = await self._loop.create_server(lambda: _ServerProtocol(self), host, 0)
        self.tcp_port = int(self._tcp.sockets[0].getsockname()[1])
        self._responder = SearchResponder(
            interface=host,
            udp_port=cfg.udp_port,
            tcp_port=self.tcp_port,
            guid=self.guid,
            has_channel=self._pvs.__contains__,
            beacon_targets=cfg.beacon_targets(),
            beacon_period=cfg.beacon_period,
            change_count=lambda: self._change_count,
        )
        await self._responder.start()
        self.udp_port = self._responder.udp_port
        self._sweeper = self._loop.create_task(self._sweep_idle(), name="pva-idle-sweep")
        log.info("pva server: TCP %s:%d, UDP %d", host, self.tcp_port, self.udp_port)
        return self

    async def _sweep_idle(self) -> None:
        """Drop connections silent for twice EPICS_PVA_CONN_TMO (clients echo every half of
        it), so peers that vanished without closing do not hold memory forever."""
        limit = 2 * self.config.conn_timeout
        while True:
            await asyncio.sleep(max(limit / 4, 0.05))
            now = self.loop.time()
            for conn in list(self._connections):
                if conn.heard:
                    conn.heard = False
                    conn.last_rx = now
                elif now - conn.last_rx > limit and not conn._closed:
                    conn._drop(PvaError(f"silent for more than {limit:g}s"))

    async def stop(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        if self._responder is not None:
            await self._responder.stop()
            self._responder = None
        if self._tcp is not None:
            self._tcp.close()
            for conn in list(self._connections):
                if conn.transport is not None:
                    conn.transport.abort()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._tcp.wait_closed(), 2)
            self._tcp = None

    async def __aenter__(self) -> Server:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def serve_forever(self) -> None:
        if self._tcp is None:
            await self.start()
        try:
            await asyncio.Event().wait()
        finally:
            await self.stop()

    @property
    def connections(self) -> int:
        return len(self._connections)

    def stats(self) -> dict[str, Any]:
        return {
            "pvs": len(self._pvs),
            "connections": len(self._connections),
            "channels": sum(len(c.channels) for c in self._connections),
            "monitors": sum(len(c.monitors) for c in self._connections),
            "searches_answered": self._responder.searches_answered if self._responder else 0,
        }
