"""A post to a PV with many monitors: encoded once for all of them, handed to the server's loop
once per post (not once per monitor), and sized once for the monitors' byte budgets."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reckon.pva import Client, Server, SharedPV, nt
from reckon.pva import pv as pv_module
from reckon.pva.protocol import (
    NEED_DATA,
    ClientConnection,
    ConnectionValidationResponse,
    CreateChannelRequest,
    CreateChannelResponse,
    MonitorAck,
    MonitorInit,
    MonitorStart,
    MonitorUpdate,
    PreparedUpdate,
)
from reckon.pva.server_session import ServerSession


class CountingPV(SharedPV):
    """A SharedPV that records, per posted value, every prepared update handed out for it."""

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.handed: dict[int, tuple[Any, list[PreparedUpdate]]] = {}

    def prepared(self, value: dict[str, Any], mask: int) -> PreparedUpdate:
        update = super().prepared(value, mask)
        # the value is kept with its record: its id cannot be reused while the test runs
        self.handed.setdefault(id(value), (value, []))[1].append(update)
        return update


async def test_a_post_to_many_monitors_is_encoded_once(pva_env: dict[str, str]) -> None:
    n_clients, n_posts = 8, 6
    x = CountingPV(nt.NTScalar("d"), 0.0)
    async with Server({"f:x": x}):
        clients = [await Client().__aenter__() for _ in range(n_clients)]
        try:
            subs = [await c.monitor("f:x").start() for c in clients]
            for sub in subs:
                assert (await sub.next(timeout=10)).value["value"] == 0.0
            for i in range(1, n_posts + 1):
                if i % 2:
                    x.post(float(i))  # from the server's loop
                else:
                    await asyncio.to_thread(x.post, float(i))  # from another thread
                for sub in subs:  # every client gets every value (nothing squashed)
                    assert (await sub.next(timeout=10)).value["value"] == float(i)
            for sub in subs:
                await sub.close()
        finally:
            for c in clients:
                await c.close()
    posted = [
        updates for value, updates in x.handed.values() if value["value"] in range(1, n_posts + 1)
    ]
    assert len(posted) == n_posts
    for updates in posted:
        # prepared once per post for every monitor (which asks for another when it sends
        # other fields): every client got it, from that one encoding
        assert len(updates) == 1


class CountingSink:
    """Where a session's bytes go: kept, with the number of writes that brought them."""

    def __init__(self) -> None:
        self.data: list[bytes] = []
        self.writes = 0
        self.objects: list[Any] = []  # what each write was given

    def write(self, data: Any) -> None:
        self.data.append(bytes(data))
        self.objects.append(data)
        self.writes += 1

    def writelines(self, pieces: Any) -> None:
        self.data.extend(bytes(p) for p in pieces)
        self.objects.extend(pieces)
        self.writes += 1

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def abort(self) -> None:
        pass

    def close(self) -> None:
        pass


def _events(sink: CountingSink, peer: ClientConnection) -> list[Any]:
    peer.receive_data(b"".join(sink.data))
    sink.data.clear()
    events = []
    while (ev := peer.next_event()) is not NEED_DATA:
        events.append(ev)
    return events


class CountingScheduler:
    """The running loop, keeping the callbacks sessions schedule on it (posts reach it as
    from another loop: handed over, taken at its next turn)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.callbacks: list[Any] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.loop, name)

    def call_soon(self, callback: Any) -> Any:
        self.callbacks.append(callback)
        return self.loop.call_soon(callback)

    def call_at(self, when: float, callback: Any) -> Any:
        self.callbacks.append(callback)
        return self.loop.call_at(when, callback)

    def sessions_callbacks(self) -> int:
        owners = [getattr(cb, "__self__", None) for cb in self.callbacks]
        return sum(type(o).__module__ == ServerSession.__module__ for o in owners)


async def _monitoring(
    server: Server, scheduler: Any, i: int
) -> tuple[ServerSession, CountingSink, ClientConnection]:
    """A session over a counting sink whose peer monitors ``f:x`` (ioid 7), its first update
    (the current value, 0.0) read."""
    session, sink, peer = (
        ServerSession(server.context, scheduler),
        CountingSink(),
        ClientConnection(),
    )
    session.opened(sink, ("127.0.0.1", 1000 + i))
    _events(sink, peer)
    session.receive(memoryview(peer.send(ConnectionValidationResponse())))
    _events(sink, peer)
    session.receive(memoryview(peer.send(CreateChannelRequest(1, "f:x"))))
    [sid] = [ev.sid for ev in _events(sink, peer) if isinstance(ev, CreateChannelResponse)]
    session.receive(memoryview(peer.send(MonitorInit(sid, 7, None))))
    _events(sink, peer)
    session.receive(memoryview(peer.send(MonitorStart(sid, 7))))
    await asyncio.sleep(0.01)
    [first] = [ev for ev in _events(sink, peer) if isinstance(ev, MonitorUpdate)]
    assert first.value["value"] == 0.0
    return session, sink, peer


async def test_a_full_queue_squashes_the_posts_of_one_loop_turn(pva_env: dict[str, str]) -> None:
    """Posts of one loop turn wait in the monitor's queue until the connection writes, at the
    turn's end; past ``queueSize`` (4 by default) they squash into its newest entry, as pvxs's
    queue does while its sender is busy: the client gets the first three and the last, which
    says its value changed more than once (overrun)."""
    x = SharedPV(nt.NTScalar("d"), 0.0)
    server = Server({"f:x": x})
    session, sink, peer = await _monitoring(server, asyncio.get_running_loop(), 0)
    await asyncio.sleep(0.01)  # (past the coalescing window of the first update's write)
    sink.writes = 0
    for i in range(1, 11):
        x.post(float(i))
    await asyncio.sleep(0.01)
    got = [ev for ev in _events(sink, peer) if isinstance(ev, MonitorUpdate)]
    assert [u.value["value"] for u in got] == [1.0, 2.0, 3.0, 10.0]
    assert sink.writes == 1
    bit = x.type.offset_of("value")  # type: ignore[union-attr]
    assert bit in got[-1].overrun and not any(bit in u.overrun for u in got[:-1])
    session.lost()


async def test_posts_of_one_loop_turn_leave_in_one_write_per_connection(
    pva_env: dict[str, str],
) -> None:
    """Sessions over sinks that count writes (the session is sans-I/O): four posts made in one
    turn of the loop reach each monitoring connection in one write, in order, written by one
    callback for all the connections; a post's update is the same bytes object on every
    connection whose monitor has the same ioid."""
    x = SharedPV(nt.NTScalar("d"), 0.0)
    server = Server({"f:x": x})  # (not started: its context serves the sessions)
    scheduler = CountingScheduler(asyncio.get_running_loop())
    peers = [await _monitoring(server, scheduler, i) for i in range(5)]
    for round_ in range(3):
        for _, sink, _ in peers:
            sink.writes = 0
            sink.objects.clear()
        await asyncio.sleep(0.01)  # (past the coalescing window of the last write)
        scheduler.callbacks.clear()
        for i in range(4):
            x.post(float(10 * round_ + i))
        await asyncio.sleep(0.01)  # the loop turns (and any coalescing window ends)
        assert scheduler.sessions_callbacks() == 1  # one callback wrote every connection
        for n in range(4):  # each update is one object for all the connections
            assert len({id(sink.objects[n]) for _, sink, _ in peers}) == 1
        for _, sink, peer in peers:
            assert sink.writes == 1
            got = [ev.value["value"] for ev in _events(sink, peer) if isinstance(ev, MonitorUpdate)]
            assert got == [float(10 * round_ + i) for i in range(4)]
    for session, _, _ in peers:
        session.lost()


class _Recorder:
    def __init__(self, loop: asyncio.AbstractEventLoop, limit: int) -> None:
        self.loop = loop
        self.limit = limit
        self.got: list[float] = []

    def on_post(self, mask: int, value: dict[str, Any]) -> None:
        self.got.append(value["value"])

    def on_close(self) -> None:
        pass


def test_a_thread_hands_the_loop_each_post_once_however_many_monitors(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """50 monitors with queues of 4 on one loop: the poster hands over whole posts (at most one
    loop wake-up per post). Counting monitors instead woke the loop and made the poster wait
    about 50 / 4 times inside every post."""
    monkeypatch.setattr(pv_module, "YIELD_TIMEOUT", 30.0)  # a poster always waits for the loop
    loop = asyncio.SelectorEventLoop()
    wakeups = 0
    original = loop.call_soon_threadsafe

    def counting(*args: Any, **kw: Any) -> Any:
        nonlocal wakeups
        wakeups += 1
        return original(*args, **kw)

    loop.call_soon_threadsafe = counting  # type: ignore[method-assign]
    runner = threading.Thread(target=loop.run_forever, daemon=True)
    runner.start()
    try:
        pv = SharedPV(nt.NTScalar("d"), 0.0)
        subs = [_Recorder(loop, 4) for _ in range(50)]
        for sub in subs:
            pv.subscribe(sub)
        n = 200
        for i in range(1, n + 1):
            pv.post(float(i))
        deadline = time.monotonic() + 20
        while any(len(s.got) < n for s in subs) and time.monotonic() < deadline:
            time.sleep(0.01)
        for sub in subs:
            assert sub.got == [float(i) for i in range(1, n + 1)]
        assert wakeups <= n
    finally:
        loop.call_soon_threadsafe(loop.stop)
        runner.join(10)
        loop.close()


_values = st.one_of(
    st.floats(allow_nan=False),
    st.lists(st.floats(allow_nan=False), max_size=40).map(lambda v: np.asarray(v, "f8")),
)


@settings(max_examples=60, deadline=None)
@given(posts=st.lists(st.tuples(_values, st.booleans()), min_size=1, max_size=12))
def test_a_values_size_follows_its_posts(posts: list[tuple[Any, bool]]) -> None:
    """The size a queued update is charged (a plain post's from the size of the value before
    it) is always the size of the value as measured afresh."""
    scalar = SharedPV(nt.NTScalar("d"), 0.0)
    array = SharedPV(nt.NTScalarArray("d"), [1.0, 2.0])
    for value, stamp in posts:
        pv = array if isinstance(value, np.ndarray) else scalar
        pv.post(value, timestamp=stamp)
        assert pv.footprint(pv.value) == pv_module.footprint(pv.value)
    for pv in (scalar, array):
        pv.post({"alarm": {"severity": 1}})  # the general path
        assert pv.footprint(pv.value) == pv_module.footprint(pv.value)


def test_a_thread_posts_values_sized_as_measured_afresh() -> None:
    """A value handed from a posting thread to the loop is sized by its poster (from the size
    of the value before it): a monitor queueing it is charged what measuring it afresh gives,
    through plain posts of arrays of changing length and posts of other fields."""
    loop = asyncio.new_event_loop()
    runner = threading.Thread(target=loop.run_forever, daemon=True)
    runner.start()
    pv = SharedPV(nt.NTScalarArray("d"), [1.0])
    charged: list[tuple[int, int]] = []

    class Sizing(_Recorder):
        def on_post(self, mask: int, value: dict[str, Any]) -> None:
            charged.append((pv.footprint(value), pv_module.footprint(value)))

    try:
        pv.subscribe(Sizing(loop, 4))
        for i in range(1, 61):
            if i % 7 == 0:
                pv.post({"alarm": {"severity": i % 3, "message": "m" * i}})
            else:
                pv.post(np.arange(i % 11, dtype="f8"), timestamp=i % 2 == 0)
        deadline = time.monotonic() + 20
        while len(charged) < 60 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(charged) == 60
        assert all(given == afresh for given, afresh in charged)
    finally:
        loop.call_soon_threadsafe(loop.stop)
        runner.join(10)
        loop.close()


async def test_an_ack_on_a_monitor_that_is_not_pipelined_changes_nothing(
    pva_env: dict[str, str],
) -> None:
    """A client may ack a monitor it did not pipeline: the session takes it, and every post
    still reaches the client once, in order (no window holds them back)."""
    x = SharedPV(nt.NTScalar("d"), 0.0)
    server = Server({"f:x": x})
    session, sink, peer = await _monitoring(server, asyncio.get_running_loop(), 0)
    sid = next(iter(session.channels))
    for i in range(1, 4):
        session.receive(memoryview(peer.send(MonitorAck(sid, 7, 5))))
        x.post(float(i))
        await asyncio.sleep(0.01)
        got = [ev.value["value"] for ev in _events(sink, peer) if isinstance(ev, MonitorUpdate)]
        assert got == [float(i)]
    session.lost()
