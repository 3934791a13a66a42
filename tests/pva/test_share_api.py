"""``Server(share=...)`` in one process (several servers on one real redis-server), and the
msgpack form of pvData types and values that the share stores."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reckon.errors import ConfigurationError, PvaRemoteError, PvaShareError
from reckon.pva import Client, ClientConfig, Server, ServerConfig, SharedPV, nt
from reckon.pva.config import loopback_environment
from reckon.pva.packing import (
    pack_type,
    pack_value,
    unpack_type,
    unpack_value,
)
from reckon.pva.protocol import values_equal
from reckon.pva.share import RedisShare
from reckon.pva.share_layout import split_url

from .conftest import until
from .protocol.pva_protocol_strategies import types, values
from .share_support import RedisProcess


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    proc = RedisProcess(tmp_path_factory.mktemp("redis"))
    yield proc.url
    proc.kill()


_prefixes = iter(range(10**6))


@pytest.fixture
def share_url(redis_url: str) -> str:
    """A fresh key prefix per test: one deployment each."""
    return f"{redis_url}?prefix=t{next(_prefixes)}-{os.getpid()}"


def _config() -> ServerConfig:
    return ServerConfig.from_env(loopback_environment())


def _client(server: Server) -> Client:
    env = loopback_environment(server.tcp_port, server.udp_port)
    env["EPICS_PVA_NAME_SERVERS"] = f"127.0.0.1:{server.tcp_port}"
    return Client(ClientConfig.from_env(env))


@pytest.fixture
async def servers(share_url: str) -> AsyncIterator[Any]:
    started: list[Server] = []

    async def start(pvs: dict[str, SharedPV], **kw: Any) -> Server:
        server = Server(pvs, config=_config(), **{"share": share_url, **kw})
        await server.start()
        started.append(server)
        return server

    yield start
    for server in started:
        await server.stop()


async def test_posts_and_puts_reach_every_instance_and_handlers_run_once(servers: Any) -> None:
    calls: list[str] = []

    def make(tag: str) -> SharedPV:
        pv = SharedPV(nt.NTScalar("d"), 0.0)

        @pv.on_put
        def handler(op: Any) -> None:
            calls.append(tag)
            if op.fields["value"] < 0:
                raise ValueError("no negative setpoints")
            op.pv.post(op.fields)

        return pv

    pvs = [make(tag) for tag in "abc"]
    a, b, c = [await servers({"s:sp": pv}) for pv in pvs]
    async with _client(c) as client_c, _client(a) as client_a:
        async with client_c.monitor("s:sp") as sub:
            assert (await sub.next()).value["value"] == 0.0
            await client_a.put("s:sp", 5.0)  # put on a, seen on c
            assert (await sub.next(30)).value["value"] == 5.0
            assert calls == ["a"]  # the handler ran once, on the instance that took the put
            with pytest.raises(PvaRemoteError, match="negative"):
                await client_a.put("s:sp", -1.0)
            pvs[1].post(7.0)  # a post on b
            update = await sub.next(30)
            assert update.value["value"] == 7.0
    assert calls == ["a", "a"]
    await until(lambda: pvs[0].value["value"] == 7.0)  # a applies b's post in its own time
    assert pvs[0].value["value"] == pvs[2].value["value"] == 7.0
    # the timestamp travels with the value
    assert pvs[0].value["timeStamp"] == pvs[1].value["timeStamp"]
    assert b.share is not None and len(await b.share.instances()) == 3


async def test_a_thread_burst_ends_with_its_last_value_everywhere(servers: Any) -> None:
    here, there = SharedPV(nt.NTScalar("i"), 0), SharedPV(nt.NTScalar("i"), 0)
    await servers({"s:n": here})
    far = await servers({"s:n": there})
    async with _client(far) as client, client.monitor("s:n") as sub:
        await sub.next()
        poster = threading.Thread(target=lambda: [here.post(i) for i in range(1, 2001)])
        poster.start()
        seen = []
        while not seen or seen[-1] != 2000:
            seen.append((await sub.next(30)).value["value"])
        poster.join()
    assert seen == sorted(seen) and seen[-1] == 2000


async def test_concurrent_posts_on_every_instance_converge(servers: Any, share_url: str) -> None:
    """Three instances post to the same PV at once, from threads: they all end with one value
    (the stream's last), field by field, and Redis holds it too."""
    pvs = [SharedPV(nt.NTScalar("i", display=True), 0) for _ in range(3)]
    # flushed() below waits up to the share's timeout: a generous one
    shares = [RedisShare(share_url, timeout=60) for _ in pvs]
    for pv, share in zip(pvs, shares, strict=True):
        await servers({"s:race": pv}, share=share)

    def hammer(k: int) -> None:
        for i in range(300):
            pvs[k].post({"value": k * 1000 + i, "display": {"description": f"from {k}"}})

    threads = [threading.Thread(target=hammer, args=(k,)) for k in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # the threads' last posts reach the shares when the loop next runs (their hand-off is
    # already scheduled); then every post is in Redis once each share has flushed
    await asyncio.sleep(0)
    for share in shares:
        await share.flushed()
    stored = await shares[0].stored_value("s:race")
    value, described = stored["value"], stored["display"]["description"]
    assert value % 1000 == 299 and described == f"from {value // 1000}"  # someone's last post
    # every instance reads the stream to its end in its own time and holds the same
    await until(
        lambda: all(
            (pv.value["value"], pv.value["display"]["description"]) == (value, described)
            for pv in pvs
        )
    )


class _PostFromThreadOnce:
    """A watcher that, the first time its PV changes, has a thread post ``value`` to ``target``
    and waits for it: the post's value is set at once, but the share sees it only when the
    server's loop next runs, after whatever the loop is doing now."""

    loop = None  # called where the post happens (here: the share applying a stream entry)

    def __init__(self, target: SharedPV, value: int) -> None:
        self.target, self.value, self.done = target, value, False

    def on_post(self, mask: int, value: Any) -> None:
        if not self.done:
            self.done = True
            poster = threading.Thread(target=self.target.post, args=(self.value,))
            poster.start()
            poster.join()

    def on_close(self) -> None:
        pass


async def test_a_thread_post_overtaken_by_a_stream_entry_still_ends_everywhere(
    servers: Any,
) -> None:
    """A thread posts on instance a just before a's reader applies b's newer-in-the-stream
    post of the same PV, and a's share learns of its own post only afterwards: its post comes
    last in the stream, so every instance (a too) must end with it."""
    a_trigger, a_race = SharedPV(nt.NTScalar("i"), 0), SharedPV(nt.NTScalar("i"), 0)
    b_trigger, b_race = SharedPV(nt.NTScalar("i"), 0), SharedPV(nt.NTScalar("i"), 0)
    await servers({"s:trigger": a_trigger, "s:race": a_race})
    b = await servers({"s:trigger": b_trigger, "s:race": b_race})
    a_trigger.add_watcher(_PostFromThreadOnce(a_race, 2))
    # one transaction from b: a's reader applies both entries in one go, the thread's post
    # (made while applying the first) lands between them
    b_trigger.post(1)
    b_race.post(1)
    assert b.share is not None
    await until(lambda: b_race.value["value"] == 2)  # a's post came after b's in the stream
    assert (await b.share.stored_value("s:race"))["value"] == 2
    await until(lambda: a_race.value["value"] == 2)


async def test_new_instances_start_with_current_values_and_learn_new_pvs(servers: Any) -> None:
    first = SharedPV(nt.NTScalar("d", display=True), 1.0)
    a = await servers({"s:t": first})
    a.create("s:table", nt.NTTable([("name", "s"), ("x", "d")]), {"name": ["p"], "x": [2.5]})
    first.post({"value": 3.0, "display": {"units": "mm"}})
    b = await servers({"s:t": SharedPV(nt.NTScalar("d", display=True), 1.0)})
    assert b.names() == ["s:t", "s:table"]  # learnt from Redis, with its type
    async with _client(b) as client:
        got = await client.get("s:t")
        assert got["value"] == 3.0 and got["display"]["units"] == "mm"
        table = await client.get("s:table")
        assert table["value"]["name"] == ["p"] and list(table["value"]["x"]) == [2.5]
        # a PV created on a running instance appears on the others
        a.create("s:late", nt.NTScalarArray("i"), [1, 2, 3])
        await until(lambda: "s:late" in b)
        assert list((await client.get("s:late"))["value"]) == [1, 2, 3]


async def test_a_type_that_differs_from_the_stored_one_refuses_to_start(servers: Any) -> None:
    await servers({"s:v": SharedPV(nt.NTScalar("d"), 1.0)})
    with pytest.raises(PvaShareError, match="same type"):
        await servers({"s:v": SharedPV(nt.NTScalar("s"), "text")})


async def test_redis_unreachable_at_start_serves_local_values(
    caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    dead = RedisProcess(tmp_path)
    dead.kill()
    server = Server(
        {"s:local": SharedPV(nt.NTScalar("i"), 4)},
        config=_config(),
        share=RedisShare(dead.url, timeout=0.2),
    )
    with caplog.at_level(logging.WARNING, logger="reckon.pva.share"):
        await server.start()
        try:
            async with _client(server) as client:
                assert (await client.get("s:local"))["value"] == 4
                await client.put("s:local", 5)  # answered although Redis is away
                await asyncio.sleep(0.5)  # a few reconnect attempts
                assert (await client.get("s:local"))["value"] == 5
        finally:
            await server.stop()
    assert sum("unreachable" in r.getMessage() for r in caplog.records) == 1


async def test_garbage_in_the_stream_is_skipped(
    servers: Any, share_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Whatever else writes to the deployment's stream, instances log it and keep following."""
    import redis.asyncio as aredis

    here, there = SharedPV(nt.NTScalar("d"), 0.0), SharedPV(nt.NTScalar("d"), 0.0)
    await servers({"s:g": here})
    await servers({"s:g": there})
    base, prefix = split_url(share_url)
    r = aredis.Redis.from_url(base)
    garbage: list[dict[bytes, bytes]] = [
        {b"x": b"1"},
        {b"g": b"zz", b"n": b"s:g", b"s": b"\xc1", b"d": b"\xc1"},
        {b"g": b"zz", b"n": b"s:g", b"s": msgpack.packb([1]), b"d": msgpack.packb(["no"])},
        {
            b"g": b"zz",
            b"n": b"s:g",
            b"s": msgpack.packb([1]),
            b"d": msgpack.packb([{"value": "x"}]),
        },
        {b"g": b"zz", b"n": b"s:g", b"s": msgpack.packb([1]), b"d": msgpack.packb([{"nope": 1}])},
        {
            b"g": b"zz",
            b"n": b"s:new",
            b"s": msgpack.packb([1]),
            b"d": msgpack.packb([{}]),
            b"t": b"\x92\xa1S",
        },
    ]
    with caplog.at_level(logging.ERROR, logger="reckon.pva.share"):
        for fields in garbage:
            await r.xadd(f"{prefix}:log", fields)  # type: ignore[arg-type]
        await r.aclose()
        here.post(4.5)
        await until(lambda: there.value["value"] == 4.5)
    assert any("skipped" in rec.getMessage() or "s:g" in rec.getMessage() for rec in caplog.records)


def test_share_urls() -> None:
    assert split_url("redis://h:1/2?prefix=plant") == ("redis://h:1/2", "plant")
    assert split_url("redis://h:1/0") == ("redis://h:1/0", "reckon:pva")
    with pytest.raises(ConfigurationError, match="Redis URL"):
        split_url("http://h:1/0")


# ------------------------------------------------------------------------------------------
# the msgpack form (property tests and malformed input)
# ------------------------------------------------------------------------------------------


@settings(max_examples=150, deadline=None)
@given(types().flatmap(lambda t: st.tuples(st.just(t), values(t))))
def test_types_and_values_round_trip_through_msgpack(case: tuple[Any, Any]) -> None:
    t, v = case
    assert unpack_type(pack_type(t)) == t
    assert values_equal(unpack_value(t, pack_value(t, v)), v)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=64))
def test_garbage_from_the_store_raises_a_share_error(data: bytes) -> None:
    for read in (unpack_type, lambda d: unpack_value(nt.NTScalar("d").type, d)):
        with contextlib.suppress(PvaShareError):  # anything else fails the test
            read(data)


def test_a_type_nested_too_deep_is_refused() -> None:
    obj: Any = ["s", "d"]
    for _ in range(100):
        obj = ["S", "", [["f", obj]]]
    with pytest.raises(PvaShareError, match="deeper"):
        unpack_type(msgpack.packb(obj))


async def test_stop_ends_while_the_stream_reader_is_busy(servers: Any, share_url: str) -> None:
    """stop() ends however its tasks are caught by the cancel (Python 3.11's wait_for, which
    redis-py wraps each command's write in when given a socket timeout, drops a cancel that
    arrives as the write completes: a reader then read on and stop() waited for it forever).
    Another instance keeps the stream busy, so the reader is stopped between commands again
    and again."""
    pv = SharedPV(nt.NTScalar("d"), 0.0)
    await servers({"share:x": pv})
    busy = True

    async def burst() -> None:
        n = 0
        while busy:
            n += 1
            pv.post(float(n))
            await asyncio.sleep(0)

    poster = asyncio.create_task(burst())
    try:
        for i in range(20):
            two = Server(
                {"share:x": SharedPV(nt.NTScalar("d"), 0.0)}, config=_config(), share=share_url
            )
            await two.start()
            await asyncio.sleep(0.003 * (i % 7))
            async with asyncio.timeout(10):  # without the fix: forever, now and then
                await two.stop()
    finally:
        busy = False
        await poster
