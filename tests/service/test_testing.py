"""reckon.testing: virtual time, seeded randomness, byte-identical traces, generated mocks."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from rtest_gen import rtest_pb2 as pb
from rtest_gen.rtest_reckon import Catalog, Recommender, Stock
from svc_helpers import CATALOG, HERE, STOCK, make_deployment
from svc_scenario import run_once

from reckon.errors import DeploymentError, ServiceCallError
from reckon.service import Unit
from reckon.testing import Harness, mock, run_virtual


def test_virtual_time_makes_sleeps_instant() -> None:
    async def main() -> tuple[float, float]:
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        await asyncio.sleep(3600)
        order = []

        async def later(d: float, tag: str) -> None:
            await asyncio.sleep(d)
            order.append(tag)

        await asyncio.gather(later(2, "b"), later(1, "a"), later(2, "c"))
        assert order == ["a", "b", "c"]
        return t0, loop.time()

    wall = time.monotonic()
    t0, t1 = run_virtual(main())
    assert run_virtual(asyncio.to_thread(sum, [1, 2, 3])) == 6  # executors run inline
    assert (t0, t1) == (0.0, 3602.0)
    assert time.monotonic() - wall < 60  # an hour of virtual time, not of waiting


def test_trace_records_every_call_with_virtual_times() -> None:
    _, result, h = run_once()
    lines = [json.loads(x) for x in h.trace.lines]
    assert result[-1] == "DeadlineExceededError"
    assert result[0] == "0:because you liked a: Blue Train"
    # Every call is there, nested ones first, with callers named.
    assert {(x["caller"], x["callee"], x["method"]) for x in lines} == {
        ("catalog", "stock", "Count"),
        ("client", "catalog", "Sleep"),
        ("client", "catalog", "Get"),
        ("client", "recs", "Recommend"),
        ("recs", "catalog", "Get"),
        ("client", "feed", "Ticks"),
        ("client", "feed", "Sum"),
        ("client", "feed", "Echo"),
    }
    # Streams are traced message by message, in order.
    sums = [x for x in lines if x["method"] == "Sum"]
    assert sums and all(len(x["requests"]) == 3 and "response" in x for x in sums)
    ticks = [x for x in lines if x["method"] == "Ticks"]
    assert ticks and all([r.get("count", 0) for r in x["responses"]] == [0, 1, 2] for x in ticks)
    assert "1:Blue Train:3:[0, 2, 4]" in result
    last = lines[-1]
    assert last["error"]["code"] == "DEADLINE_EXCEEDED"
    assert last["end"] - last["start"] == pytest.approx(60.0)
    events = [(r["service"], r["event"]) for r in map(json.loads, h.logs)]
    assert events.index(("stock", "stock ready")) < events.index(("catalog", "catalog ready"))


def test_same_trace_on_20_runs_with_different_hash_seeds() -> None:
    first, _, _ = run_once()
    digest = hashlib.sha256(first.encode()).hexdigest()

    def one(hash_seed: int) -> str:
        env = {**os.environ, "PYTHONHASHSEED": str(hash_seed)}
        out = subprocess.run(
            [sys.executable, str(HERE / "svc_scenario.py")],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            cwd=HERE,
        )
        assert out.returncode == 0, out.stderr
        return out.stdout.split()[0]

    with ThreadPoolExecutor(4) as pool:
        digests = list(pool.map(one, range(20)))
    assert digests == [digest] * 20


def test_a_different_seed_gives_a_different_trace() -> None:
    a, _, _ = run_once(seed=1)
    b, _, _ = run_once(seed=2)
    assert a != b


def test_mocks_generated_from_the_definition_isolate_one_service() -> None:
    h = Harness(
        make_deployment({"stock": dict(STOCK), "catalog": dict(CATALOG)}), isolate="catalog"
    )
    stock = h.mocks["stock"]
    assert sorted(stock.methods) == sorted(Stock.methods)  # from the descriptor
    stock.Count.returns(pb.Item(count=7))

    async def scenario(unit: Unit) -> list[int]:
        catalog = unit.locate(Catalog)
        counts = [(await catalog.Get(pb.Key(id="a"))).count]
        stock.Count.raises("NOT_FOUND")
        counts.append((await catalog.Get(pb.Key(id="b"))).count)  # catalog copes: 0
        stock.Count.raises("INTERNAL", "disk on fire")
        with pytest.raises(ServiceCallError) as info:
            await catalog.Get(pb.Key(id="c"))
        assert info.value.code == "INTERNAL"
        return counts

    assert h.run(scenario) == [7, 0]
    # ready() asked once, then one call per Get.
    assert [r.id for r in stock.Count.calls] == ["a", "a", "b", "c"]
    with pytest.raises(TypeError, match=r"returns rtest\.Item"):
        stock.Count.returns(pb.Key())


def test_a_command_service_must_be_mocked() -> None:
    node = {
        "definition": "rtest_gen.rtest_reckon:Recommender",
        "placement": "process",
        "command": ["node", "x.js"],
        "requires": ["catalog"],
    }
    dep = make_deployment({"stock": dict(STOCK), "catalog": dict(CATALOG), "recs": node})
    with pytest.raises(DeploymentError, match="pass a mock"):
        Harness(dep)
    recs = mock(Recommender)
    recs.Recommend.responds(lambda req: pb.Item(id=req.id, title="mocked"))
    h = Harness(dep, mocks={"recs": recs})

    async def scenario(unit: Unit) -> str:
        return (await unit.locate(Recommender).Recommend(pb.Key(id="z"))).title

    assert h.run(scenario) == "mocked"


def test_the_trace_would_change_if_scheduling_were_not_deterministic(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The 20-run test can fail: the same scenario on a loop that runs each turn's ready
    callbacks in a shuffled order (what real I/O and threads do to a program) gives traces that
    differ from the deterministic one and from each other."""
    import random

    from reckon.testing import VirtualTimeLoop, _harness

    class ShuffledLoop(VirtualTimeLoop):
        def __init__(self, seed: int) -> None:
            super().__init__()
            self._shuffle = random.Random(seed)

        def _run_once(self) -> None:
            ready = list(self._ready)  # type: ignore[attr-defined]
            self._shuffle.shuffle(ready)
            self._ready.clear()  # type: ignore[attr-defined]
            self._ready.extend(ready)  # type: ignore[attr-defined]
            super()._run_once()  # type: ignore[misc]

    def shuffled(seed: int) -> Callable[..., Any]:
        def run(coro: Any, *, start: float = 0.0) -> Any:
            loop = ShuffledLoop(seed)
            asyncio.set_event_loop(loop)
            try:
                return loop.run_until_complete(coro)
            finally:
                asyncio.set_event_loop(None)
                loop.close()

        return run

    deterministic, _, _ = run_once()
    traces = []
    for seed in range(3):
        monkeypatch.setattr(_harness, "run_virtual", shuffled(seed))
        traces.append(run_once()[0])
    assert deterministic not in traces
    assert len(set(traces)) == 3
