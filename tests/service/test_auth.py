"""Pluggable authentication (Basic built in, bearer tokens by a hook), scrypt password hashes,
and secrets handed to children by a private file rather than the environment."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from rtest_gen import rtest_pb2 as pb
from rtest_gen.rtest_reckon import Catalog, Stock
from svc_helpers import make_deployment, two_services

from reckon.errors import ClearTextPasswordError, DeploymentError, UnauthenticatedError
from reckon.service import Deployment, Unit
from reckon.service.auth import Authenticator, basic_header, hash_password

TRANSPORTS = [None, "grpc", "connect"]


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_bearer_tokens_through_a_hook_and_anonymous_calls_where_none_is_asked(
    transport: str | None, tmp_path: Path
) -> None:
    dep = make_deployment(two_services("inprocess", auth="any", connect=True), tmp_path=tmp_path)
    dep["services"]["stock"].update(connect=True, expose=True)
    dep["auth"] = {
        "users": {"alice": hash_password("wonderland")},
        "bearer": "svc_impls:check_token",
    }
    async with Unit(Deployment.from_dict(dep)) as unit:

        def catalog(credentials: object) -> object:
            return unit.locate(Catalog, credentials=credentials, transport=transport)  # type: ignore[arg-type]

        assert (await catalog("Bearer t0k3n").Who(pb.Empty())).user == "robot"
        assert (await catalog(("alice", "wonderland")).Who(pb.Empty())).user == "alice"
        for bad in ("Bearer nope", None, "Negotiate abc", ("alice", "wrong")):
            with pytest.raises(UnauthenticatedError):
                await catalog(bad).Who(pb.Empty())  # type: ignore[attr-defined]
        # Stock asks for no authentication: a header of a scheme nobody checks is no reason
        # to refuse the call (a proxy may add one); the caller stays anonymous.
        stock = unit.locate(Stock, credentials="Negotiate abc", transport=transport)
        assert (await stock.Who(pb.Empty())).user == ""


def test_passwords_are_salted_scrypt_hashes() -> None:
    a, b = hash_password("pw"), hash_password("pw")
    assert a != b and a.startswith("scrypt$")  # salted: the same password, different hashes
    auth = Authenticator({"alice": a})
    assert auth.check(basic_header("alice", "pw")) is not None
    with pytest.raises(UnauthenticatedError):
        auth.check(basic_header("alice", "pW"))
    services = two_services("inprocess")
    # Nothing but a salted hash is taken: the error says how to make one.
    for stored, why in (
        ("sha256:" + "0" * 64, "unsalted sha256 digest"),
        ("wonderland", "clear-text password"),
        ("", "clear-text password"),
    ):
        with pytest.raises(ClearTextPasswordError, match=why) as info:
            Deployment.from_dict({**make_deployment(services), "auth": {"users": {"bob": stored}}})
        assert "reckon svc hash-password" in str(info.value)
        assert isinstance(info.value, DeploymentError)  # what `svc run` reports and exits 2 on
        with pytest.raises(ClearTextPasswordError):
            Authenticator({"bob": stored})
    with pytest.raises(DeploymentError, match="malformed scrypt hash"):
        Deployment.from_dict(
            {**make_deployment(services), "auth": {"users": {"bob": "scrypt$1$2$3$!!$??"}}}
        )
    services["catalog"]["auth"] = "bearer"
    with pytest.raises(DeploymentError, match=r"needs a token check: set \[auth\] bearer"):
        Deployment.from_dict(make_deployment(services))


async def test_children_get_secrets_by_a_private_file_not_the_environment(
    tmp_path: Path,
) -> None:
    secret = hash_password("a secret nobody should see")
    dep = make_deployment(two_services("process", auth="basic"), tmp_path=tmp_path)
    dep["auth"] = {"users": {"alice": secret}}
    async with Unit(Deployment.from_dict(dep)) as unit:
        child = unit.children["catalog"]
        assert child.proc is not None and child.tmp_dir is not None
        environ = Path(f"/proc/{child.proc.pid}/environ").read_bytes()  # noqa: ASYNC240 (procfs)
        assert secret.split("$")[-1].encode() not in environ
        handed = child.tmp_dir / "deployment.json"
        assert secret in handed.read_text()
        assert stat.S_IMODE(handed.stat().st_mode) == 0o600
        assert stat.S_IMODE(child.tmp_dir.stat().st_mode) == 0o700
        assert os.stat(handed).st_uid == os.getuid()
        who = await unit.locate(Catalog, credentials=("alice", "a secret nobody should see")).Who(
            pb.Empty(), timeout=20
        )
        assert who.user == "alice"


def test_svc_check_refuses_a_clear_text_password_saying_how_to_hash_it(tmp_path: Path) -> None:
    import subprocess
    import sys

    dep = make_deployment(two_services("inprocess"))
    deploy = tmp_path / "deploy.toml"
    lines = ["[unit]", f"name = {dep['unit']['name']!r}", f"path = {dep['unit']['path']!r}"]
    lines += ["[auth]", "users = { alice = 'wonderland' }"]
    for name, table in dep["services"].items():
        lines += [f"[services.{name}]", *(f"{k} = {v!r}" for k, v in table.items())]
    deploy.write_text("\n".join(lines) + "\n")
    out = subprocess.run(
        [sys.executable, "-m", "reckon.cli", "svc", "check", str(deploy)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2, out
    assert "'alice' has a clear-text password" in out.stderr
    assert "reckon svc hash-password" in out.stderr
