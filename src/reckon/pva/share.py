"""PVs shared by any number of server instances through Redis.

``Server(pvs, share="redis://host:6379/0")`` (or ``reckon pva serve FILE --share URL``) keeps
each PV's type and current value in Redis, in msgpack, under one key prefix per deployment, and
sends every change through one Redis stream that all instances read (the keys and the entries
are :mod:`reckon.pva.share_layout`).

A post on an instance updates its own monitors at once (as without sharing) and is written to
the value hash and the stream in one transaction; every instance applies the stream's entries
in stream order, so all of them end with the value of the stream's last entry for each field,
whichever instances posted. An instance's own entries are not applied again field by field
where it has posted that field since (the newer post comes later in the stream); for the rest
it makes sure the PV holds the entry's value, which puts it back when an entry from elsewhere
was applied in between. That check waits while a post from another thread is on its way to
the server's loop (set on the PV, not yet seen by the share), so it never undoes that post.
A put is answered once its change is in Redis (or Redis is unreachable), so a put a client saw
succeed survives the instance being killed right after. Put handlers and the access hook run
only on the instance the client talks to; the others see the posts they make.

When Redis goes away, instances keep serving (and posting) locally, log it once, retry, and on
return read what they missed from the stream (or the whole store, when the stream was trimmed
past them or Redis restarted empty), then write their own changes of the outage.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from collections import deque
from typing import Any, Protocol

from reckon.errors import ConfigurationError, PvaShareError
from reckon.pva.packing import pack_type, unpack_type, value_from_obj, value_to_obj
from reckon.pva.protocol import FieldDesc, Structure, values_equal
from reckon.pva.pv import PutOperation, SharedPV, call_handler
from reckon.pva.share_layout import (
    Layout,
    Post,
    changed_fields,
    connection_errors,
    entry_id,
    field,
    leaves,
    nest,
    read_entry,
    split_url,
)
from reckon.pva.stopping import end_tasks


class Host(Protocol):
    """What a share needs of the server it joins (a Server, which imports this module)."""

    guid: bytes
    tcp_port: int
    udp_port: int

    def add(self, name: str, pv: SharedPV) -> SharedPV: ...


log = logging.getLogger("reckon.pva.share")

#: how often an instance renews its liveness key (it lasts share_layout.ALIVE_TTL)
HEARTBEAT = 3.0
#: how long the stream reader waits in Redis for new entries per call (ms)
READ_BLOCK_MS = 500
#: entries taken per read
READ_COUNT = 1000
#: how soon the heartbeat runs again while the server is still opening its ports
PORTS_WAIT = 0.05
#: posts written per Redis transaction
WRITE_BATCH = 256


class _Watch:
    """Sees every post of one PV (on the server's loop) and hands it to the share."""

    __slots__ = ("last", "loop", "mine", "name", "owed", "own_put", "pv", "share", "user_put")

    def __init__(self, share: RedisShare, name: str, pv: SharedPV) -> None:
        self.share = share
        self.name = name
        self.pv = pv
        #: the server's loop: posts from other threads reach on_post there, in order
        self.loop: asyncio.AbstractEventLoop | None = share.loop
        #: the values of the last few posts the share has seen (a thread's post reaches it after
        #: a change applied on the loop since, so not always the newest): when the PV holds none
        #: of them, a post from another thread is still on its way to the loop
        self.last: deque[Any] = deque([pv.value], maxlen=4)
        #: field path -> sequence number of this instance's newest post of it
        self.mine: dict[str, int] = {}
        #: own fields whose stream entries came back: the PV must hold these values once no
        #: post is on its way (a later entry from elsewhere, or a newer own post, drops them)
        self.owed: dict[str, Any] = {}
        self.user_put = pv.put_handler
        self.own_put: Any = None

    def on_post(self, mask: int, value: dict[str, Any]) -> None:
        self.share._posted(self, mask, value)

    def on_close(self) -> None:
        pass


class RedisShare:
    """Shares a server's PVs with every other instance on the same Redis and key prefix.

    ``url`` is a Redis URL (``redis://host:port/db``; ``?prefix=NAME`` sets the key prefix, one
    per deployment). ``timeout`` bounds every Redis call (the stream reader's blocking read
    waits ``READ_BLOCK_MS`` more). ``host`` is what the instance reports as its host name
    (``$HOSTNAME`` or the machine's name by default, a pod's name in Kubernetes).
    """

    def __init__(
        self,
        url: str,
        *,
        prefix: str | None = None,
        timeout: float = 2.0,
        stream_length: int = 10_000,
        max_outbox: int = 100_000,
        host: str | None = None,
    ) -> None:
        self.url, url_prefix = split_url(url)
        self.prefix = prefix or url_prefix
        self.timeout = timeout
        self.stream_length = stream_length
        self.max_outbox = max_outbox
        self.host = host or os.environ.get("HOSTNAME") or socket.gethostname()
        #: the instance's GUID (the server's pvAccess GUID, in hex, once started)
        self.guid = uuid.uuid4().hex[:24]
        self.loop: asyncio.AbstractEventLoop | None = None
        self.connected = False
        self._server: Host | None = None
        self._watches: dict[str, _Watch] = {}
        self._outbox: list[Post] = []
        self._seq = 0
        self._written = 0
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._applying = False
        self._adopting = False
        self._warned = False
        self._epoch: bytes | None = None
        self._last_id = b"0-0"
        self._wake: asyncio.Event | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._r: Any = None
        self._rx: Any = None
        self._keys = Layout(self.prefix)

    def __repr__(self) -> str:
        return f"RedisShare({self.url!r}, prefix={self.prefix!r}, guid={self.guid})"

    # ---------------------------------------------------------------------- PVs
    def attach(self, name: str, pv: SharedPV) -> None:
        """Share ``pv`` as ``name`` (the server calls this for each PV it publishes)."""
        if pv.type is None or name in self._watches:
            return  # an RPC-only PV has no value to share
        w = _Watch(self, name, pv)
        self._watches[name] = w
        self._wrap_put(w)
        pv.add_watcher(w)
        if self.loop is not None and not self._adopting:
            # added while running: tell the others, with its current value
            self._queue(w, pv.assigned, pv.value, announce=pack_type(pv.type))

    def detach(self, name: str) -> None:
        w = self._watches.pop(name, None)
        if w is None:
            return
        w.pv.remove_watcher(w)
        if w.pv.put_handler is w.own_put:
            w.pv.on_put(w.user_put)  # type: ignore[arg-type]

    def _wrap_put(self, w: _Watch) -> None:
        """Answer a put once its change is in Redis: a client that saw its put succeed does
        not lose it when this instance dies right after. The user's handler (or the plain
        post) still runs here, once."""
        user = w.user_put

        async def put(op: PutOperation) -> None:
            if user is None:
                op.pv.post(op.fields)
            else:
                await call_handler(user, op)
            await self.flushed()

        w.own_put = put
        w.pv.on_put(put)

    # ---------------------------------------------------------------------- local posts
    def _posted(self, w: _Watch, mask: int, value: dict[str, Any]) -> None:
        w.last.append(value)
        if self._applying or self._watches.get(w.name) is not w:
            return  # a change from Redis being applied, or a PV no longer shared
        self._queue(w, mask, value)
        if w.owed and self.loop is not None:
            # not from inside this post: its other monitors have yet to see it
            self.loop.call_soon(self._settle, w)

    def _settle(self, w: _Watch) -> None:
        """Put back the owed fields of own entries, unless a post is still on its way (its
        arrival calls this again)."""
        if not w.owed or self._watches.get(w.name) is not w:
            return
        now = w.pv.value
        if any(v is now for v in w.last):
            owed, w.owed = w.owed, {}
            self._apply(w, owed)

    def _queue(
        self, w: _Watch, mask: int, value: dict[str, Any], announce: bytes | None = None
    ) -> None:
        t = w.pv.type
        assert t is not None
        delta = changed_fields(t, mask, value)
        if not delta and announce is None:
            return
        self._seq += 1
        self._outbox.append(Post(w.name, delta, self._seq, announce))
        for path in delta:
            w.mine[path] = self._seq
            w.owed.pop(path, None)
        if len(self._outbox) > self.max_outbox:
            self._fold()
        if self._wake is not None:
            self._wake.set()

    def _fold(self) -> None:
        """Squash the waiting posts into one entry per PV (the newest value of each field):
        memory stays bounded by the PVs' size while Redis is away; the end state is the same."""
        merged: dict[str, Post] = {}
        for e in self._outbox:
            m = merged.get(e.name)
            if m is None:
                merged[e.name] = Post(e.name, dict(e.delta), e.seq, e.announce)
            else:
                m.delta.update(e.delta)
                m.seq = e.seq
                m.announce = m.announce or e.announce
        self._outbox = sorted(merged.values(), key=lambda e: e.seq)

    async def flushed(self) -> None:
        """Wait until every post so far is in Redis (at most ``timeout``; at once when Redis is
        unreachable, since the posts then wait for its return)."""
        target = self._seq
        if not self.connected or self._written >= target or self.loop is None:
            return
        fut = self.loop.create_future()
        self._waiters.append((target, fut))
        with contextlib.suppress(asyncio.TimeoutError):
            async with asyncio.timeout(self.timeout):
                await fut

    def _release(self, upto: int | None) -> None:
        keep = []
        for seq, fut in self._waiters:
            if upto is None or seq <= upto:
                if not fut.done():
                    fut.set_result(None)
            else:
                keep.append((seq, fut))
        self._waiters = keep

    # ---------------------------------------------------------------------- lifecycle
    async def start(self, server: Host) -> None:
        """Connect, fill in or read the current values, and start following the stream. A
        Redis that does not answer is reported and retried in the background; a PV whose type
        differs from the one stored raises :class:`PvaShareError`."""
        import redis.asyncio as aredis

        self._server = server
        self.guid = server.guid.hex()  # the GUID its searches and beacons carry
        self.loop = asyncio.get_running_loop()
        # posts made before the server started are part of its initial values, not changes
        self._outbox.clear()
        for w in self._watches.values():
            w.loop = self.loop
            w.pv.subscribe(w)  # (again: its posts now go to that loop)
            w.last.append(w.pv.value)
            w.mine.clear()
            w.owed.clear()
        self._wake = asyncio.Event()
        # Every call below runs under an ``asyncio.timeout`` of the share's own rather than
        # redis-py's socket_timeout: that one wraps each command's write in
        # ``asyncio.wait_for``, a task (one more trip through the loop) per command on the
        # post-to-monitor path, and a cancel that Python 3.11 can lose. redis-py drops a
        # connection whose read is cancelled, so a timed-out reply is never read as the next.
        self._r = aredis.Redis.from_url(
            self.url, socket_timeout=None, socket_connect_timeout=self.timeout
        )
        self._rx = aredis.Redis.from_url(
            self.url, socket_timeout=None, socket_connect_timeout=self.timeout
        )
        try:
            async with asyncio.timeout(4 * self.timeout):
                await self._sync()
            self.connected = True
        except connection_errors() as exc:
            self._lost(exc)
        self._tasks = [
            self.loop.create_task(self._follow(), name="pva-share-follow"),
            self.loop.create_task(self._write_loop(), name="pva-share-write"),
            self.loop.create_task(self._beat(), name="pva-share-heartbeat"),
        ]
        log.info(
            "pva share: instance %s on %s, %d PVs shared through %s (prefix %r)%s",
            self.guid,
            self.host,
            len(self._watches),
            self.url,
            self.prefix,
            "" if self.connected else " (Redis unreachable: serving local values)",
        )

    async def stop(self) -> None:
        """Write what is still waiting (within ``timeout``), leave the instance list, close."""
        await self._end_tasks()
        if self.connected and self._outbox:
            with contextlib.suppress(*connection_errors()):
                batch, self._outbox = self._outbox, []
                await self._write(batch)
        if self.connected:
            with contextlib.suppress(*connection_errors()):
                async with asyncio.timeout(self.timeout):
                    await self._keys.leave(self._r, self.guid)
        self._release(None)
        for client in (self._r, self._rx):
            if client is not None:
                with contextlib.suppress(Exception):
                    await client.aclose()
        self.connected = False

    async def _end_tasks(self) -> None:
        """Cancel the share's tasks and wait for them (:func:`reckon.pva.stopping.end_tasks`:
        asking again, since a library below may lose a cancel), for at most ``timeout`` plus a
        blocking read."""
        tasks, self._tasks = self._tasks, []
        left = await end_tasks(tasks, within=self.timeout + READ_BLOCK_MS / 1000)
        if left:
            log.error("pva share: %d task(s) did not stop; leaving them", len(left))

    def _lost(self, exc: BaseException) -> None:
        self.connected = False
        self._release(None)
        if not self._warned:
            self._warned = True
            log.warning(
                "pva share: Redis at %s unreachable (%s); serving the last values and retrying",
                self.url,
                str(exc) or repr(exc),
            )

    # ---------------------------------------------------------------------- Redis side
    def _info(self) -> dict[str, Any]:
        server = self._server
        return {
            "guid": self.guid,
            "host": self.host,
            "pid": os.getpid(),
            "tcp_port": server.tcp_port if server is not None else 0,
            "udp_port": server.udp_port if server is not None else 0,
            "pvs": len(self._watches),
            "since": time.time(),
        }

    async def _heartbeat(self) -> None:
        async with asyncio.timeout(self.timeout):
            await self._keys.heartbeat(self._r, self.guid, self._info())

    async def _beat(self) -> None:
        """Renew this instance's liveness key every ``HEARTBEAT`` seconds, in a task of its own
        so the stream reader never waits for it. A failed beat is the reader's to notice."""
        while True:
            if self.connected:
                with contextlib.suppress(*connection_errors()):
                    await self._heartbeat()
            # soon again while the server is still opening the ports the beat reports
            opening = self._server is not None and not self._server.udp_port
            await asyncio.sleep(PORTS_WAIT if opening else HEARTBEAT)

    async def instances(self) -> list[dict[str, Any]]:
        """The instances serving this deployment now: GUID, host, pid and ports of each."""
        async with asyncio.timeout(self.timeout):
            return await self._keys.live_instances(self._r)

    async def stored_value(self, name: str) -> dict[str, Any]:
        """The fields of ``name`` as Redis holds them now (dotted paths nested back into dicts),
        for tools and tests that check what the deployment agrees on."""
        async with asyncio.timeout(self.timeout):
            return await self._keys.stored_value(self._r, name)

    async def _sync(self) -> None:
        """Connect (again) and bring this instance and the store up to date with each other."""
        r = self._r
        await r.ping()
        keys = self._keys
        epoch = await r.get(keys.epoch)
        if epoch is None:  # a new deployment, or a Redis that restarted empty
            await r.set(keys.epoch, uuid.uuid4().hex.encode(), nx=True)
            epoch = await r.get(keys.epoch)
        # the same store: the reader resumes after the last entry it applied, unless the
        # stream was trimmed past it
        if (
            self._epoch is not None
            and epoch == self._epoch
            and await keys.trimmed_before(r) <= entry_id(self._last_id)
        ):
            await self._heartbeat()
            return
        end = await keys.stream_end(r)
        stored_types = await r.hgetall(keys.types)
        for name, w in list(self._watches.items()):
            await self._sync_pv(w, stored_types.get(name.encode()))
        for raw_name, raw_type in stored_types.items():
            name = raw_name.decode()
            if name not in self._watches:
                await self._adopt(name, unpack_type(raw_type))
        self._last_id = end
        self._epoch = epoch
        await self._heartbeat()

    async def _sync_pv(self, w: _Watch, stored_type: bytes | None) -> None:
        """Fill in the fields Redis lacks with this instance's values (a new deployment, a
        Redis that restarted empty), then take Redis's values for the rest."""
        t = w.pv.type
        assert t is not None
        r = self._r
        mine = pack_type(t)
        if stored_type is None:
            await r.hsetnx(self._keys.types, w.name, mine)
            stored_type = await r.hget(self._keys.types, w.name)
        if stored_type != mine and unpack_type(stored_type) != t:
            message = (
                f"{w.name!r} is shared under {self.prefix!r} as {unpack_type(stored_type)!r}, "
                f"but this instance serves it as {t!r}: give it the same type, or use another "
                f"prefix (redis://...?prefix=NAME)"
            )
            if not self._tasks:  # starting: refuse to start
                raise PvaShareError(message)
            log.error("pva share: %s; not sharing it", message)
            self.detach(w.name)
            return
        mine_fields = {
            path: value_to_obj(lt, field(w.pv.value, path))
            for path, bit, lt in leaves(t)
            if (w.pv.assigned >> bit) & 1
        }
        stored = await self._keys.fill_in(r, w.name, mine_fields)
        # what this instance posted but Redis does not have yet is put back when its own
        # entries come back (see _on_entry)
        self._apply(w, stored)

    async def _adopt(self, name: str, t: FieldDesc) -> None:
        """Serve a PV another instance shares (its type and value come from Redis)."""
        if not isinstance(t, Structure) or self._server is None:
            return
        stored = await self._keys.stored_fields(self._r, name)
        pv = SharedPV(t, timestamp=False)
        self._adopting = True
        try:
            self._server.add(name, pv)
        finally:
            self._adopting = False
        w = self._watches.get(name)
        if w is not None:
            self._apply(w, stored)

    def _apply(self, w: _Watch, flat: dict[str, Any]) -> None:
        """Post fields that came from Redis to the local PV (and its monitors), without
        sending them back."""
        t = w.pv.type
        assert t is not None
        changed = {}
        for path, obj in flat.items():
            try:
                bit = t.offset_of(path)
            except Exception:
                continue  # a field this type does not have
            ft = t.field_at(bit)[1]
            try:
                v = value_from_obj(ft, obj)
            except PvaShareError as exc:
                log.error("pva share: %s.%s: %s", w.name, path, exc)
                continue
            if not (w.pv.assigned >> bit) & 1 or not values_equal(v, field(w.pv.value, path)):
                changed[path] = v
        if not changed:
            return
        self._applying = True
        try:
            w.pv.post(nest(changed), timestamp=False)
        finally:
            self._applying = False

    async def _write(self, batch: list[Post]) -> None:
        async with asyncio.timeout(self.timeout):
            await self._keys.write(self._r, self.guid, batch, self.stream_length)

    async def _write_loop(self) -> None:
        assert self._wake is not None
        while True:
            await self._wake.wait()
            self._wake.clear()
            if not self.connected or not self._outbox:
                continue
            # at most WRITE_BATCH posts per transaction, so each call's timeout means Redis
            # stopped answering, not that a burst made the transaction long
            batch, self._outbox = self._outbox[:WRITE_BATCH], self._outbox[WRITE_BATCH:]
            if self._outbox:
                self._wake.set()
            try:
                await self._write(batch)
            except connection_errors() as exc:
                self._outbox[:0] = batch
                if len(self._outbox) > self.max_outbox:
                    self._fold()
                self._lost(exc)
                continue
            self._written = batch[-1].seq
            self._release(self._written)

    async def _follow(self) -> None:
        """Apply the stream's entries as they come; on a lost connection, retry and resync."""
        backoff = 0.05
        while True:
            try:
                if not self.connected:
                    async with asyncio.timeout(4 * self.timeout):
                        await self._sync()
                    self.connected = True
                    backoff = 0.05
                    if self._warned:
                        self._warned = False
                        log.warning("pva share: Redis at %s is back; resynchronised", self.url)
                    assert self._wake is not None
                    self._wake.set()
                await self._read_until_lost()
            except connection_errors() as exc:
                self._lost(exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 1.0)

    async def _read_until_lost(self) -> None:
        while self.connected:
            async with asyncio.timeout(self.timeout + READ_BLOCK_MS / 1000):
                reply = await self._rx.xread(
                    {self._keys.log: self._last_id}, count=READ_COUNT, block=READ_BLOCK_MS
                )
            for _stream, entries in reply or ():
                for eid, fields in entries:
                    self._last_id = bytes(eid)
                    try:
                        self._on_entry(fields)
                    except PvaShareError as exc:
                        log.error("pva share: skipped a stream entry: %s", exc)
                    except Exception:  # a value the PV refused: one entry, not the reader
                        log.exception("pva share: skipped a stream entry")
                if len(entries) < READ_COUNT:
                    continue
                async with asyncio.timeout(self.timeout):
                    trimmed = await self._keys.trimmed_before(self._r)
                if trimmed > entry_id(self._last_id):
                    # behind by more than the stream keeps: read the whole store again
                    self._epoch = None
                    raise ConnectionError("the stream was trimmed past this reader")

    def _on_entry(self, fields: dict[bytes, bytes]) -> None:
        """Apply one stream entry: one PV's posts of one instance's batch, in order."""
        entry = read_entry(fields)
        name = entry.name
        w = self._watches.get(name)
        if w is None and entry.announce is not None and entry.guid != self.guid:
            t = unpack_type(entry.announce)
            if isinstance(t, Structure) and self._server is not None:
                self._adopting = True
                try:
                    self._server.add(name, SharedPV(t, timestamp=False))
                finally:
                    self._adopting = False
                w = self._watches.get(name)
        if w is None:
            return
        if entry.guid != self.guid:
            for delta in entry.deltas:
                for path in delta:
                    w.owed.pop(path, None)  # this entry comes later in the stream
                self._apply(w, delta)
            return
        for seq, delta in zip(entry.seqs, entry.deltas, strict=True):
            for path, obj in delta.items():
                if w.mine.get(path, 0) <= seq:  # no newer own post of it follows
                    w.owed[path] = obj
        self._settle(w)


def open_share(share: str | RedisShare) -> RedisShare:
    """``Server(share=...)`` takes a URL or a :class:`RedisShare`."""
    if isinstance(share, RedisShare):
        return share
    if isinstance(share, str):
        return RedisShare(share)
    raise ConfigurationError(f"share= takes a redis:// URL or a RedisShare, not {share!r}")
