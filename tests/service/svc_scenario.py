"""A deterministic scenario over the rtest unit; run as a script it prints the trace's digest.

The test runs it in many subprocesses with different PYTHONHASHSEED values and compares.
"""

from __future__ import annotations

import asyncio
import hashlib
import sys
from typing import Any

from svc_helpers import CATALOG, STOCK, make_deployment

from reckon.service import Unit
from reckon.testing import Harness


def deployment() -> dict[str, Any]:
    services = {
        "stock": dict(STOCK),
        "catalog": {**CATALOG, "placement": "process"},  # placed in-process by the harness
        "recs": {
            "definition": "rtest_gen.rtest_reckon:Recommender",
            "implementation": "svc_impls:PyRecommender",
        },
        "feed": {
            "definition": "rtest_gen.rtest_reckon:Feed",
            "implementation": "svc_impls:FeedService",
        },
    }
    return make_deployment(services, log="test")


async def scenario(unit: Unit) -> list[str]:
    from rtest_gen import rtest_pb2 as pb
    from rtest_gen.rtest_reckon import Catalog, Feed, Recommender

    catalog = unit.locate(Catalog)
    feed = unit.locate(Feed)
    rng = unit.instance("catalog").ctx.random  # seeded per service

    async def shopper(i: int) -> str:
        await catalog.Sleep(pb.SleepRequest(seconds=rng.random()))
        item = await catalog.Get(pb.Key(id="abc"[i % 3]))
        if i % 4 == 0:
            item = await unit.locate(Recommender).Recommend(pb.Key(id=item.id))
        if i % 3 == 1:  # the streaming kinds interleave with the rest under virtual time
            ticks = pb.TickRequest(count=3, interval=rng.random())
            counts = [t.count async for t in feed.Ticks(ticks)]
            total = await feed.Sum([pb.Item(id=f"s{i}", count=c) for c in counts])
            echoed = [e.count async for e in feed.Echo(pb.Item(count=c) for c in counts)]
            return f"{i}:{item.title}:{total.count}:{echoed}"
        return f"{i}:{item.title}"

    done = await asyncio.gather(*(shopper(i) for i in range(12)))
    try:
        await catalog.Sleep(pb.SleepRequest(seconds=7200), timeout=60)
    except Exception as exc:
        done.append(type(exc).__name__)
    return done


def run_once(seed: int = 7) -> tuple[str, list[str], Harness]:
    h = Harness(deployment(), seed=seed)
    result = h.run(scenario)
    return h.trace_text() + "\n".join(h.logs), result, h


if __name__ == "__main__":
    text, result, _ = run_once()
    print(hashlib.sha256(text.encode()).hexdigest(), len(text), result[-1])
    sys.exit(0)
