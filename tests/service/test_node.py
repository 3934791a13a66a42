"""A Node.js (@grpc/grpc-js) service in a deployment: started by the runtime, called by Python,
calling a Python service back."""

from __future__ import annotations

from pathlib import Path

import pytest
from rtest_gen import rtest_pb2 as pb
from rtest_gen.rtest_reckon import Front, Recommender
from svc_helpers import CATALOG, HERE, STOCK, make_deployment

from reckon.service import Deployment, Unit


def node_unit(catalog_placement: str, node_modules: Path, tmp_path: Path) -> dict[str, object]:
    services = {
        "stock": {**STOCK, "placement": catalog_placement},
        "catalog": {**CATALOG, "placement": catalog_placement},
        "recommender": {
            "definition": "rtest_gen.rtest_reckon:Recommender",
            "placement": "process",
            "command": ["node", str(HERE / "node" / "recommender.js")],
            "requires": ["catalog"],
            "env": {"NODE_PATH": str(node_modules)},
        },
        "front": {
            "definition": "rtest_gen.rtest_reckon:Front",
            "implementation": "svc_impls:FrontService",
        },
    }
    return make_deployment(services, tmp_path=tmp_path)


@pytest.mark.parametrize("placement", ["inprocess", "process"])
async def test_python_calls_node_which_calls_python_back(
    placement: str, node_modules: Path, tmp_path: Path
) -> None:
    dep = Deployment.from_dict(node_unit(placement, node_modules, tmp_path))
    async with Unit(dep) as unit:
        assert unit.plan is not None
        assert unit.plan.order == ("stock", "catalog", "recommender", "front")
        node = unit.children["recommender"]
        assert node.state == "running"
        item = await unit.locate(Recommender).Recommend(pb.Key(id="a"), timeout=20)
        assert (item.id, item.title, list(item.tags)) == (
            "b",
            "node recommends Blue Train",
            ["node"],
        )
        # A Python service calling the Node service, which calls Catalog (Python) back.
        item = await unit.locate(Front).Suggest(pb.Key(id="b"), timeout=20)
        assert (item.title, item.count) == ("front: node recommends Abbey Road", 3)
        pid = node.proc.pid  # type: ignore[union-attr]
    assert node.proc is not None and node.proc.returncode is not None  # stopped with the unit
    assert pid > 0
