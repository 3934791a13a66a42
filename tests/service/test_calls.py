"""Calls through every placement and transport: same code, same results, same errors."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from rtest_gen import rtest_pb2 as pb
from rtest_gen.rtest_reckon import Catalog, Recommender, Stock
from svc_helpers import make_deployment, two_services

from reckon.errors import (
    CallCancelledError,
    DeadlineExceededError,
    PermissionDeniedError,
    ServiceCallError,
    ServiceNotFoundError,
    ServiceUnavailableError,
    UnauthenticatedError,
)
from reckon.service import Deployment, Unit
from reckon.service.auth import hash_password


async def shop_session(unit: Unit, transport: str | None = None) -> list[str]:
    """Calling code that must not change between placements."""
    catalog = unit.locate(Catalog, transport=transport)
    out = []
    item = await catalog.Get(pb.Key(id="a"))
    out.append(f"{item.id} {item.title} {item.count} {list(item.tags)}")
    item = await catalog.Get(pb.Key(id="c"))  # stock says NOT_FOUND, catalog copes
    out.append(f"{item.id} {item.count}")
    try:
        await catalog.Get(pb.Key(id="zz"))
    except ServiceCallError as exc:
        out.append(exc.code)
    try:
        await catalog.Fail(pb.Failure(code="FAILED_PRECONDITION", message="nope"))
    except ServiceCallError as exc:
        out.append(exc.code)
    try:
        await catalog.Fail(pb.Failure(code="crash", message="boom"))
    except ServiceCallError as exc:
        out.append(f"{exc.code} {'RuntimeError: boom' in str(exc)}")
    with pytest.raises(DeadlineExceededError):
        await catalog.Sleep(pb.SleepRequest(seconds=5), timeout=0.2)
    out.append("deadline")
    return out


EXPECTED = [
    "a Abbey Road 3 ['vinyl']",
    "c 0",
    "NOT_FOUND",
    "FAILED_PRECONDITION",
    "UNKNOWN True",
    "deadline",
]


@pytest.mark.parametrize("placement", ["inprocess", "process"])
async def test_same_calling_code_in_process_and_split(placement: str, tmp_path: Path) -> None:
    dep = Deployment.from_dict(make_deployment(two_services(placement), tmp_path=tmp_path))
    async with Unit(dep) as unit:
        assert await shop_session(unit) == EXPECTED
        who = await unit.locate(Catalog).Who(pb.Empty())
        assert (who.pid == os.getpid()) == (placement == "inprocess")
        # In one process nothing listens: no server, no port, no serialization on the way.
        assert (unit.addresses == {}) == (placement == "inprocess")


async def test_remote_placement_reaches_a_running_unit(tmp_path: Path) -> None:
    served = make_deployment(two_services("inprocess", expose=True), tmp_path=tmp_path)
    async with Unit(Deployment.from_dict(served)) as server:
        address = server.addresses["catalog"].grpc
        client_dep = make_deployment(
            {
                "catalog": {
                    "definition": "rtest_gen.rtest_reckon:Catalog",
                    "placement": "remote",
                    "address": address,
                }
            }
        )
        async with Unit(Deployment.from_dict(client_dep)) as client:
            assert (await shop_session(client))[:4] == EXPECTED[:4]


async def test_a_remote_service_that_does_not_answer_stops_the_start(tmp_path: Path) -> None:
    import socket

    from reckon.errors import DeploymentError

    services = two_services("inprocess")
    # A port held by a socket that never listens: connections to it are refused for as long as
    # the test runs, whatever else runs on the machine.
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        services["stock"] = {
            "definition": "rtest_gen.rtest_reckon:Stock",
            "placement": "remote",
            "address": f"127.0.0.1:{held.getsockname()[1]}",
            "start_timeout": 0.5,
        }
        unit = Unit(Deployment.from_dict(make_deployment(services, tmp_path=tmp_path)))
        with pytest.raises(DeploymentError, match=r"'stock' at 127\.0\.0\.1:\d+ did not answer"):
            await unit.start()
    assert unit.started == []  # catalog (which requires stock) never started


async def test_grpc_and_connect_transports_of_one_unit(tmp_path: Path) -> None:
    dep = Deployment.from_dict(
        make_deployment(two_services("inprocess", connect=True), tmp_path=tmp_path)
    )
    async with Unit(dep) as unit:
        assert await shop_session(unit, "grpc") == EXPECTED
        assert await shop_session(unit, "connect") == EXPECTED


def _curl(url: str, body: dict[str, object], headers: dict[str, str]) -> tuple[int, dict]:
    args = ["curl", "-s", "-o", "-", "-w", "\n%{http_code}", "-X", "POST", url]
    args += ["-H", "Content-Type: application/json", "-d", json.dumps(body)]
    for k, v in headers.items():
        args += ["-H", f"{k}: {v}"]
    out = subprocess.run(args, capture_output=True, text=True, check=True, timeout=30).stdout
    text, _, code = out.rpartition("\n")
    return int(code), json.loads(text) if text else {}


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
async def test_connect_answers_plain_curl_with_json(tmp_path: Path) -> None:
    services = two_services("process", connect=True, auth="basic")
    dep = make_deployment(services, tmp_path=tmp_path)
    dep["auth"] = {"users": {"alice": hash_password("wonderland")}}
    async with Unit(Deployment.from_dict(dep)) as unit:
        base = unit.addresses["catalog"].connect
        assert base is not None
        good = {"Authorization": "Basic " + base64.b64encode(b"alice:wonderland").decode()}
        code, body = await asyncio.to_thread(_curl, f"{base}/rtest.Catalog/Get", {"id": "a"}, good)
        assert (code, body) == (
            200,
            {"id": "a", "title": "Abbey Road", "count": 3, "tags": ["vinyl"]},
        )
        code, body = await asyncio.to_thread(_curl, f"{base}/rtest.Catalog/Who", {}, good)
        assert body["user"] == "alice"
        code, body = await asyncio.to_thread(_curl, f"{base}/rtest.Catalog/Get", {"id": "a"}, {})
        assert code == 401 and body["code"] == "unauthenticated"
        code, body = await asyncio.to_thread(_curl, f"{base}/rtest.Catalog/Get", {"id": "q"}, good)
        assert code == 404 and body["code"] == "not_found"


@pytest.mark.parametrize("placement", ["inprocess", "process"])
async def test_basic_auth_and_user_in_context(placement: str, tmp_path: Path) -> None:
    services = two_services(placement, auth="basic")
    dep = make_deployment(services, tmp_path=tmp_path)
    dep["auth"] = {"users": {"alice": hash_password("wonderland"), "bob": hash_password("builder")}}
    async with Unit(Deployment.from_dict(dep)) as unit:
        with pytest.raises(UnauthenticatedError):
            await unit.locate(Catalog).Who(pb.Empty())
        with pytest.raises(UnauthenticatedError):
            await unit.locate(Catalog, credentials=("alice", "wrong")).Who(pb.Empty())
        who = await unit.locate(Catalog, credentials=("alice", "wonderland")).Who(pb.Empty())
        assert who.user == "alice"
        who = await unit.locate(Catalog, credentials=("bob", "builder")).Who(pb.Empty())
        assert who.user == "bob"
        # Stock does not require auth: anonymous calls work there.
        assert (await unit.locate(Stock).Who(pb.Empty())).user == ""


async def test_user_follows_nested_calls(tmp_path: Path) -> None:
    """Catalog calls Stock on behalf of the caller: Stock sees the same user, over the wire too."""
    from svc_impls import CatalogService

    seen: list[str] = []
    original = CatalogService.Get

    async def spy(self: CatalogService, request: pb.Key, ctx: object) -> pb.Item:
        who = await self.ctx.locate(Stock).Who(pb.Empty())
        seen.append(who.user)
        return await original(self, request, ctx)  # type: ignore[arg-type]

    CatalogService.Get = spy  # type: ignore[method-assign]
    try:
        services = two_services("inprocess")
        services["stock"]["placement"] = "process"
        dep = make_deployment(services, tmp_path=tmp_path)
        dep["auth"] = {"users": {"carol": hash_password("pw")}}
        async with Unit(Deployment.from_dict(dep)) as unit:
            await unit.locate(Catalog, credentials=("carol", "pw")).Get(pb.Key(id="a"))
    finally:
        CatalogService.Get = original  # type: ignore[method-assign]
    assert seen == ["carol"]


async def test_strict_mode_catches_shared_mutation(tmp_path: Path) -> None:
    services = two_services("inprocess", implementation="svc_impls:MutatingCatalog")
    request = pb.Key(id="a")
    dep = Deployment.from_dict(make_deployment(services, tmp_path=tmp_path))
    async with Unit(dep) as unit:
        await unit.locate(Catalog).Get(request)
    assert request.id == "mutated"  # in-process, no copies: the bug shows in production only
    request = pb.Key(id="a")
    async with Unit(dep, strict=True) as unit:
        await unit.locate(Catalog).Get(request)
    assert request.id == "a"  # strict mode copies through the wire form, like gRPC would


async def test_strict_mode_copies_responses_too(tmp_path: Path) -> None:
    """A caller that edits a response it got in-process edits the callee's object (a cached
    response, here); strict mode hands it a copy, as the wire would."""
    from svc_impls import SHARED_ITEM

    services = two_services("inprocess", implementation="svc_impls:SharedItemCatalog")
    dep = Deployment.from_dict(make_deployment(services, tmp_path=tmp_path))
    for strict, second in ((False, "scribbled"), (True, "Abbey Road")):
        SHARED_ITEM.title = "Abbey Road"
        async with Unit(dep, strict=strict) as unit:
            first = await unit.locate(Catalog).Get(pb.Key(id="a"))
            first.title = "scribbled"
            assert (await unit.locate(Catalog).Get(pb.Key(id="a"))).title == second
    SHARED_ITEM.title = "Abbey Road"


async def test_locate_refuses_services_not_required(tmp_path: Path) -> None:
    dep = Deployment.from_dict(make_deployment(two_services("inprocess"), tmp_path=tmp_path))
    async with Unit(dep) as unit:
        stock = unit.instance("stock")
        with pytest.raises(ServiceNotFoundError, match="does not require 'catalog'"):
            stock.ctx.locate(Catalog)
        with pytest.raises(ServiceCallError, match=r"takes rtest\.Key"):
            await unit.locate(Catalog).Get(pb.Empty())


async def test_call_limit_cancels_an_in_process_call(tmp_path: Path) -> None:
    dep = make_deployment(two_services("inprocess", call_limit=1.0), tmp_path=tmp_path)
    async with Unit(Deployment.from_dict(dep)) as unit:
        with pytest.raises(ServiceCallError) as info:
            await asyncio.wait_for(
                unit.locate(Catalog).Sleep(pb.SleepRequest(seconds=30)), timeout=20
            )
        assert info.value.code == "CANCELLED" and "call limit" in str(info.value)
        # The unit keeps serving.
        assert (await unit.locate(Catalog).Get(pb.Key(id="a"))).count == 3


CONNECT_ERRORS = [
    # (method, JSON body, extra headers, HTTP status, Connect error code, reckon error code)
    ("Sleep", {"seconds": 30}, {"Connect-Timeout-Ms": "300"}, 504, "deadline_exceeded", None),
    ("Fail", {"code": "FAILED_PRECONDITION", "message": "nope"}, {}, 400, "failed_precondition",
     "FAILED_PRECONDITION"),
    ("Fail", {"code": "PERMISSION_DENIED", "message": "no"}, {}, 403, "permission_denied",
     "PERMISSION_DENIED"),
    ("Fail", {"code": "crash", "message": "boom"}, {}, 500, "unknown", "UNKNOWN"),
    ("Get", {"id": 5}, {}, 400, "invalid_argument", None),
    ("Get", {"id": "a"}, {"Authorization": "Basic !!!"}, 401, "unauthenticated", None),
]  # fmt: skip


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
async def test_connect_errors_reach_curl_as_connect_error_json(tmp_path: Path) -> None:
    """Every failure a plain HTTP client can cause comes back as Connect's error JSON
    (``{"code": ..., "message": ...}``) with the HTTP status the Connect protocol assigns; a
    deadline given as ``Connect-Timeout-Ms`` cancels the handler."""
    from svc_impls import CatalogService

    CatalogService.cancelled.clear()
    dep = make_deployment(two_services("inprocess", connect=True), tmp_path=tmp_path)
    dep["auth"] = {"users": {"alice": hash_password("wonderland")}}
    async with Unit(Deployment.from_dict(dep)) as unit:
        base = unit.addresses["catalog"].connect
        for method, body, headers, status, code, reckon_code in CONNECT_ERRORS:
            got = await asyncio.to_thread(_curl, f"{base}/rtest.Catalog/{method}", body, headers)
            assert got[0] == status and got[1]["code"] == code, (method, body, got)
            assert isinstance(got[1]["message"], str) and got[1]["message"]
            if reckon_code is not None:  # the same failure through reckon's Connect client
                with pytest.raises(ServiceCallError) as info:
                    await unit.locate(Catalog, transport="connect").Fail(pb.Failure(**body))
                assert info.value.code == reckon_code
        # The Sleep handler behind the 504 was cancelled by the deadline, not left running.
        for _ in range(200):
            if CatalogService.cancelled:
                break
            await asyncio.sleep(0.05)
        assert CatalogService.cancelled == ["30.0"]
        # Unknown routes are plain 404s (the Connect protocol's answer for a missing procedure).
        assert (await asyncio.to_thread(_curl, f"{base}/rtest.Catalog/Nope", {}, {}))[0] == 404


@pytest.mark.parametrize("transport", ["grpc", "connect"])
async def test_a_deadline_follows_the_call_across_two_wires(transport: str, tmp_path: Path) -> None:
    """test -> recommender (child process, over ``transport``) -> catalog (back in this process,
    over gRPC): the caller's deadline reaches catalog's handler, which is cancelled by it."""
    from svc_impls import CatalogService, DeadlineCatalog

    DeadlineCatalog.remaining.clear()
    CatalogService.cancelled.clear()
    services = two_services("inprocess", implementation="svc_impls:DeadlineCatalog")
    services["recs"] = {
        "definition": "rtest_gen.rtest_reckon:Recommender",
        "implementation": "svc_impls:SleepyRecommender",
        "placement": "process",
        "requires": ["catalog"],
        "connect": True,
    }
    dep = Deployment.from_dict(make_deployment(services, tmp_path=tmp_path))
    async with Unit(dep) as unit:
        recs = unit.locate(Recommender, transport=transport)
        with pytest.raises(DeadlineExceededError):
            await recs.Recommend(pb.Key(id="a"), timeout=4.0)
        for _ in range(200):
            if CatalogService.cancelled:
                break
            await asyncio.sleep(0.05)
    [left] = DeadlineCatalog.remaining
    assert left is not None and 0 < left < 4.5  # without propagation it would be None
    assert CatalogService.cancelled == ["30.0"]  # and the nested handler did not sleep on


ERROR_CASES = [
    # (what the handler raises, via Failure.code; the class and code every caller sees)
    ("UNAVAILABLE", ServiceUnavailableError, "UNAVAILABLE"),
    ("PERMISSION_DENIED", PermissionDeniedError, "PERMISSION_DENIED"),
    ("DEADLINE_EXCEEDED", DeadlineExceededError, "DEADLINE_EXCEEDED"),
    ("UNAUTHENTICATED", UnauthenticatedError, "UNAUTHENTICATED"),
    ("NOT_FOUND", ServiceCallError, "NOT_FOUND"),
    ("OK", ServiceCallError, "UNKNOWN"),  # not a failure code: must not leave the call open
    ("no-such-code", ServiceCallError, "UNKNOWN"),
    ("cancel", CallCancelledError, "CANCELLED"),  # the handler raised CancelledError itself
    ("crash", ServiceCallError, "UNKNOWN"),
]


@pytest.mark.parametrize("placement", ["inprocess", "process"])
async def test_one_error_model_in_process_and_over_grpc_and_connect(
    placement: str, tmp_path: Path
) -> None:
    """The same failure reaches every caller as the same exception class with the same code,
    at once: no handler failure (CancelledError and code "OK" included) leaves a call open."""
    dep = make_deployment(two_services(placement, connect=True), tmp_path=tmp_path)
    async with Unit(Deployment.from_dict(dep)) as unit:
        transports = [None, "grpc", "connect"] if placement == "inprocess" else ["grpc", "connect"]
        for transport in transports:
            catalog = unit.locate(Catalog, transport=transport)
            for code, cls, seen in ERROR_CASES:
                with pytest.raises(ServiceCallError) as info:
                    await asyncio.wait_for(catalog.Fail(pb.Failure(code=code, message="m")), 10)
                got = (type(info.value), info.value.code)
                assert got == (cls, seen), (transport, code, got)
            # ... and the service keeps serving.
            assert (await catalog.Get(pb.Key(id="a"), timeout=10)).count == 3


async def test_mocks_raise_the_class_of_their_code(tmp_path: Path) -> None:
    from reckon.testing import mock

    stock = mock(Stock)
    stock.Count.raises("UNAVAILABLE", "down")
    dep = make_deployment({"stock": two_services("inprocess")["stock"]}, tmp_path=tmp_path)
    async with Unit(Deployment.from_dict(dep), implementations={"stock": stock}) as unit:
        with pytest.raises(ServiceUnavailableError, match="down"):
            await unit.locate(Stock).Count(pb.Key(id="a"))
    with pytest.raises(ValueError, match="not a gRPC failure code"):
        stock.Count.raises("OK")


def _post(url: str, body: bytes, content_type: str) -> tuple[int, bytes]:
    import urllib.error
    import urllib.request

    req = urllib.request.Request(url, body, {"Content-Type": content_type}, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


async def test_malformed_requests_are_invalid_argument_on_every_transport(tmp_path: Path) -> None:
    import grpc.aio

    garbage = b"\xff\xff\xff\xff"  # a truncated varint: not any protobuf message
    dep = make_deployment(two_services("inprocess", connect=True, expose=True), tmp_path=tmp_path)
    async with Unit(Deployment.from_dict(dep)) as unit:
        addr = unit.addresses["catalog"]
        async with grpc.aio.insecure_channel(addr.grpc or "") as channel:
            call = channel.unary_unary("/rtest.Catalog/Get")
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await call(garbage, timeout=10)
            assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert "rtest.Key" in (info.value.details() or "")
        url = f"{addr.connect}/rtest.Catalog/Get"
        status, body = await asyncio.to_thread(_post, url, garbage, "application/proto")
        assert (status, json.loads(body)["code"]) == (400, "invalid_argument")
        status, body = await asyncio.to_thread(_post, url, b"{not json", "application/json")
        assert (status, json.loads(body)["code"]) == (400, "invalid_argument")


@pytest.mark.parametrize("placement", ["inprocess", "process"])
async def test_request_metadata_text_and_binary_reaches_handlers(
    placement: str, tmp_path: Path
) -> None:
    sent = {"x-text": "hello", "x-blob-bin": b"\x00\xffbin"}
    want = {"x-text": b"text:hello", "x-blob-bin": b"\x00\xffbin"}
    dep = make_deployment(two_services(placement, connect=True), tmp_path=tmp_path)
    async with Unit(Deployment.from_dict(dep)) as unit:
        transports = [None, "grpc", "connect"] if placement == "inprocess" else ["grpc", "connect"]
        for transport in transports:
            catalog = unit.locate(Catalog, transport=transport)
            got = await catalog.Echo(pb.Empty(), metadata=sent, timeout=10)
            assert dict(got.entries) == want, transport
            got = await catalog.Echo(pb.Empty(), metadata=list(sent.items()), timeout=10)
            assert dict(got.entries) == want, transport


@pytest.mark.parametrize("placement", ["inprocess", "process"])
async def test_the_published_address_serves_grpc_and_connect_without_asking(
    placement: str, tmp_path: Path
) -> None:
    """A service served over the wire has one address for users (`unit.addresses[..].connect`,
    what `svc run` prints), with no `connect` key needed: grpcio stubs and Connect (JSON and
    binary) reach the same handler there."""
    import grpc.aio
    from rtest_gen import rtest_pb2_grpc

    dep = make_deployment(two_services(placement, expose=True), tmp_path=tmp_path)
    async with Unit(Deployment.from_dict(dep)) as unit:
        url = unit.addresses["catalog"].connect
        assert url is not None and url.startswith("http://127.0.0.1:")
        async with grpc.aio.insecure_channel(url.removeprefix("http://")) as channel:
            item = await rtest_pb2_grpc.CatalogStub(channel).Get(pb.Key(id="a"), timeout=20)
        status, body = await asyncio.to_thread(
            _post, f"{url}/rtest.Catalog/Get", b'{"id": "a"}', "application/json"
        )
        assert status == 200 and json.loads(body)["title"] == item.title
        status, body = await asyncio.to_thread(
            _post,
            f"{url}/rtest.Catalog/Get",
            pb.Key(id="a").SerializeToString(),
            "application/proto",
        )
        assert status == 200 and pb.Item.FromString(body) == item
