"""A monitor subscription's queue on the server: bounded at ``queueSize`` and, with the other
monitors of its connection, in bytes; coalescing into the newest entry when full (fields
changed twice are marked overrun), honouring the pipeline window. Coalescing instead of
dropping is what guarantees the last value always arrives.
"""

from __future__ import annotations

from collections import deque
from typing import Any, Protocol

from reckon.pva.protocol import (
    BitSet,
    MonitorFinish,
    PreparedUpdate,
    ProtocolError,
    ServerConnection,
    Status,
)
from reckon.pva.pv import SharedPV
from reckon.pva.selection import ALL, expand_mask, sent_mask
from reckon.pva.server_context import Scheduler

_NO_OVERRUN = BitSet()


class Session(Protocol):
    """What a queue needs of its connection's session (a ServerSession)."""

    conn: ServerConnection
    loop: Scheduler
    queued_bytes: int
    max_queue_bytes: int

    def want_flush(self, mon: MonitorQueue) -> None: ...


class MonitorQueue:
    """One subscription: a bounded queue of [changed, value, overrun, bytes charged, encoding
    or None (kept: the PV's may be of a later post when taken)] that coalesces when full. The
    entry at the head of an empty queue is not charged (it is the PV's value, held anyway);
    each one behind it is, against the connection's ``queued_bytes`` (``max_queue_bytes``)."""

    __slots__ = (
        "closed", "conn", "expanded", "finished", "ioid", "limit", "loop", "mask", "pipelined",
        "pv", "queue", "running", "window",
    )  # fmt: skip

    def __init__(
        self, conn: Session, ioid: int, pv: SharedPV, mask: int, limit: int,
        window: int | None,
    ) -> None:  # fmt: skip
        assert pv.type is not None
        self.conn = conn
        self.loop = conn.loop
        self.ioid = ioid
        self.pv = pv
        self.mask = mask
        self.expanded = expand_mask(pv.type, mask)
        self.limit = max(1, limit)
        self.pipelined = window is not None
        self.window = window or 0
        self.queue: deque[list[Any]] = deque()
        self.running = False
        self.finished = False
        self.closed = False

    def start(self) -> None:
        if self.running or self.closed:
            return
        self.running = True
        self.pv.subscribe(self)
        self._clear()
        value, t = self.pv.value, self.pv.type
        assert t is not None
        self.queue.append([sent_mask(t, self.mask, self.pv.assigned), value, 0, 0, None])
        self.conn.want_flush(self)

    def stop(self) -> None:
        self.running = False
        self.pv.unsubscribe(self)

    def on_post(self, mask: int, value: dict[str, Any]) -> None:
        if not self.running:  # (close() stops it too)
            return
        if self.mask != ALL and not (mask := mask & self.expanded):
            return  # (none of its fields)
        # [value, mask, footprint, encoding or None]: the PV's, shared by all its monitors that
        # send the post's fields (see SharedPV.delivering), else this monitor's own
        post = self.pv.delivering
        if post[0] is not value or post[1] != mask:
            post = [value, mask, self.pv.footprint(value), None]
        q = self.queue
        if q:  # (behind entries: their flush is asked for already, or waits for an ack)
            conn, size = self.conn, post[2]
            if len(q) < self.limit and conn.queued_bytes + size <= conn.max_queue_bytes:
                conn.queued_bytes += size
                q.append([mask, value, 0, size, post[3] or self._encode(post)])
                return
            # full: fold into the newest entry; fields changed twice are marked as overrun
            last = q[-1]
            last[2] |= last[0] & mask
            last[0] |= mask
            last[1] = value
            last[4] = post[3] if last[0] == mask else None  # (else encoded when taken)
            if len(q) > 1 or last[3]:  # (a lone first entry is the PV's value)
                conn.queued_bytes += size - last[3]
                last[3] = size
            return
        q.append([mask, value, 0, 0, post[3] or self._encode(post)])  # (uncharged: see class)
        if self.pipelined and self.window <= 0:
            return  # nothing may leave before the client acks (ack() flushes)
        self.conn.want_flush(self)

    def _encode(self, post: list[Any]) -> PreparedUpdate:
        post[3] = update = self.pv.prepared(post[0], post[1])  # (by the first, for all)
        return update

    def on_close(self) -> None:
        self.finished = True
        self.conn.want_flush(self)

    def ack(self, nfree: int) -> None:
        """The client has room for ``nfree`` more (unpipelined, the window is ignored)."""
        self.window += nfree
        # unlike pvxs 1.5.3, an ack always resumes a stalled queue
        if self.queue:
            self.conn.want_flush(self)

    def take(self, out: list[Any]) -> None:
        """Add what the window allows from the queue to ``out`` (the session's output), each
        update encoded once for every subscriber with the same fields; then the finish, if due.
        What stays waits for an ack (which asks for a flush): entries that may leave always
        have their flush asked for (a post behind them needs not ask)."""
        q = self.queue
        session = self.conn
        send, n = session.conn.send_update_pieces, len(q)
        if self.pipelined:
            n = min(n, self.window)
            self.window -= n
        try:  # (not contextlib.suppress: it cost a post to 50 monitors 8% of its CPU)
            for _ in range(n):
                mask, value, overrun, size, update = q.popleft()
                session.queued_bytes -= size
                over = BitSet.from_mask(overrun) if overrun else _NO_OVERRUN
                out += send(self.ioid, update or self.pv.prepared(value, mask), over)
            if self.finished and not q and not self.closed:
                out.append(session.conn.send(MonitorFinish(self.ioid, Status.OK)))
                self.closed = True
        except ProtocolError:  # (the client destroyed it meanwhile: nothing more leaves)
            self._clear()

    def _clear(self) -> None:
        q = self.queue
        self.conn.queued_bytes -= sum(entry[3] for entry in q)
        q.clear()

    def close(self) -> None:
        self.closed = True
        self.running = False
        self._clear()
        self.pv.unsubscribe(self)
