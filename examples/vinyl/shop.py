"""A shopping session at Vinny's Vintage Vinyl: ``python shop.py [deploy.toml|deploy-split.toml]``.

The session's code is the same whatever the deployment file places where. The demo runs on a
scratch data directory (so it can run again) and on free ports (so it never collides).
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from vinyl_api.vinyl.catalog_pb2 import RecordId  # noqa: E402
from vinyl_api.vinyl.inventory_reckon import Inventory  # noqa: E402
from vinyl_api.vinyl.orders_pb2 import ListOrdersRequest  # noqa: E402
from vinyl_api.vinyl.orders_reckon import Orders  # noqa: E402
from vinyl_api.vinyl.storefront_pb2 import BuyRequest, PageRequest  # noqa: E402
from vinyl_api.vinyl.storefront_reckon import Storefront  # noqa: E402

from reckon.errors import ServiceCallError  # noqa: E402
from reckon.service import Deployment, Unit  # noqa: E402


def load(deploy: str | Path, data_dir: str | Path) -> Deployment:
    """The deployment file as written, on a given data dir and any free ports (what has a
    port in the file stays served over the wire)."""
    dep = Deployment.load(HERE / deploy)
    services = {
        n: replace(s, port=0, connect_port=0, expose=s.expose or s.public_port > 0)
        for n, s in dep.services.items()
    }
    return replace(dep, services=services, data_dir=str(data_dir))


async def session(unit: Unit) -> list[str]:
    out: list[str] = []
    store = unit.locate(Storefront)
    page = await store.RecordPage(PageRequest(record_id="bt"))
    r = page.record
    also = ", ".join(x.title for x in page.recommended)
    out.append(
        f"{r.title} by {r.artist} ({r.year}) ${r.price_cents / 100:.2f}, "
        f"{page.copies_in_stock} in stock; you may also like: {also}"
    )
    try:
        await store.Buy(BuyRequest(record_id="bt"))
    except ServiceCallError as exc:
        out.append(f"anonymous buy: {exc.code}")
    # A live stock feed (a server-streaming call): the level now, then each change.
    feed = unit.locate(Inventory).WatchStock(RecordId(id="bt"))
    before = await anext(feed)
    alice = unit.locate(Storefront, credentials=("alice", "wonderland"))
    order = await alice.Buy(BuyRequest(record_id="bt", copies=1))
    out.append(
        f"order {order.id}: {order.customer} bought {order.record_id} for {order.total_cents}"
    )
    after = await anext(feed)
    await feed.aclose()
    out.append(f"live stock of bt: {before.copies} -> {after.copies}")
    try:
        await alice.Buy(BuyRequest(record_id="bt", copies=1))
    except ServiceCallError as exc:
        out.append(f"second copy: {exc.code}")
    mine = await unit.locate(Orders, credentials=("alice", "wonderland")).ListOrders(
        ListOrdersRequest()
    )
    out.append(f"alice has {len(mine.orders)} order(s)")
    return out


async def main(deploy: str) -> None:
    with tempfile.TemporaryDirectory(prefix="vinyl-demo-") as data:
        async with Unit(load(deploy, data)) as unit:
            for name, info in unit.status().items():
                where = info.get("grpc") or "in-process"
                print(f"  {name:<16} {info['placement']:<10} {where}")
            for line in await session(unit):
                print(line)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else "deploy.toml"))
