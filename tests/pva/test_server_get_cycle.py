"""p4p's get, as the server sees it: a new operation for every get (INIT, GET, DESTROY, one
message per read, each taken whole by ``receive_message``), answered from the PV's shared
encoding. These tests drive the cycle over a real socket and mix in what else a connection
carries (monitor updates waiting to go out, an RPC-only PV, a destroyed monitor)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from reckon.pva import Server, SharedPV, nt
from reckon.pva import server_session as server_session_module
from reckon.pva.protocol import (
    DestroyRequest,
    Get,
    GetInit,
    MonitorInit,
    MonitorStart,
    pv_request,
)

from .test_bad_peers import RawPeer

REQ = pv_request("field()")


async def get_once(
    peer: RawPeer, sid: int, ioid: int, seen: list[float] | None = None, req: Any = REQ
) -> Any:
    """One p4p get on a new operation: the GetResponse, or the GetInitResponse that refused.
    Monitor updates arriving meanwhile go to ``seen``."""
    peer.send_event(GetInit(sid, ioid, req))
    while True:
        ev = await peer._next()
        name = type(ev).__name__
        if name == "MonitorUpdate" and seen is not None:
            seen.append(ev.value["value"])
        elif name == "GetInitResponse":
            if not ev.status.success:
                return ev
            peer.send_event(Get(sid, ioid))
        elif name == "GetResponse":
            peer.send_event(DestroyRequest(sid, ioid))
            # the server reads the DESTROY alone, as p4p's client has it, not with the next INIT
            await asyncio.sleep(0.005)
            return ev


async def watching(server: Server) -> tuple[RawPeer, int]:
    """A raw client of ``server`` with a channel to ``c:x`` (the sid) and a monitor of it
    (ioid 1), started: its first update (the current value) has arrived."""
    peer = await RawPeer(server.tcp_port).open()
    sid = await peer.channel("c:x")
    peer.send_event(MonitorInit(sid, 1, pv_request("record[queueSize=100]field()")))
    await peer._until("MonitorInitResponse")
    peer.send_event(MonitorStart(sid, 1))
    await peer._until("MonitorUpdate")
    return peer, sid


async def test_a_get_per_operation_follows_every_post(pva_env: dict[str, str]) -> None:
    x = SharedPV(nt.NTScalar("d"), 0.0)
    async with Server({"c:x": x}) as server:
        peer = await RawPeer(server.tcp_port).open()
        sid = await peer.channel("c:x")
        for i in range(1, 40):
            if i % 3 == 0:
                x.post(float(i))
            reply = await get_once(peer, sid, 100 + i)
            assert reply.status.success
            assert reply.value["value"] == float(i - i % 3)
        # every finished operation is forgotten on both layers of the server
        [conn] = server.context.sessions
        assert not conn.ops
        assert not conn.conn.requests
        peer.close()


async def test_gets_of_a_channel_follow_their_request_and_its_pv(pva_env: dict[str, str]) -> None:
    """Gets on one channel with one request may share the server's record of the operation:
    a get with another request sends its own fields, and a channel to a PV published again
    under the same name gets the new PV's value."""
    x = SharedPV(nt.NTScalar("d"), 1.0)
    value_only = pv_request("field(value)")
    value_bit = x.type.offset_of("value")
    async with Server({"c:x": x}) as server:
        peer = await RawPeer(server.tcp_port).open()
        sid = await peer.channel("c:x")
        for i in range(8):
            req = value_only if i % 3 == 0 else REQ
            reply = await get_once(peer, sid, 10 + i, req=req)
            assert reply.value["value"] == 1.0
            assert (list(reply.changed) == [value_bit]) == (req is value_only), i
        server.add("c:x", SharedPV(nt.NTScalar("d"), 2.0))  # (the old channel is destroyed)
        await peer._until("DestroyChannel")
        sid = await peer.channel("c:x")
        assert (await get_once(peer, sid, 30)).value["value"] == 2.0
        [conn] = server.context.sessions
        assert not conn.ops
        peer.close()


async def test_gets_between_monitor_updates_keep_their_order(pva_env: dict[str, str]) -> None:
    """Values posted from another thread to a PV that a monitor on the same connection
    watches: each get, sent after a post, sees that post's update arrive before its reply
    and answers with its value."""
    x = SharedPV(nt.NTScalar("d"), 0.0)
    async with Server({"c:x": x}) as server:
        peer, sid = await watching(server)
        seen: list[float] = []
        for i in range(1, 30):
            await asyncio.to_thread(x.post, float(i))
            reply = await get_once(peer, sid, 200 + i, seen)
            assert reply.value["value"] == float(i)
            assert seen and seen[-1] == float(i), "an update left after a later get's reply"
        # a DESTROY of the monitor's ioid ends its updates, gets go on
        peer.send_event(DestroyRequest(sid, 1))
        await asyncio.sleep(0.005)  # read alone, as the gets' destroys are
        assert (await get_once(peer, sid, 500, seen)).value["value"] == 29.0
        x.post(99.0)
        assert (await get_once(peer, sid, 501, seen)).value["value"] == 99.0
        assert seen[-1] == 29.0
        [conn] = server.context.sessions
        assert not conn.monitors
        peer.close()


async def test_a_get_never_overtakes_an_update_waiting_to_go_out(
    pva_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """An update posted right after another waits for the coalescing window to end; a get that
    arrives meanwhile must send its reply after it (a long window makes that deterministic)."""
    monkeypatch.setattr(server_session_module, "COALESCE", 5.0)
    x = SharedPV(nt.NTScalar("d"), 0.0)
    async with Server({"c:x": x}) as server:
        peer, sid = await watching(server)
        seen: list[float] = []
        for i in range(1, 6):
            # from the server's own thread: the first post of the test goes out at once and
            # opens the window, every later one is held until the window ends
            x.post(i - 0.5)
            x.post(float(i))
            [conn] = server.context.sessions
            assert conn.monitors[1].queue, "the update should be waiting for the window to end"
            reply = await get_once(peer, sid, 400 + i, seen)
            assert reply.value["value"] == float(i)
            assert seen[-1] == float(i), "the get's reply overtook the waiting update"
        peer.close()


async def test_an_rpc_only_pv_refuses_gets_every_time(pva_env: dict[str, str]) -> None:
    x = SharedPV(nt.NTScalar("d"), 1.0)
    rpc = SharedPV.rpc_only()
    async with Server({"c:x": x, "c:rpc": rpc}) as server:
        peer = await RawPeer(server.tcp_port).open()
        xs = await peer.channel("c:x", cid=1)
        rs = await peer.channel("c:rpc", cid=2)
        for ioid in (10, 11, 12):  # the later INITs carry a pvRequest the server knows
            refused = await get_once(peer, rs, ioid)
            assert not refused.status.success
            assert "only supports RPC" in refused.status.message
            assert (await get_once(peer, xs, 100 + ioid)).value["value"] == 1.0
        # the refused operations are forgotten, not kept until the channel closes
        [conn] = server.context.sessions
        assert not conn.ops
        peer.close()
