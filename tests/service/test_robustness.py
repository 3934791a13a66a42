"""Cancellation over the wire, bad peers, and fuzzed inputs: errors are specific, servers live."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rtest_gen import rtest_pb2 as pb
from rtest_gen.rtest_reckon import Catalog
from svc_helpers import make_deployment, two_services

from reckon.errors import DeploymentError, UnauthenticatedError
from reckon.service import Deployment, Unit
from reckon.service.auth import Authenticator, basic_header, hash_password

PW_HASH = hash_password("pw")  # once: scrypt is slow on purpose


@pytest.mark.parametrize("transport", ["grpc", "connect"])
async def test_cancelling_a_remote_call_cancels_the_handler(transport: str, tmp_path: Path) -> None:
    from svc_impls import CatalogService

    CatalogService.cancelled.clear()
    dep = make_deployment(two_services("inprocess", expose=True, connect=True), tmp_path=tmp_path)
    async with Unit(Deployment.from_dict(dep)) as unit:
        client = unit.locate(Catalog, transport=transport)
        task = asyncio.ensure_future(client.Sleep(pb.SleepRequest(seconds=30)))
        await asyncio.sleep(0.5)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        for _ in range(200):
            if CatalogService.cancelled:
                break
            await asyncio.sleep(0.05)
        assert CatalogService.cancelled == ["30.0"]


def _junk(address: str, payloads: list[bytes]) -> None:
    host, _, port = address.replace("http://", "").rpartition(":")
    for data in payloads:
        with socket.create_connection((host, int(port)), timeout=5) as s:
            s.sendall(data)
            s.settimeout(2)
            with contextlib.suppress(TimeoutError, ConnectionError):
                s.recv(1024)


async def test_servers_survive_bad_peers(tmp_path: Path) -> None:
    dep = make_deployment(two_services("process", connect=True), tmp_path=tmp_path)
    payloads = [
        b"\x00" * 100,
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\xff" * 64,
        b"POST /rtest.Catalog/Get HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
        b"Content-Type: application/json\r\n\r\n{bad}",
        b"GET / HTTP/1.1\r\n\r\n",
        bytes(range(256)),
    ]
    async with Unit(Deployment.from_dict(dep)) as unit:
        addr = unit.addresses["catalog"]
        assert addr.grpc is not None and addr.connect is not None
        await asyncio.to_thread(_junk, addr.grpc, payloads)
        await asyncio.to_thread(_junk, addr.connect, payloads)
        assert (await unit.locate(Catalog).Get(pb.Key(id="a"), timeout=20)).count == 3
        connect = unit.locate(Catalog, transport="connect")
        assert (await connect.Get(pb.Key(id="a"), timeout=20)).count == 3
        assert unit.children["catalog"].restarts == 0


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(), st.binary().map(lambda b: "Basic " + b.hex()), st.none()))
def test_authorization_headers_fail_only_as_unauthenticated(header: str | None) -> None:
    auth = Authenticator({"alice": PW_HASH})
    try:
        user = auth.check(header)
    except UnauthenticatedError:
        return
    assert header is None and user is None


@settings(max_examples=200, deadline=None)
@given(st.text(), st.sampled_from(["basic", "bearer", "any", None]))
def test_any_header_on_any_service_is_a_user_anonymous_or_unauthenticated(
    header: str, accept: str | None
) -> None:
    """Whatever the header, a check ends as a user, as anonymous (only where no auth is
    asked), or as UnauthenticatedError; never another exception."""
    auth = Authenticator({"alice": PW_HASH}, bearer=lambda token: "robot" if token == "t" else None)
    try:
        user = auth.check(header, accept)
    except UnauthenticatedError:
        return
    assert user is not None or accept is None


_md_keys = st.from_regex(r"[a-z][a-z0-9-]{0,12}", fullmatch=True).filter(
    lambda k: not k.startswith(("grpc-", "connect-")) and k not in ("te", "host", "upgrade")
)


@given(st.dictionaries(_md_keys, st.one_of(st.binary(), st.text(st.characters(
    min_codepoint=0x20, max_codepoint=0x7E), max_size=20))))  # fmt: skip
def test_metadata_round_trips_through_http_headers(raw: dict[str, Any]) -> None:
    """What a Connect client sends as headers is what a handler sees: text as text, ``-bin``
    keys as the same bytes (base64 on the wire)."""
    from reckon.service.metadata import from_headers, from_pairs, to_headers

    md = {(k + "-bin" if isinstance(v, bytes) else k): v for k, v in raw.items()}
    md = {k: v for k, v in md.items() if isinstance(v, bytes) or not k.endswith("-bin")}
    sent = from_pairs(md)
    assert from_headers(to_headers(sent)) == sent


@settings(max_examples=25, deadline=None)  # scrypt costs ~50 ms per example
@given(st.text(min_size=1), st.text())
def test_good_credentials_round_trip(user: str, password: str) -> None:
    if ":" in user:
        return
    auth = Authenticator({user: hash_password(password)})
    found = auth.check(basic_header(user, password))
    assert found is not None and found.name == user


_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=8)),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=10,
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(["unit", "services", "auth", "x"]), _values, max_size=3))
def test_bad_deployment_dicts_raise_deployment_error(data: dict[str, Any]) -> None:
    with contextlib.suppress(DeploymentError):
        Deployment.from_dict(data)


def test_svc_run_reports_a_bad_deployment_and_exits_2(tmp_path: Path) -> None:
    f = tmp_path / "deploy.toml"
    f.write_text("[services.a]\ndefinition = 'nowhere.mod:X'\nimplementation = 'x:Y'\n")
    out = subprocess.run(
        [sys.executable, "-m", "reckon.cli", "svc", "run", str(f)], capture_output=True, text=True
    )
    assert out.returncode == 2
    assert "cannot import 'nowhere.mod'" in out.stderr


_service_keys = st.sampled_from(
    [
        "definition",
        "implementation",
        "command",
        "placement",
        "address",
        "requires",
        "restart",
        "max_restarts",
        "call_limit",
        "time_limit",
        "connect",
        "port",
        "auth",
        "env",
        "config",
    ]
)


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(
        st.text(min_size=1, max_size=5),
        st.dictionaries(_service_keys, _values, max_size=6),
        max_size=3,
    ),
    st.dictionaries(
        st.sampled_from(["name", "path", "data_dir", "log", "pulse", "seed"]), _values, max_size=4
    ),
)
def test_bad_service_tables_raise_deployment_error(
    services: dict[str, Any], unit: dict[str, Any]
) -> None:
    with contextlib.suppress(DeploymentError):
        Deployment.from_dict({"unit": unit, "services": services})
