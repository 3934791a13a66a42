"""reckon's client against reckon's server: what p4p cannot exercise (put-get, name servers,
beacons, coroutine handlers, many clients) and the server's publishing API."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import pytest

from reckon.errors import PvaRemoteError, PvaTimeoutError, PvaTypeError
from reckon.pva import Client, ClientConfig, Server, ServerConfig, SharedPV, nt
from reckon.pva import pv as pv_module
from reckon.pva.discovery import open_udp
from reckon.pva.protocol import Beacon, Discovery, Structure
from reckon.pva.pv import PutOperation


async def test_put_get_and_field_selection(pva_env: dict[str, str]) -> None:
    x = SharedPV(nt.NTScalar("d", display=True), 1.0)
    async with Server({"r:x": x}), Client() as c:
        back = await c.put_get("r:x", 2.5, timeout=10)
        assert back["value"] == 2.5
        await c.put("r:x", {"display": {"units": "mm"}})
        assert (await c.get("r:x"))["display"]["units"] == "mm"
        assert (await c.info("r:x", "display")) == x.type["display"]  # type: ignore[index]
        async with c.monitor("r:x", "field(value)") as sub:
            assert (await sub.next()).value["value"] == 2.5
            x.post({"display": {"units": "m"}})  # not selected: no update
            x.post(3.5)
            u = await sub.next()
            assert u.value["value"] == 3.5
            assert "display.units" not in u.changed_fields


async def test_coroutine_put_handler_and_type_errors(pva_env: dict[str, str]) -> None:
    x = SharedPV(nt.NTScalar("i"), 0)
    started = asyncio.Event()

    @x.on_put
    async def slow(op: PutOperation) -> None:
        started.set()
        await asyncio.sleep(0.05)
        if op.fields["value"] < 0:
            raise ValueError("negative values are not allowed")
        op.pv.post(op.fields)

    async with Server({"r:x": x}), Client() as c:
        await c.put("r:x", 5, timeout=10)
        assert started.is_set() and x.value["value"] == 5
        with pytest.raises(PvaRemoteError, match="negative values"):
            await c.put("r:x", -1)
        with pytest.raises(PvaTypeError):
            await c.put("r:x", {"nonsense": 1})
    with pytest.raises(PvaTypeError):
        x.post({"nonsense": 1})


async def test_name_server_search_over_tcp(pva_env: dict[str, str]) -> None:
    async with Server({"r:ns": SharedPV(nt.NTScalar("s"), "via tcp")}) as server:
        cfg = ClientConfig(
            address_list=[], auto_address_list=False, name_servers=[("127.0.0.1", server.tcp_port)]
        )
        async with Client(cfg) as c:
            assert (await c.get("r:ns", timeout=10))["value"] == "via tcp"
        silent = ClientConfig(address_list=[], auto_address_list=False)
        async with Client(silent) as c:
            with pytest.raises(PvaTimeoutError, match="r:ns"):
                await c.get("r:ns", timeout=0.5)


async def test_beacons_guid_and_change_count(pva_env: dict[str, str]) -> None:
    listen_port = int(pva_env["EPICS_PVA_BROADCAST_PORT"]) + 0
    beacons: asyncio.Queue[Beacon] = asyncio.Queue()
    codec = Discovery()

    def got(data: bytes, source: Any) -> None:
        for ev in codec.decode(data):
            if isinstance(ev, Beacon):
                beacons.put_nowait(ev)

    transport, _ = await open_udp(("127.0.0.1", 0), got)
    beacon_port = transport.get_extra_info("sockname")[1]
    cfg = ServerConfig.from_env()
    cfg.beacon_destinations = [("127.0.0.1", beacon_port)]
    cfg.udp_port = listen_port
    try:
        guids = []
        for _ in range(2):
            server = Server({"r:a": SharedPV(nt.NTScalar("i"), 1)}, config=cfg)
            await server.start()
            first = await asyncio.wait_for(beacons.get(), 10)
            assert first.port == server.tcp_port and first.guid == server.guid
            server.create("r:b", nt.NTScalar("i"), 2)
            later = await asyncio.wait_for(beacons.get(), 10)
            assert later.change_count > first.change_count
            guids.append(first.guid)
            await server.stop()
            while not beacons.empty():
                beacons.get_nowait()
        assert guids[0] != guids[1]  # a new GUID per run
    finally:
        transport.close()


async def test_many_clients_and_channels(pva_env: dict[str, str]) -> None:
    pvs = {f"r:many:{i}": SharedPV(nt.NTScalar("i"), i) for i in range(20)}
    async with Server(pvs) as server:
        clients = [Client() for _ in range(8)]
        for c in clients:
            await c.__aenter__()
        try:

            async def read_all(c: Client) -> list[int]:
                return [(await c.get(n, timeout=15))["value"] for n in pvs]

            results = await asyncio.gather(*(read_all(c) for c in clients))
            assert all(r == list(range(20)) for r in results)
            assert server.stats()["channels"] == 8 * 20
        finally:
            for c in clients:
                await c.close()


async def test_removed_pv_disconnects_and_returns(pva_env: dict[str, str]) -> None:
    async with Server() as server, Client() as c:
        server.create("r:late", nt.NTScalarArray("i"), [1, 2])
        assert list((await c.get("r:late", timeout=10))["value"]) == [1, 2]
        async with c.monitor("r:late") as sub:
            await sub.next()
            server.remove("r:late")
            with pytest.raises(PvaTimeoutError):
                await c.get("r:late", timeout=0.5)
            server.add("r:late", SharedPV(nt.NTScalarArray("i"), np.array([7], dtype=np.int32)))
            assert list((await sub.next(timeout=10)).value["value"]) == [7]


async def test_rpc_returns_plain_values(pva_env: dict[str, str]) -> None:
    def echo(op: Any) -> Any:
        return op.query["text"].upper()

    async with Server({"r:echo": SharedPV.rpc_only(echo)}), Client() as c:
        result = await c.rpc("r:echo", nt.uri("r:echo", {"text": "hi"}), timeout=10)
        assert result["value"] == "HI"
        with pytest.raises(PvaRemoteError):
            await c.get("r:echo")
        t = await c.connected("r:echo")
        assert t is True


async def test_coroutine_rpc_handler_results_errors_and_options(pva_env: dict[str, str]) -> None:
    """A coroutine RPC handler: its value, its exception (an error status naming it) and the
    pvRequest options it was called with, on an operation the client reuses."""
    seen: list[dict[str, Any]] = []

    async def shout(op: Any) -> Any:
        await asyncio.sleep(0.01)
        seen.append(op.request)
        if op.query["text"] == "":
            raise ValueError("nothing to shout")
        return op.query["text"].upper()

    async with Server({"r:shout": SharedPV.rpc_only(shout)}), Client() as c:
        for text in ("hi", "there"):
            result = await c.rpc("r:shout", nt.uri("r:shout", {"text": text}), timeout=10)
            assert result["value"] == text.upper()
        with pytest.raises(PvaRemoteError, match="nothing to shout"):
            await c.rpc("r:shout", nt.uri("r:shout", {"text": ""}), timeout=10)
        await c.rpc("r:shout", nt.uri("r:shout", {"text": "x"}), "record[mode=loud]", timeout=10)
    assert seen[-1] == {"mode": "loud"} and seen[0] == {}
    seen[0]["mutated"] = True  # each call gets its own options dict
    assert "mutated" not in seen[1]


def test_structure_of_a_custom_pv() -> None:
    t = Structure([("x", "d"), ("tags", "as"), ("inner", Structure([("n", "i")]))], id="demo")
    pv = SharedPV(t, {"x": 1, "tags": ["a"], "inner": {"n": "3"}})
    assert pv.value == {"x": 1.0, "tags": ["a"], "inner": {"n": 3}}
    pv.post({"inner": {"n": 4}})
    assert pv.value["inner"]["n"] == 4 and pv.value["x"] == 1.0
    with pytest.raises(PvaTypeError, match="no 'value' field"):
        pv.post(5)


async def test_idle_peers_dropped_echoing_clients_kept(pva_env: dict[str, str]) -> None:
    """EPICS_PVA_CONN_TMO: silent peers are dropped; clients echo, so quiet monitors live."""
    from .test_bad_peers import RawPeer

    cfg = ServerConfig.from_env()
    cfg.conn_timeout = 0.4
    x = SharedPV(nt.NTScalar("i"), 1)
    async with Server({"r:quiet": x}, config=cfg) as server:
        ccfg = ClientConfig.from_env()
        ccfg.conn_timeout = 0.4
        async with Client(ccfg) as c, c.monitor("r:quiet") as sub:
            assert (await sub.next(timeout=10)).value["value"] == 1
            silent = await RawPeer(server.tcp_port).open()
            assert await silent.closed_by_server(timeout=10)  # dropped after ~0.8 s of silence
            await asyncio.sleep(1.5)  # the client says nothing but echoes
            x.post(2)
            assert (await sub.next(timeout=10)).value["value"] == 2
            assert server.connections == 1


async def test_anonymous_authentication(pva_env: dict[str, str]) -> None:
    x = SharedPV(nt.NTScalar("i"), 0)
    peers = []

    @x.on_put
    def record(op: PutOperation) -> None:
        peers.append(op.peer)
        op.pv.post(op.fields)

    async with Server({"r:anon": x}), Client(auth="anonymous") as c:
        await c.put("r:anon", 3, timeout=10)
    assert peers[0].method == "anonymous" and peers[0].user == "" and peers[0].account == ""


async def test_concurrent_operations_and_a_timed_out_put(pva_env: dict[str, str]) -> None:
    x = SharedPV(nt.NTScalar("i"), 0)
    gate = asyncio.Event()

    @x.on_put
    async def slow(op: PutOperation) -> None:
        if op.fields["value"] == 99:
            await gate.wait()  # this put hangs until released
        op.pv.post(op.fields)

    async with Server({"r:c": x}), Client() as c:
        values = await asyncio.gather(*(c.get("r:c", timeout=10) for _ in range(20)))
        assert all(v["value"] == 0 for v in values)
        await asyncio.gather(*(c.put("r:c", i, timeout=10) for i in range(1, 11)))
        assert 1 <= x.value["value"] <= 10
        with pytest.raises(PvaTimeoutError, match="r:c"):
            await c.put("r:c", 99, timeout=0.3)
        gate.set()
        await c.put("r:c", 5, timeout=10)  # the stuck operation was dropped, a new one works
        assert (await c.get("r:c", timeout=10))["value"] == 5


async def test_pv_close_finishes_monitors(pva_env: dict[str, str]) -> None:
    x = SharedPV(nt.NTScalar("i"), 0)
    async with Server({"r:fin": x}), Client() as c, c.monitor("r:fin") as sub:
        assert (await sub.next(timeout=10)).value["value"] == 0
        x.close()
        with pytest.raises(StopAsyncIteration):
            await sub.next(timeout=10)


async def test_monitor_is_an_async_iterator_that_ends_with_the_pv(
    pva_env: dict[str, str],
) -> None:
    x = SharedPV(nt.NTScalar("i"), 0)
    seen: list[int] = []
    async with Server({"r:iter": x}), Client() as c, c.monitor("r:iter") as sub:

        async def post_then_close() -> None:
            await c.get("r:iter", timeout=10)  # the monitor's channel is up
            for i in range(1, 6):
                x.post(i)
                await asyncio.sleep(0.01)
            x.close()

        poster = asyncio.create_task(post_then_close())
        async with asyncio.timeout(20):
            async for update in sub:  # ends when the server finishes the monitor
                seen.append(update.value["value"])
        await poster
    assert seen[0] == 0 and seen[-1] == 5 and seen == sorted(set(seen))


def test_post_fast_path_matches_the_general_one() -> None:
    a = SharedPV(nt.NTScalar("i"), 1)
    b = SharedPV(nt.NTScalar("i"), 1)
    a.post(7)  # plain value: the fast path
    b.post({"value": 7})  # a dict: the general merge
    assert a.value["value"] == b.value["value"] == 7
    assert a.value["timeStamp"]["secondsPastEpoch"] > 0
    assert set(a.value) == set(b.value) and a.value["alarm"] == b.value["alarm"]
    with pytest.raises(PvaTypeError):
        a.post("not a number")


@pytest.mark.parametrize("kind", ["d", "f", "i", "H", "s", "?"])
@pytest.mark.parametrize("value", [3, 2.5, True, np.float64(1.5), np.int32(4), "6"])
def test_a_plain_post_is_coerced_as_a_merge_is(kind: str, value: Any) -> None:
    """post(x) takes a fast path (a value of the type it would become is kept as it is);
    post({"value": x, "alarm": ...}) the general merge: the same value, of the same type, and
    the footprint a queued update is charged."""
    fast, merged = SharedPV(nt.NTScalar(kind), timestamp=False), SharedPV(nt.NTScalar(kind))
    fast.post(value)
    merged.post({"value": value, "alarm": {"severity": 0}})
    assert type(fast.value["value"]) is type(merged.value["value"])
    assert fast.value["value"] == merged.value["value"]
    assert fast.footprint(fast.value) == pv_module.footprint(fast.value)


async def test_alternating_field_selections_on_one_connection(pva_env: dict[str, str]) -> None:
    # the server reuses a pvRequest's decoded value and field selection per connection: each
    # request must still select its own fields
    x = SharedPV(nt.NTScalar("d"), 2.5)
    x.post({"alarm": {"severity": 1}})
    async with Server({"r:x": x}), Client() as c:
        for _ in range(3):
            v = await c.get("r:x", "field(value)", timeout=10)
            assert v["value"] == 2.5 and v["alarm"]["severity"] == 0
            a = await c.get("r:x", "field(alarm)", timeout=10)
            assert a["value"] == 0.0 and a["alarm"]["severity"] == 1
            both = await c.get("r:x", timeout=10)
            assert both["value"] == 2.5 and both["alarm"]["severity"] == 1


async def test_polling_gets_follow_every_change(pva_env: dict[str, str]) -> None:
    """A client that gets one PV again and again sends the same bytes each time, and the
    server answers a repeat with its last reply: only while nothing changed in between."""
    x = SharedPV(nt.NTScalar("d"), 1.0)
    async with Server({"r:poll": x}) as server, Client() as c:
        for i in range(1, 6):
            assert (await c.get("r:poll", timeout=10))["value"] == i
            assert (await c.get("r:poll"))["value"] == i  # a repeat: the same reply
            x.post(float(i + 1))  # a new value: the next get must not be the old reply
        await asyncio.to_thread(x.post, 7.0)  # from another thread too
        assert (await c.get("r:poll"))["value"] == 7.0
        await c.put("r:poll", 8.0)  # the same connection's put between two gets
        assert (await c.get("r:poll"))["value"] == 8.0
        async with c.monitor("r:poll") as sub:  # monitor traffic between two gets
            await sub.next(timeout=10)
            x.post(9.0)
            assert (await sub.next(timeout=10)).value["value"] == 9.0
            assert (await c.get("r:poll"))["value"] == 9.0
            assert (await c.get("r:poll"))["value"] == 9.0
        server.remove("r:poll")  # gone: a repeat must not be answered from the old reply
        with pytest.raises(PvaTimeoutError):
            await c.get("r:poll", timeout=0.5)


async def test_serve_forever_serves_until_cancelled(pva_env: dict[str, str]) -> None:
    server = Server({"r:forever": SharedPV(nt.NTScalar("i"), 7)})
    serving = asyncio.create_task(server.serve_forever())
    async with Client() as c:
        assert (await c.get("r:forever", timeout=10))["value"] == 7
        serving.cancel()
        with pytest.raises(asyncio.CancelledError):
            await serving
        assert server.connections == 0
        with pytest.raises(PvaTimeoutError):
            await c.get("r:forever", timeout=0.5)
