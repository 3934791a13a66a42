"""Act 5, services: Vinny's Vintage Vinyl (examples/vinyl) as its deployment file places it,
the Python services in this one process, and a few calls a customer would make."""

from __future__ import annotations

import asyncio
import importlib
import shutil
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from reckon._demo.common import SRC, Act

VINYL = Path(SRC).parent / "examples" / "vinyl"

# Stands in for the Node.js recommendations service when node or its npm packages are missing
# (a fresh clone): the same definition, implemented in Python, placed in this process.
_PYTHON_RECOMMENDATIONS = '''"""Written by `reckon demo`: recommendations in Python, not Node.js."""
from vinyl_api.vinyl import catalog_pb2
from vinyl_api.vinyl.catalog_reckon import Catalog
from vinyl_api.vinyl.recommendations_reckon import Recommendations

from reckon.service import Service


class RecommendationsService(Service):
    definition = Recommendations
    requires = (Catalog,)

    async def Recommend(self, request, ctx):
        catalog = ctx.locate(Catalog)
        record = await catalog.GetRecord(request)
        same = await catalog.ListRecords(catalog_pb2.ListRecordsRequest(genre=record.genre))
        others = [r for r in same.records if r.id != record.id][:3]
        return catalog_pb2.RecordList(records=others)
'''


def _node_ready() -> bool:
    modules = VINYL / "recommendations" / "node_modules" / "@grpc" / "grpc-js"
    return shutil.which("node") is not None and modules.is_dir()


def _deployment(act: Act) -> tuple[Any, str]:
    """deploy.toml as written, on free ports and a scratch data directory, logs off."""
    from reckon.service import Deployment

    dep = Deployment.load(VINYL / "deploy.toml")
    services = {n: replace(s, port=0, connect_port=0) for n, s in dep.services.items()}
    how = "recommendations is the Node.js service, a child process"
    if not _node_ready():
        (act.workdir / "reckon_demo_recs.py").write_text(_PYTHON_RECOMMENDATIONS)
        services["recommendations"] = replace(
            services["recommendations"],
            placement="inprocess",
            command=None,
            implementation="reckon_demo_recs:RecommendationsService",
        )
        how = "node or its npm packages are missing: recommendations runs as Python, in-process"
    dep = replace(
        dep,
        services=services,
        data_dir=str(act.workdir / "data"),
        log="off",
        path=(*dep.path, str(act.workdir)),
    )
    return dep, how


async def _session(act: Act, dep: Any) -> None:
    from reckon.errors import ServiceCallError
    from reckon.service import Unit

    storefront = importlib.import_module("vinyl_api.vinyl.storefront_reckon").Storefront
    messages = importlib.import_module("vinyl_api.vinyl.storefront_pb2")
    async with Unit(dep) as unit:
        places = ", ".join(f"{n} ({s['placement']})" for n, s in unit.status().items())
        act.say(f"started: {places}")
        store = unit.locate(storefront)
        page = await store.RecordPage(messages.PageRequest(record_id="bt"))
        r = page.record
        act.say(
            f"RecordPage(bt) -> {r.title} by {r.artist} ({r.year}) ${r.price_cents / 100:.2f}, "
            f"{page.copies_in_stock} in stock; also: "
            + ", ".join(x.title for x in page.recommended)
        )
        act.say("  (storefront asked catalog, inventory and recommendations via ctx.locate)")
        try:
            await store.Buy(messages.BuyRequest(record_id="bt"))
            act.say("anonymous Buy(bt) -> accepted (it should not be)")
        except ServiceCallError as exc:
            act.say(f"anonymous Buy(bt) -> {exc.code}")
        alice = unit.locate(storefront, credentials=("alice", "wonderland"))
        order = await alice.Buy(messages.BuyRequest(record_id="bt", copies=1))
        act.say(
            f"alice Buy(bt) -> order {order.id}: {order.customer} bought {order.record_id} "
            f"for {order.total_cents} cents"
        )
        try:
            await alice.Buy(messages.BuyRequest(record_id="bt", copies=1))
        except ServiceCallError as exc:
            act.say(f"alice Buy(bt) again -> {exc.code} (the last copy is sold)")


def run(act: Act) -> None:
    if not (VINYL / "deploy.toml").is_file():
        raise RuntimeError(f"examples/vinyl is not at {VINYL}: run the demo from a clone")
    dep, how = _deployment(act)
    act.say(f"examples/vinyl/deploy.toml: five services, the Python ones in this process; {how}")
    sys.path.insert(0, str(VINYL))
    try:
        asyncio.run(asyncio.wait_for(_session(act, dep), 60))
    finally:
        sys.path.remove(str(VINYL))
    act.say(
        "the same session over gRPC, one process per service: "
        "cd examples/vinyl && python shop.py deploy-split.toml"
    )
    act.why(
        "services are written once; the deployment file alone decides what shares a process "
        "and what talks gRPC, and calls look the same either way."
    )
