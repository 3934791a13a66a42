"""Standard services and the one port, driven by clients nobody here wrote: grpcio's health stub,
``buf curl`` (reflection, no schema) over gRPC, gRPC-Web and Connect on HTTP/1.1 and HTTP/2."""

from __future__ import annotations

import asyncio
import json
import subprocess
from pathlib import Path
from typing import Any

import grpc
import grpc.aio
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from rtest_gen import rtest_pb2 as pb
from rtest_gen import rtest_pb2_grpc as pbg
from svc_helpers import make_deployment

from reckon.service import Deployment, Unit

FEED = {"definition": "rtest_gen.rtest_reckon:Feed", "implementation": "svc_impls:FeedService"}
STANDARD = [
    "grpc.health.v1.Health",
    "grpc.reflection.v1.ServerReflection",
    "grpc.reflection.v1alpha.ServerReflection",
]


def feed_unit(placement: str, tmp_path: Path) -> Deployment:
    services = {"feed": {**FEED, "placement": placement, "connect": True, "expose": True}}
    return Deployment.from_dict(make_deployment(services, tmp_path=tmp_path))


def _buf(buf: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(buf), "curl", *args], capture_output=True, text=True, timeout=60, check=False
    )


async def buf_curl(buf: Path, *args: str) -> list[Any]:
    """The JSON messages ``buf curl`` printed (one per response of a stream)."""
    done = await asyncio.to_thread(_buf, buf, *args)
    assert done.returncode == 0, (args, done.stderr)
    decoder, text, out = json.JSONDecoder(), done.stdout.strip(), []
    while text:
        obj, end = decoder.raw_decode(text)
        out.append(obj)
        text = text[end:].strip()
    return out


async def buf_list(buf: Path, *args: str) -> list[str]:
    done = await asyncio.to_thread(_buf, buf, "--list-services", *args)
    assert done.returncode == 0, (args, done.stderr)
    return done.stdout.split()


@pytest.mark.parametrize("placement", ["inprocess", "process"])
async def test_buf_curl_with_reflection_over_every_protocol_on_one_port(
    placement: str, buf: Path, tmp_path: Path
) -> None:
    async with Unit(feed_unit(placement, tmp_path)) as unit:
        one_port = unit.addresses["feed"].connect
        assert one_port is not None
        # reckon's own gRPC clients use the same port: a process listens on no other
        assert f"http://{unit.addresses['feed'].grpc}" == one_port
        h2 = ["--http2-prior-knowledge"]
        ways = [
            (one_port, ["--protocol", "grpc", *h2]),
            (one_port, ["--protocol", "grpcweb"]),  # HTTP/1.1
            (one_port, ["--protocol", "grpcweb", *h2]),
            (one_port, ["--protocol", "connect"]),  # HTTP/1.1
            (one_port, ["--protocol", "connect", *h2]),
        ]
        for base, opts in ways:
            assert await buf_list(buf, *opts, base) == sorted(["rtest.Feed", *STANDARD]), opts
            got = await buf_curl(buf, *opts, "-d", '{"id": "abc"}', f"{base}/rtest.Feed/Count")
            assert got == [{"id": "abc", "count": 3}], opts
            got = await buf_curl(buf, *opts, "-d", '{"count": 3}', f"{base}/rtest.Feed/Ticks")
            assert [x.get("count", 0) for x in got] == [0, 1, 2], opts
            health = f"{base}/grpc.health.v1.Health/Check"
            assert await buf_curl(buf, *opts, "-d", '{"service": "rtest.Feed"}', health) == [
                {"status": "SERVING"}
            ]
            done = await asyncio.to_thread(_buf, buf, *opts, "-d", '{"service": "x"}', health)
            assert done.returncode != 0 and "not_found" in done.stderr.lower().replace(" ", "_")
        # v1alpha reflection too (older tools ask for it).
        assert "rtest.Feed" in await buf_list(
            buf, "--reflect-protocol", "grpc-v1alpha", "--protocol", "connect", one_port
        )


async def test_grpcio_reaches_all_four_kinds_on_the_one_port(tmp_path: Path) -> None:
    async with Unit(feed_unit("inprocess", tmp_path)) as unit:
        one_port = (unit.addresses["feed"].connect or "").removeprefix("http://")
        async with grpc.aio.insecure_channel(one_port) as channel:
            stub = pbg.FeedStub(channel)
            for _ in range(1100):  # more requests than a server's default per-connection cap
                assert (await stub.Count(pb.Key(id="ab"), timeout=10)).count == 2
            ticks = [t.count async for t in stub.Ticks(pb.TickRequest(count=3), timeout=10)]
            assert ticks == [0, 1, 2]

            async def items() -> Any:
                for c in (1, 2):
                    yield pb.Item(count=c)

            assert (await stub.Sum(items(), timeout=10)).count == 3
            assert [e.count async for e in stub.Echo(items(), timeout=10)] == [2, 4]
            with pytest.raises(grpc.aio.AioRpcError) as info:
                async for _ in stub.Ticks(pb.TickRequest(count=5, fail_code="ABORTED")):
                    pass
            assert info.value.code() == grpc.StatusCode.ABORTED


@pytest.mark.parametrize("port", ["grpc", "connect"])
async def test_health_per_service_not_found_and_watch(port: str, tmp_path: Path) -> None:
    unit = Unit(feed_unit("inprocess", tmp_path))
    await unit.start()
    try:
        addr = getattr(unit.addresses["feed"], port).removeprefix("http://")
        async with grpc.aio.insecure_channel(addr) as channel:
            health = health_pb2_grpc.HealthStub(channel)
            req = health_pb2.HealthCheckRequest
            serving = health_pb2.HealthCheckResponse.SERVING
            for name in ("", "rtest.Feed", *STANDARD):
                assert (await health.Check(req(service=name), timeout=10)).status == serving
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await health.Check(req(service="rtest.Nope"), timeout=10)
            assert info.value.code() == grpc.StatusCode.NOT_FOUND
            assert "rtest.Feed" in (info.value.details() or "")
            listed = await health.List(health_pb2.HealthListRequest(), timeout=10)
            assert sorted(listed.statuses) == sorted(["", "rtest.Feed", *STANDARD])
            unknown = health.Watch(req(service="rtest.Nope"), timeout=10)
            first = await unknown.read()
            assert first.status == health_pb2.HealthCheckResponse.SERVICE_UNKNOWN
            unknown.cancel()
            watch = health.Watch(req(service="rtest.Feed"), timeout=30)
            assert (await watch.read()).status == serving
            stopping = asyncio.ensure_future(unit.stop())
            # The unit says NOT_SERVING to its watchers before its servers go.
            update = await watch.read()
            assert update.status == health_pb2.HealthCheckResponse.NOT_SERVING
            await stopping
    finally:
        await unit.stop()


@pytest.fixture(scope="session")
def connect_node() -> Path:
    """@connectrpc/connect-node and @bufbuild/protobuf in tests/service/connect_node/."""
    from _npm import npm_install

    folder = Path(__file__).parent / "connect_node"
    npm_install(folder)
    return folder / "client.mjs"


@pytest.mark.parametrize("placement", ["inprocess", "process"])
async def test_connect_node_client_over_http1_and_http2_on_one_port(
    placement: str, connect_node: Path, gen_root: Path, tmp_path: Path
) -> None:
    descriptors = gen_root / "rtest_gen" / "_descriptors.binpb"
    async with Unit(feed_unit(placement, tmp_path)) as unit:
        base = unit.addresses["feed"].connect or ""
        ways = [("1.1", "connect"), ("1.1", "grpcweb"), ("2", "connect"), ("2", "grpcweb")]
        ways += [("2", "grpc"), ("2", "grpc", "json"), ("1.1", "connect", "json")]
        for http, protocol, *fmt in ways:
            cmd = ["node", str(connect_node), base, str(descriptors), http, protocol, *fmt]
            done = await asyncio.to_thread(
                subprocess.run, cmd, capture_output=True, text=True, timeout=60
            )
            assert done.returncode == 0, (http, protocol, done.stderr)
            got = json.loads(done.stdout)
            want: dict[str, Any] = {"count": 3, "ticks": [0, 1, 2]}
            if http == "2":
                want.update(sum=6, echo=[2, 4])
            want["error"] = [14, "failed after 1"]  # 14: Connect's code for UNAVAILABLE
            assert got == want, (http, protocol)


async def test_the_services_of_a_process_share_its_ports(buf: Path, tmp_path: Path) -> None:
    """Three services exposed from one process: one gRPC port and one port for every protocol
    for the two with the same settings (reflection and health list both); the one with its own
    message size limit gets its own."""
    from svc_helpers import two_services

    services = two_services("inprocess", expose=True, connect=True)
    services["stock"]["expose"] = True  # joins without asking for Connect: served there anyway
    services["feed"] = {**FEED, "expose": True, "connect": True, "max_message_bytes": 1 << 20}
    async with Unit(Deployment.from_dict(make_deployment(services, tmp_path=tmp_path))) as unit:
        shop, stock, feed = (unit.addresses[n] for n in ("catalog", "stock", "feed"))
        assert shop == stock and shop.connect is not None
        assert feed.grpc != shop.grpc and feed.connect != shop.connect
        listed = await buf_list(buf, "--protocol", "connect", shop.connect)
        assert listed == sorted(["rtest.Catalog", "rtest.Stock", *STANDARD])
        got = await buf_curl(buf, "--protocol", "grpcweb", "-d", '{"id": "a"}',
                             f"{shop.connect}/rtest.Stock/Count")  # fmt: skip
        assert got == [{"id": "a", "count": 3}]
        async with grpc.aio.insecure_channel(shop.grpc or "") as channel:
            health = health_pb2_grpc.HealthStub(channel)
            for name in ("rtest.Catalog", "rtest.Stock"):
                got_status = await health.Check(health_pb2.HealthCheckRequest(service=name))
                assert got_status.status == health_pb2.HealthCheckResponse.SERVING
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await health.Check(health_pb2.HealthCheckRequest(service="rtest.Feed"))
            assert info.value.code() == grpc.StatusCode.NOT_FOUND
