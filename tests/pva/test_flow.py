"""Monitor flow control and the less common operations, checked message by message with a
hand-driven peer (the protocol library frames its messages): the pipeline window, coalescing,
array and process operations."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import pytest

from reckon.pva import Client, Server, SharedPV, nt
from reckon.pva.monitor_queue import MonitorQueue
from reckon.pva.protocol import (
    NEED_DATA,
    ArrayGet,
    ArrayGetLength,
    ArrayInit,
    ArrayPut,
    ArraySetLength,
    MonitorAck,
    MonitorInit,
    MonitorStart,
    MonitorUpdate,
    Process,
    ProcessInit,
    pv_request,
)

from .test_bad_peers import RawPeer


async def collect(peer: RawPeer, kind: type, n: int, timeout: float = 5.0) -> list[Any]:  # noqa: ASYNC109
    """The next ``n`` events of type ``kind`` (fewer if ``timeout`` passes first)."""
    assert peer.reader is not None
    got: list[Any] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while len(got) < n:
        ev = peer.conn.next_event()
        if ev is NEED_DATA:
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            try:
                data = await asyncio.wait_for(peer.reader.read(65536), remaining)
            except TimeoutError:
                break
            assert data, "server closed the connection"
            peer.conn.receive_data(data)
        elif isinstance(ev, kind):
            got.append(ev)
    return got


async def test_pipeline_window_and_acks_never_stall(pva_env: dict[str, str]) -> None:
    counter = SharedPV(nt.NTScalar("i"), 0)
    async with Server({"f:count": counter}) as server:
        peer = await RawPeer(server.tcp_port).open()
        sid = await peer.channel("f:count")
        request = pv_request("record[pipeline=true,queueSize=3]")
        peer.send_event(MonitorInit(sid, 5, request, queue_size=3))
        await peer._until("MonitorInitResponse")
        peer.send_event(MonitorStart(sid, 5))
        [initial] = await collect(peer, MonitorUpdate, 1)  # uses 1 of the window of 3
        assert initial.value["value"] == 0
        for i in range(1, 11):
            # posts of one loop turn queue until its end (as pvxs's do until its sender takes
            # them): the queue (3) holds 1, 2 and 3..10 squashed into 10; 1 and 2 use the window
            counter.post(i)
        sent = await collect(peer, MonitorUpdate, 2)
        assert [u.value["value"] for u in sent] == [1, 2]  # the window (3) is now used up
        assert await collect(peer, MonitorUpdate, 1, timeout=0.5) == []
        for i in range(11, 21):
            counter.post(i)  # the queue (10, 11, 12): 12 becomes 20 as 13..20 squash into it
        peer.send_event(MonitorAck(sid, 5, 1))
        [one] = await collect(peer, MonitorUpdate, 1)
        assert one.value["value"] == 10
        # an ack alone (no new post) resumes the queue: the burst's last value arrives
        peer.send_event(MonitorAck(sid, 5, 2))
        rest = await collect(peer, MonitorUpdate, 2)
        assert [u.value["value"] for u in rest] == [11, 20]
        # a squashed entry says which fields changed more than once (overrun)
        value_bit = counter.type.offset_of("value")  # type: ignore[union-attr]
        assert value_bit in one.overrun and value_bit in rest[1].overrun
        assert value_bit not in rest[0].overrun
        assert await collect(peer, MonitorUpdate, 1, timeout=0.3) == []
        peer.close()


async def test_the_client_acks_every_half_queue_it_consumes(
    pva_env: dict[str, str], monitor_acks: list[int]
) -> None:
    """reckon's client acks a pipelined monitor as pvxs's does: once half its queue has been
    consumed, that many (not one ack per update, nor one per window, which would leave the
    server waiting while the consumer runs through it)."""
    counter = SharedPV(nt.NTScalar("i"), 0)
    async with Server({"f:count": counter}), Client() as c:
        async with c.monitor("f:count", "record[pipeline=true,queueSize=8]") as sub:
            for i in range(4):  # one at a time: the 4th (half the queue) makes an ack of 4
                if i:
                    counter.post(i)
                assert (await sub.next(timeout=10)).value["value"] == i
            await until(lambda: monitor_acks == [4])
            for i in range(4, 11):
                counter.post(i)  # 7 updates: the window (8) lets all go
            await until(lambda: len(sub.updates) == 7)
            got = [(await sub.next()).value["value"] for _ in range(7)]  # in one turn
            assert got == list(range(4, 11))
            await until(lambda: sum(monitor_acks) == 8)
            await asyncio.sleep(0.2)  # (the 3 consumed since are not acked yet)
            assert monitor_acks == [4, 4]


async def until(condition: Any, timeout: float = 10.0) -> None:  # noqa: ASYNC109
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        assert loop.time() < deadline, "the condition never held"
        await asyncio.sleep(0.01)


@pytest.fixture
def monitor_acks(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The ``nfree`` of every ack reckon's server takes (its MonitorQueue.ack, still run)."""
    acks: list[int] = []
    ack = MonitorQueue.ack

    def counted(self: MonitorQueue, nfree: int) -> None:
        acks.append(nfree)
        ack(self, nfree)

    monkeypatch.setattr(MonitorQueue, "ack", counted)
    return acks


async def test_default_queue_coalesces_for_a_slow_consumer(pva_env: dict[str, str]) -> None:
    """A subscriber that reads slowly gets fewer updates, never an unbounded backlog, and
    always the newest value last."""
    wave = SharedPV(nt.NTScalarArray("d"), np.zeros(16 * 1024))  # 128 kB per update
    async with Server({"f:wave": wave}, send_high_water=64 * 1024) as server:
        peer = await RawPeer(server.tcp_port).open(rcvbuf=4096)
        sid = await peer.channel("f:wave")
        peer.send_event(MonitorInit(sid, 6, pv_request("record[queueSize=2]")))
        await peer._until("MonitorInitResponse")
        peer.send_event(MonitorStart(sid, 6))
        assert len(await collect(peer, MonitorUpdate, 1)) == 1  # the current value
        n = 50
        for i in range(1, n + 1):
            wave.post(np.full(16 * 1024, float(i)))
            await asyncio.sleep(0)
        conn = next(iter(server.context.sessions))
        assert len(conn.monitors[6].queue) <= 2
        seen: list[float] = []
        while not seen or seen[-1] != n:
            [u] = await collect(peer, MonitorUpdate, 1, timeout=10)
            seen.append(float(u.value["value"][0]))
        assert seen == sorted(seen) and len(seen) < n  # coalesced, in order, newest last
        peer.close()


async def test_array_and_process_operations(pva_env: dict[str, str]) -> None:
    wave = SharedPV(nt.NTScalarArray("i"), [1, 2, 3, 4, 5])
    async with Server({"f:wave": wave}) as server:
        peer = await RawPeer(server.tcp_port).open()
        sid = await peer.channel("f:wave")
        peer.send_event(ArrayInit(sid, 7, None))
        init = await peer._until("ArrayInitResponse")
        assert init.status.success
        peer.send_event(ArrayGet(sid, 7, offset=1, count=2))
        got = await peer._until("ArrayGetResponse")
        assert list(got.value) == [2, 3]
        peer.send_event(ArrayPut(sid, 7, np.array([9, 9], dtype=np.int32), offset=3))
        assert (await peer._until("ArrayPutResponse")).status.success
        assert list(wave.value["value"]) == [1, 2, 3, 9, 9]
        peer.send_event(ArraySetLength(sid, 7, 2))
        await peer._until("ArraySetLengthResponse")
        peer.send_event(ArrayGetLength(sid, 7))
        assert (await peer._until("ArrayGetLengthResponse")).length == 2
        before = wave.value["timeStamp"]
        peer.send_event(ProcessInit(sid, 8, None))
        await peer._until("ProcessInitResponse")
        await asyncio.sleep(0.01)
        peer.send_event(Process(sid, 8))
        assert (await peer._until("ProcessResponse")).status.success
        assert wave.value["timeStamp"] != before  # processing re-posts with a new timestamp
        peer.close()


async def test_array_writes_are_puts_under_the_same_rules(pva_env: dict[str, str]) -> None:
    """An array put or a new length is a put: refused on a read-only PV and by the access
    hook (the client gets an error status, the value stays); a string array grows with empty
    strings; a length no message could fill is refused, not allocated; the connection lives
    on through all of it."""
    names = SharedPV(nt.NTScalarArray("s"), ["a", "b"])
    frozen = SharedPV(nt.NTScalarArray("i"), [1, 2], writable=False)
    guarded = SharedPV(nt.NTScalarArray("i"), [1, 2])

    def access(peer: Any, name: str, op: str) -> bool:
        return name != "f:guarded"

    pvs = {"f:names": names, "f:frozen": frozen, "f:guarded": guarded}
    async with Server(pvs, access=access) as server:
        peer = await RawPeer(server.tcp_port).open()
        sid: dict[int, int] = {}
        for ioid, name in ((1, "f:names"), (2, "f:frozen"), (3, "f:guarded")):
            sid[ioid] = await peer.channel(name, cid=ioid)
            peer.send_event(ArrayInit(sid[ioid], ioid, None))
            assert (await peer._until("ArrayInitResponse")).status.success
        peer.send_event(ArraySetLength(sid[1], 1, 4))
        assert (await peer._until("ArraySetLengthResponse")).status.success
        assert list(names.value["value"]) == ["a", "b", "", ""]
        peer.send_event(ArraySetLength(sid[1], 1, 0xFFFFFFFF))
        refused = await peer._until("ArraySetLengthResponse")
        assert not refused.status.success and "grow" in refused.status.message
        peer.send_event(ArrayPut(sid[1], 1, ["z"], offset=0xFFFFFFF0))
        assert not (await peer._until("ArrayPutResponse")).status.success
        assert len(names.value["value"]) == 4
        for ioid, pv, why in ((2, frozen, "not writable"), (3, guarded, "access control")):
            peer.send_event(ArrayPut(sid[ioid], ioid, np.array([7], dtype=np.int32)))
            put = await peer._until("ArrayPutResponse")
            assert not put.status.success and why in put.status.message
            peer.send_event(ArraySetLength(sid[ioid], ioid, 1))
            cut = await peer._until("ArraySetLengthResponse")
            assert not cut.status.success and why in cut.status.message
            assert list(pv.value["value"]) == [1, 2]
        peer.send_event(ArrayGetLength(sid[1], 1))
        assert (await peer._until("ArrayGetLengthResponse")).length == 4
        peer.close()


async def test_a_post_is_encoded_once_per_field_selection(pva_env: dict[str, str]) -> None:
    """Subscribers that send the same fields of a posted value share one encoding; each
    subscriber still gets exactly the fields its pvRequest selected."""
    temp = SharedPV(nt.NTScalar("d"), 1.0)
    async with Server({"f:temp": temp}) as server:
        peers = [await RawPeer(server.tcp_port).open() for _ in range(3)]
        requests = ["", "", "field(value)"]
        for n, (peer, request) in enumerate(zip(peers, requests, strict=True)):
            sid = await peer.channel("f:temp")
            peer.send_event(MonitorInit(sid, 10 + n, pv_request(request)))
            await peer._until("MonitorInitResponse")
            peer.send_event(MonitorStart(sid, 10 + n))
            [first] = await collect(peer, MonitorUpdate, 1)
            assert first.value["value"] == 1.0
        temp.post(2.5)
        updates = [(await collect(peer, MonitorUpdate, 1))[0] for peer in peers]
        assert [u.value["value"] for u in updates] == [2.5, 2.5, 2.5]
        ts = temp.type.offset_of("timeStamp")  # type: ignore[union-attr]
        assert any(b >= ts for b in updates[0].changed)  # the whole monitor sees the timestamp
        assert all(b < ts for b in updates[2].changed)  # field(value) does not
        value, by_mask = temp._prep
        assert value is temp.value and len(by_mask) == 2  # two selections, two encodings
        for peer in peers:
            peer.close()
