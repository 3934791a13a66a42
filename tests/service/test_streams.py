"""The four call kinds (unary, server-, client-, bidi-streaming) in every placement and transport,
with the same calling code: async iterators in and out, errors mid-stream, deadlines across a
stream, cancellation by the reader, backpressure in-process, mocks, and plain grpcio stubs."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from rtest_gen import rtest_pb2 as pb
from rtest_gen.rtest_reckon import Feed
from svc_helpers import make_deployment

from reckon.errors import DeadlineExceededError, DeploymentError, ServiceUnavailableError
from reckon.service import Deployment, Unit

FEED = {"definition": "rtest_gen.rtest_reckon:Feed", "implementation": "svc_impls:FeedService"}


def feed_unit(placement: str, tmp_path: Path, **extra: Any) -> Deployment:
    services = {"feed": {**FEED, "placement": placement, "connect": True, **extra}}
    return Deployment.from_dict(make_deployment(services, tmp_path=tmp_path))


async def items(*counts: int) -> AsyncIterator[pb.Item]:
    for c in counts:
        await asyncio.sleep(0)
        yield pb.Item(id=f"i{c}", count=c)


async def feed_session(feed: Any) -> list[object]:
    """Calling code that must not change between placements and transports."""
    out: list[object] = []
    out.append((await feed.Count(pb.Key(id="abc"))).count)
    out.append([t.count async for t in feed.Ticks(pb.TickRequest(count=4))])
    total = await feed.Sum(items(1, 2, 3))  # an async iterator of requests ...
    out.append((total.id, total.count))
    total = await feed.Sum([pb.Item(id="x", count=5)])  # ... or any iterable
    out.append(total.count)
    out.append([e.count async for e in feed.Echo(items(1, 2, 3))])
    # Ping-pong: each request is sent only after the previous answer arrived.
    queue: asyncio.Queue[pb.Item | None] = asyncio.Queue()
    await queue.put(pb.Item(count=1))

    async def pings() -> AsyncIterator[pb.Item]:
        while (item := await queue.get()) is not None:
            yield item

    pongs = []
    async for pong in feed.Echo(pings()):
        pongs.append(pong.count)
        await queue.put(pb.Item(count=pong.count + 1) if len(pongs) < 4 else None)
    out.append(pongs)
    # A failure mid-stream arrives after the items sent before it, as the same exception.
    got = []
    with pytest.raises(ServiceUnavailableError, match="failed after 2"):
        async for t in feed.Ticks(pb.TickRequest(count=5, fail_code="UNAVAILABLE", fail_after=2)):
            got.append(t.count)
    out.append(got)
    return out


EXPECTED = [3, [0, 1, 2, 3], ("i1+i2+i3", 6), 5, [2, 4, 6], [2, 6, 14, 30], [0, 1]]


@pytest.mark.parametrize("placement", ["inprocess", "process"])
async def test_four_kinds_with_the_same_code_everywhere(placement: str, tmp_path: Path) -> None:
    async with Unit(feed_unit(placement, tmp_path)) as unit:
        transports = [None, "grpc", "connect"] if placement == "inprocess" else ["grpc", "connect"]
        for transport in transports:
            feed = unit.locate(Feed, transport=transport)
            assert await asyncio.wait_for(feed_session(feed), 60) == EXPECTED, transport


async def _until(cond: Any, within: float = 20.0) -> None:
    for _ in range(int(within / 0.02)):
        if cond():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("condition not met in time")


@pytest.mark.parametrize("transport", [None, "grpc", "connect"])
async def test_a_deadline_ends_a_stream_midway_and_cancels_the_handler(
    transport: str | None, tmp_path: Path
) -> None:
    from svc_impls import FeedService

    FeedService.closed.clear()
    async with Unit(feed_unit("inprocess", tmp_path)) as unit:
        feed = unit.locate(Feed, transport=transport)
        got = []
        with pytest.raises(DeadlineExceededError):
            async for t in feed.Ticks(pb.TickRequest(count=100, interval=0.1), timeout=1.0):
                got.append(t.count)
        assert 0 < len(got) < 100  # items arrived before the deadline, and then it ended
        await _until(lambda: FeedService.closed)
        assert FeedService.closed == ["cancelled"]


@pytest.mark.parametrize("transport", [None, "grpc", "connect"])
async def test_a_reader_that_stops_early_ends_the_handler(
    transport: str | None, tmp_path: Path
) -> None:
    from svc_impls import FeedService

    FeedService.closed.clear()
    async with Unit(feed_unit("inprocess", tmp_path)) as unit:
        feed = unit.locate(Feed, transport=transport)
        stream = feed.Ticks(pb.TickRequest(count=1000, interval=0.05))
        got = [(await stream.__anext__()).count for _ in range(2)]
        await stream.aclose()
        assert got == [0, 1]
        await _until(lambda: FeedService.closed)
        # In-process the generator is closed; over the wire its task is cancelled.
        assert FeedService.closed in (["closed"], ["cancelled"])


async def test_in_process_streams_have_backpressure(tmp_path: Path) -> None:
    """The handler makes an item only when the reader asks for one: nothing piles up."""
    from svc_impls import FeedService

    FeedService.produced.clear()
    async with Unit(feed_unit("inprocess", tmp_path)) as unit:
        stream = unit.locate(Feed).Ticks(pb.TickRequest(count=10_000))
        for _ in range(3):
            await stream.__anext__()
        await asyncio.sleep(0.1)
        assert FeedService.produced == [0, 1, 2]
        await stream.aclose()


async def test_mocks_stream() -> None:
    from reckon.testing import mock

    feed = mock(Feed)
    feed.Ticks.returns(pb.Item(count=7), pb.Item(count=8))
    feed.Sum.responds(lambda reqs: pb.Item(count=sum(r.count for r in reqs)))
    feed.Echo.responds(lambda reqs: [pb.Item(count=-r.count) for r in reqs])
    dep = Deployment.from_dict(make_deployment({"feed": {**FEED, "placement": "inprocess"}}))
    async with Unit(dep, implementations={"feed": feed}) as unit:
        client = unit.locate(Feed)
        assert [t.count async for t in client.Ticks(pb.TickRequest())] == [7, 8]
        assert (await client.Sum(items(1, 2))).count == 3
        assert [e.count async for e in client.Echo(items(4, 5))] == [-4, -5]
        feed.Ticks.raises("UNAVAILABLE", "feed down")
        with pytest.raises(ServiceUnavailableError, match="feed down"):
            async for _ in client.Ticks(pb.TickRequest()):
                pass
    assert [len(c) for c in feed.Sum.calls] == [2]  # a request stream is recorded as a list
    assert feed.Ticks.calls[0] == pb.TickRequest()


def test_svc_check_accepts_streaming_methods_and_refuses_the_wrong_shape(tmp_path: Path) -> None:
    from reckon.service.base import check_implementation

    deploy = tmp_path / "deploy.toml"
    dep = make_deployment({"feed": dict(FEED)}, tmp_path=tmp_path)
    lines = ["[unit]", f"name = {dep['unit']['name']!r}", f"path = {dep['unit']['path']!r}"]
    lines += ["[services.feed]", f"definition = {FEED['definition']!r}"]
    lines += [f"implementation = {FEED['implementation']!r}"]
    deploy.write_text("\n".join(lines).replace("'", '"') + "\n")
    out = subprocess.run(
        [sys.executable, "-m", "reckon.cli", "svc", "check", str(deploy)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert "feed (inprocess)" in out.stdout

    class NotAGenerator:
        async def Count(self, request: Any, ctx: Any) -> Any: ...
        async def Ticks(self, request: Any, ctx: Any) -> Any: ...  # must yield
        async def Sum(self, request: Any, ctx: Any) -> Any: ...
        async def Echo(self, request: Any, ctx: Any) -> Any:
            yield None

    with pytest.raises(DeploymentError, match="Ticks streams its responses"):
        check_implementation(NotAGenerator, Feed, "feed")


async def test_plain_grpcio_stubs_drive_all_four_kinds(tmp_path: Path) -> None:
    """A client nobody here wrote: the stubs grpcio-tools generates, over a plain channel."""
    import grpc
    import grpc.aio
    from rtest_gen import rtest_pb2_grpc as pbg
    from svc_impls import FeedService

    async with Unit(feed_unit("process", tmp_path)) as unit:
        # the one address the unit publishes (what `svc run` prints): gRPC is served there too
        address = (unit.addresses["feed"].connect or "").removeprefix("http://")
        async with grpc.aio.insecure_channel(address) as channel:
            stub = pbg.FeedStub(channel)
            assert (await stub.Count(pb.Key(id="ab"), timeout=10)).count == 2
            ticks = [t.count async for t in stub.Ticks(pb.TickRequest(count=3), timeout=10)]
            assert ticks == [0, 1, 2]
            assert (await stub.Sum(items(4, 5), timeout=10)).count == 9
            echoed = [e.count async for e in stub.Echo(items(1, 2), timeout=10)]
            assert echoed == [2, 4]
            # A deadline mid-stream.
            call = stub.Ticks(pb.TickRequest(count=100, interval=0.1), timeout=1.0)
            got = []
            with pytest.raises(grpc.aio.AioRpcError) as info:
                async for t in call:
                    got.append(t.count)
            assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED and 0 < len(got) < 100
            # Cancellation by the client.
            call = stub.Ticks(pb.TickRequest(count=100, interval=0.1), timeout=30)
            assert (await call.read()).count == 0
            call.cancel()
            assert await call.code() == grpc.StatusCode.CANCELLED
            # A malformed frame in a request stream: INVALID_ARGUMENT, as for unary calls.
            raw = channel.stream_unary("/rtest.Feed/Sum")

            async def frames() -> AsyncIterator[bytes]:
                yield pb.Item(count=1).SerializeToString()
                yield b"\xff\xff\xff"

            with pytest.raises(grpc.aio.AioRpcError) as info:
                await raw(frames(), timeout=10)
            assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            # The service keeps serving.
            assert (await stub.Count(pb.Key(id="abc"), timeout=10)).count == 3
    assert FeedService is not None
