"""Per-call limits hold for streaming calls as for unary ones: ``call_limit`` counts each stream
while it is open (in-process and over the wire, with plain grpcio stubs), and
``max_message_bytes`` applies to each message of a stream."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import grpc.aio
import pytest
from rtest_gen import rtest_pb2 as pb
from rtest_gen import rtest_pb2_grpc as pbg
from rtest_gen.rtest_reckon import Feed
from svc_helpers import make_deployment

from reckon.errors import CallCancelledError, ServiceCallError
from reckon.service import Deployment, Unit

FEED = {"definition": "rtest_gen.rtest_reckon:Feed", "implementation": "svc_impls:FeedService"}


def feed_unit(tmp_path: Path, placement: str = "inprocess", **extra: Any) -> Deployment:
    services = {"feed": {**FEED, "placement": placement, "expose": True, **extra}}
    return Deployment.from_dict(make_deployment(services, tmp_path=tmp_path))


def published(unit: Unit) -> str:
    """host:port of the one address the unit publishes for the feed (and the only one)."""
    url = unit.addresses["feed"].connect
    assert url is not None and unit.addresses["feed"].grpc == url.removeprefix("http://")
    return url.removeprefix("http://")


async def held_open(first: pb.Item, release: asyncio.Event) -> AsyncIterator[pb.Item]:
    """A request stream that sends one item and then stays open until ``release``."""
    yield first
    await release.wait()


async def test_call_limit_ends_open_streams_in_process(tmp_path: Path) -> None:
    from svc_impls import FeedService

    FeedService.closed.clear()
    async with Unit(feed_unit(tmp_path, call_limit=0.5)) as unit:
        feed = unit.locate(Feed)
        got = []
        with pytest.raises(CallCancelledError, match=r"call limit of 0\.5s"):
            async for t in feed.Ticks(pb.TickRequest(count=100, interval=0.1), timeout=20):
                got.append(t.count)
        assert 0 < len(got) < 20
        assert FeedService.closed == ["cancelled"]  # the handler was stopped, not left behind
        # A stream whose reader went away counts too: the next read past the limit ends it.
        stream = feed.Ticks(pb.TickRequest(count=100), timeout=20)
        assert (await stream.__anext__()).count == 0
        await asyncio.sleep(0.7)
        with pytest.raises(CallCancelledError, match="call limit"):
            await stream.__anext__()
        # Calls within the limit are untouched, and the service keeps serving.
        assert [t.count async for t in feed.Ticks(pb.TickRequest(count=3), timeout=20)] == [0, 1, 2]
        assert (await feed.Count(pb.Key(id="ab"), timeout=20)).count == 2


async def test_call_limit_ends_streams_of_grpcio_stubs(tmp_path: Path) -> None:
    async with Unit(feed_unit(tmp_path, call_limit=0.5)) as unit:
        async with grpc.aio.insecure_channel(published(unit)) as channel:
            stub = pbg.FeedStub(channel)
            # server-streaming: items until the limit, then CANCELLED
            got = []
            with pytest.raises(grpc.aio.AioRpcError) as info:
                async for t in stub.Ticks(pb.TickRequest(count=100, interval=0.1), timeout=20):
                    got.append(t.count)
            assert info.value.code() == grpc.StatusCode.CANCELLED, info.value
            assert "call limit" in (info.value.details() or "") and 0 < len(got) < 20
            # bidi: a stream the client keeps open counts while it is open
            release = asyncio.Event()
            call = stub.Echo(held_open(pb.Item(id="a", count=1), release), timeout=20)
            assert (await call.read()).count == 2
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await call.read()
            release.set()
            assert info.value.code() == grpc.StatusCode.CANCELLED
            # client-streaming (one response) is limited like a unary call
            release = asyncio.Event()
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await stub.Sum(held_open(pb.Item(id="a", count=1), release), timeout=20)
            release.set()
            assert info.value.code() == grpc.StatusCode.CANCELLED
            assert "call limit" in (info.value.details() or "")
            assert (await stub.Count(pb.Key(id="abc"), timeout=20)).count == 3


async def test_call_limit_kills_a_child_whose_stream_stays_open(tmp_path: Path) -> None:
    async with Unit(feed_unit(tmp_path, "process", call_limit=0.5)) as unit:
        child = unit.children["feed"]
        feed = unit.locate(Feed)
        with pytest.raises(ServiceCallError) as info:
            async for _ in feed.Ticks(pb.TickRequest(count=100, interval=0.1), timeout=30):
                pass
        assert info.value.code == "UNAVAILABLE"  # the watchdog killed the process
        for _ in range(1000):
            if child.restarts == 1 and child.state == "running":
                break
            await asyncio.sleep(0.02)
        assert child.exit_codes == [-9]


async def test_max_message_bytes_holds_for_each_message_of_a_stream(tmp_path: Path) -> None:
    async with Unit(feed_unit(tmp_path, max_message_bytes=10_000)) as unit:
        async with grpc.aio.insecure_channel(published(unit)) as channel:
            stub = pbg.FeedStub(channel)

            def item(size: int) -> pb.Item:  # the handlers answer with its id and count only
                return pb.Item(id="i", count=1, tags=[secrets.token_hex(size // 2)])

            # Many messages under the limit make a stream far over it: fine.
            total = await stub.Sum((item(6_000) for _ in range(10)), timeout=20)
            assert total.count == 10
            echoed = [e.count async for e in stub.Echo((item(6_000) for _ in range(5)), timeout=20)]
            assert echoed == [2] * 5
            # One message over it fails the call, whichever message of the stream it is.
            for call in (
                lambda: stub.Sum(iter([item(100), item(20_000)]), timeout=20),
                lambda: _drain(stub.Echo(iter([item(100), item(20_000)]), timeout=20)),
            ):
                with pytest.raises(grpc.aio.AioRpcError) as info:
                    await call()
                assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, info.value
            assert (await stub.Count(pb.Key(id="ok"), timeout=20)).count == 2


async def _drain(stream: Any) -> list[Any]:
    return [x async for x in stream]
