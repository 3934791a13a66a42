"""Per-unit and per-service settings: interceptors on every transport, message size limits,
keepalive."""

from __future__ import annotations

import asyncio
import secrets
from pathlib import Path
from typing import Any

import pytest
from rtest_gen import rtest_pb2 as pb
from rtest_gen.rtest_reckon import Feed
from svc_helpers import make_deployment

from reckon.errors import PermissionDeniedError, ServiceCallError
from reckon.service import Deployment, Unit

FEED = {"definition": "rtest_gen.rtest_reckon:Feed", "implementation": "svc_impls:FeedService"}


async def items(*counts: int) -> Any:
    for c in counts:
        yield pb.Item(count=c)


@pytest.mark.parametrize("placement", ["inprocess", "process"])
async def test_interceptors_wrap_every_call_kind_on_every_transport(
    placement: str, tmp_path: Path
) -> None:
    services = {
        "feed": {
            **FEED,
            "placement": placement,
            "connect": True,
            "interceptors": ["svc_impls:Stamp"],
        }
    }
    dep = make_deployment(services, tmp_path=tmp_path, interceptors=["svc_impls:Outer"])
    async with Unit(Deployment.from_dict(dep)) as unit:
        transports = [None, "grpc", "connect"] if placement == "inprocess" else ["grpc", "connect"]
        for transport in transports:
            feed = unit.locate(Feed, transport=transport)
            # The unit's interceptor is outermost: it sees what the service's one returned.
            got = await feed.Count(pb.Key(id="ab"), timeout=20)
            assert list(got.tags) == ["stamped:Count", "outer"], transport
            total = await feed.Sum(items(1, 2), timeout=20)
            assert list(total.tags)[1:] == ["stamped:Sum", "outer"]
            ticks = [list(t.tags) async for t in feed.Ticks(pb.TickRequest(count=2), timeout=20)]
            assert ticks == [["stamped:Ticks"]] * 2, transport
            echoed = [list(e.tags) async for e in feed.Echo(items(1), timeout=20)]
            assert echoed == [["stamped:Echo"]], transport
            # Raising in an interceptor ends the call as a handler's failure would.
            deny = {"x-deny": "1"}
            with pytest.raises(PermissionDeniedError, match="denied by an interceptor"):
                await feed.Count(pb.Key(id="a"), metadata=deny, timeout=20)
            with pytest.raises(PermissionDeniedError):
                async for _ in feed.Ticks(pb.TickRequest(count=2), metadata=deny, timeout=20):
                    pass


@pytest.mark.parametrize("transport", ["grpc", "connect"])
async def test_max_message_bytes_per_service(transport: str, tmp_path: Path) -> None:
    services = {
        "feed": {**FEED, "expose": True, "connect": True, "max_message_bytes": 10_000},
    }
    dep = make_deployment(services, tmp_path=tmp_path, max_message_bytes=1)  # the service's wins
    async with Unit(Deployment.from_dict(dep)) as unit:
        feed = unit.locate(Feed, transport=transport)
        assert (await feed.Count(pb.Key(id="x" * 5_000), timeout=20)).count == 5_000
        with pytest.raises(ServiceCallError) as info:
            # Random text: still too big after the gzip a Connect client applies.
            await feed.Count(pb.Key(id=secrets.token_hex(15_000)), timeout=20)
        assert info.value.code == "RESOURCE_EXHAUSTED"
        assert (await feed.Count(pb.Key(id="ok"), timeout=20)).count == 2  # still serving


async def test_keepalive_pings_keep_an_idle_connection_usable(tmp_path: Path) -> None:
    services = {"feed": {**FEED, "placement": "process", "keepalive": 0.2}}
    dep = make_deployment(services, tmp_path=tmp_path)
    async with Unit(Deployment.from_dict(dep)) as unit:
        feed = unit.locate(Feed)
        assert (await feed.Count(pb.Key(id="a"), timeout=20)).count == 1
        await asyncio.sleep(1.5)  # several ping intervals with no call: no GOAWAY for pings
        assert (await feed.Count(pb.Key(id="ab"), timeout=20)).count == 2
