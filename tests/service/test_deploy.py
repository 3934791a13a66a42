"""Deployments are checked before anything starts; start order is the same on every run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from svc_helpers import CATALOG, GEN_ROOT, STOCK, make_deployment, two_services

from reckon.errors import DeploymentError
from reckon.service import Deployment, Unit, plan


def test_gen_writes_a_typed_package_with_relative_imports() -> None:
    pkg = GEN_ROOT / "rtest_gen"
    names = sorted(p.name for p in pkg.iterdir() if p.is_file())
    assert names == [
        "__init__.py",
        "_descriptors.binpb",
        "rtest_pb2.py",
        "rtest_pb2.pyi",
        "rtest_pb2_grpc.py",
        "rtest_pb2_grpc.pyi",
        "rtest_reckon.py",
    ]
    assert "from . import rtest_pb2" in (pkg / "rtest_pb2_grpc.py").read_text()
    from rtest_gen.rtest_reckon import Catalog

    # Read from the descriptor, not from a table.
    assert Catalog.full_name == "rtest.Catalog"
    assert list(Catalog.methods) == ["Get", "Sleep", "Who", "Fail", "Echo"]
    assert Catalog.methods["Get"].path == "/rtest.Catalog/Get"
    assert Catalog.methods["Get"].output.DESCRIPTOR.full_name == "rtest.Item"


def test_generated_binding_type_checks(tmp_path: Path) -> None:
    user = tmp_path / "user_code.py"
    user.write_text(
        "from rtest_gen.rtest_reckon import Catalog\n"
        "from rtest_gen import rtest_pb2\n"
        "from reckon.service import Unit\n"
        "async def f(unit: Unit) -> str:\n"
        "    item = await unit.locate(Catalog).Get(rtest_pb2.Key(id='a'))\n"
        "    reveal_type(item)\n"
        "    return item.title\n"
    )
    out = subprocess.run(
        [sys.executable, "-m", "mypy", "--no-incremental", "--follow-imports=silent", str(user)],
        capture_output=True,
        text=True,
        env={"MYPYPATH": str(GEN_ROOT), "PATH": "/usr/bin:/bin"},
        cwd=tmp_path,
    )
    assert 'Revealed type is "rtest_gen.rtest_pb2.Item"' in out.stdout, out.stdout + out.stderr


def _services(**extra: dict[str, object]) -> dict[str, dict[str, object]]:
    return {"catalog": dict(CATALOG), "stock": dict(STOCK), **extra}


def test_start_order_is_topological_with_ties_by_name() -> None:
    rec = {
        "definition": "rtest_gen.rtest_reckon:Recommender",
        "implementation": "svc_impls:PyRecommender",
    }
    dep = Deployment.from_dict(make_deployment(_services(recs=rec)))
    p = plan(dep)
    assert p.order == ("stock", "catalog", "recs")
    assert p.waves == (("stock",), ("catalog",), ("recs",))
    # Requires come from the class (Stock, Catalog) and from the file; both count.
    assert p.services["recs"].requires == ("catalog",)


def test_cycle_is_reported_naming_the_services() -> None:
    services = _services()
    services["stock"] = {**STOCK, "requires": ["catalog"]}
    with pytest.raises(DeploymentError, match=r"cycle: catalog -> stock -> catalog"):
        plan(Deployment.from_dict(make_deployment(services)))


def test_missing_service_is_reported() -> None:
    with pytest.raises(DeploymentError, match=r"'catalog' requires 'rtest.Stock'"):
        plan(Deployment.from_dict(make_deployment({"catalog": dict(CATALOG)})))


def test_port_and_connect_port_name_one_port() -> None:
    """``connect_port`` is another name of ``port`` (the one address); two values are refused."""
    same = Deployment.from_dict(make_deployment({"a": {**STOCK, "connect_port": 4711}}))
    assert same.services["a"].public_port == 4711
    with pytest.raises(DeploymentError, match=r"port and connect_port name the same port"):
        Deployment.from_dict(make_deployment({"a": {**STOCK, "port": 4711, "connect_port": 4712}}))


def test_unknown_names_are_reported() -> None:
    with pytest.raises(DeploymentError, match=r"requires 'nowhere'"):
        plan(Deployment.from_dict(make_deployment(_services(x={**STOCK, "requires": ["nowhere"]}))))
    with pytest.raises(DeploymentError, match=r"unknown keys \['placment'\]"):
        Deployment.from_dict(make_deployment({"a": {**STOCK, "placment": "process"}}))
    with pytest.raises(DeploymentError, match=r"placement 'elsewhere'"):
        Deployment.from_dict(make_deployment({"a": {**STOCK, "placement": "elsewhere"}}))
    with pytest.raises(DeploymentError, match=r"defines no service 'Nope'"):
        plan(
            Deployment.from_dict(
                make_deployment({"a": {**STOCK, "definition": "rtest_gen.rtest_pb2:Nope"}})
            )
        )
    with pytest.raises(DeploymentError, match=r"has no attribute"):
        plan(
            Deployment.from_dict(
                make_deployment({"a": {**STOCK, "implementation": "svc_impls:Nope"}})
            )
        )
    with pytest.raises(
        DeploymentError, match=r"implements rtest.Stock, but the deployment says rtest.Catalog"
    ):
        plan(
            Deployment.from_dict(
                make_deployment({"a": {**STOCK, "definition": CATALOG["definition"]}})
            )
        )


async def test_nothing_starts_when_the_deployment_is_wrong(tmp_path: Path) -> None:
    services = two_services("process")
    services["stock"]["requires"] = ["catalog"]
    unit = Unit(Deployment.from_dict(make_deployment(services, tmp_path=tmp_path)))
    with pytest.raises(DeploymentError, match="cycle"):
        await unit.start()
    assert unit.started == [] and unit.children == {}


def test_svc_check_prints_waves(tmp_path: Path) -> None:
    import tomllib  # noqa: F401  (the file below is TOML)

    f = tmp_path / "deploy.toml"
    f.write_text(
        "[unit]\n"
        f"path = [{str(GEN_ROOT)!r}, {str(Path(__file__).parent)!r}]\n"
        "[services.catalog]\n"
        f"definition = {CATALOG['definition']!r}\n"
        f"implementation = {CATALOG['implementation']!r}\n"
        "[services.stock]\n"
        f"definition = {STOCK['definition']!r}\n"
        f"implementation = {STOCK['implementation']!r}\n"
        "placement = 'process'\n"
    )
    out = subprocess.run(
        [sys.executable, "-m", "reckon.cli", "svc", "check", str(f)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.splitlines() == ["wave 1: stock (process)", "wave 2: catalog (inprocess)"]
