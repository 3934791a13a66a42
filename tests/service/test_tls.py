"""TLS from certificate files: both ports of a service speak TLS only, and every client (reckon's
over gRPC and Connect, health probes, buf curl) checks the certificate against the deployment's
authority. The certificates are made by the openssl command for each test."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from pathlib import Path

import grpc
import grpc.aio
import pytest
from rtest_gen import rtest_pb2 as pb
from rtest_gen import rtest_pb2_grpc as pbg
from rtest_gen.rtest_reckon import Feed
from svc_helpers import make_deployment

from reckon.errors import DeploymentError
from reckon.service import Deployment, Unit

FEED = {"definition": "rtest_gen.rtest_reckon:Feed", "implementation": "svc_impls:FeedService"}

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl")


def make_certs(folder: Path) -> dict[str, str]:
    """A certificate authority and a server certificate for 127.0.0.1 signed by it."""

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=folder, check=True, capture_output=True)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=test CA",
        "-keyout", "ca.key", "-out", "ca.pem")  # fmt: skip
    run("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
        "-keyout", "server.key", "-out", "server.csr")  # fmt: skip
    (folder / "san.cnf").write_text("subjectAltName = IP:127.0.0.1\n")
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-days", "2", "-extfile", "san.cnf", "-out", "server.pem")  # fmt: skip
    return {"cert": "server.pem", "key": "server.key", "ca": "ca.pem"}


@pytest.mark.parametrize("placement", ["inprocess", "process"])
async def test_both_ports_speak_tls_and_clients_check_the_certificate(
    placement: str, buf: Path, tmp_path: Path
) -> None:
    tls = make_certs(tmp_path)
    services = {"feed": {**FEED, "placement": placement, "expose": True, "connect": True}}
    dep = make_deployment(services, tmp_path=tmp_path, tls=tls)
    async with Unit(Deployment.from_dict(dep, root=tmp_path)) as unit:
        addr = unit.addresses["feed"]
        assert (addr.connect or "").startswith("https://")
        for transport in ("grpc", "connect"):
            feed = unit.locate(Feed, transport=transport)
            assert (await feed.Count(pb.Key(id="abc"), timeout=20)).count == 3
            assert [t.count async for t in feed.Ticks(pb.TickRequest(count=2))] == [0, 1]
        # A plain-text client gets nowhere; one that trusts the authority gets in.
        async with grpc.aio.insecure_channel(addr.grpc or "") as plain:
            with pytest.raises(grpc.aio.AioRpcError):
                await pbg.FeedStub(plain).Count(pb.Key(id="a"), timeout=5)
        creds = grpc.ssl_channel_credentials((tmp_path / "ca.pem").read_bytes())
        async with grpc.aio.secure_channel(addr.grpc or "", creds) as secure:
            assert (await pbg.FeedStub(secure).Count(pb.Key(id="ab"), timeout=10)).count == 2
        # buf curl over TLS with reflection, on the one port (HTTP/2 by ALPN).
        for protocol in ("connect", "grpc", "grpcweb"):
            done = await asyncio.to_thread(
                subprocess.run,
                [
                    str(buf),
                    "curl",
                    "--cacert",
                    str(tmp_path / "ca.pem"),
                    "--protocol",
                    protocol,
                    "-d",
                    '{"id": "abcd"}',
                    f"{addr.connect}/rtest.Feed/Count",
                ],
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert done.returncode == 0, (protocol, done.stderr)
            assert json.loads(done.stdout) == {"id": "abcd", "count": 4}


def test_missing_certificate_files_are_refused_before_anything_starts(tmp_path: Path) -> None:
    from reckon.service import plan

    services = {"feed": {**FEED, "tls": {"cert": "nope.pem", "key": "nope.key"}}}
    with pytest.raises(DeploymentError, match=r"tls cert = .*nope\.pem.*: no such file"):
        plan(Deployment.from_dict(make_deployment(services), root=tmp_path))
