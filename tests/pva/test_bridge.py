"""reckon values as PVs: an Engine's statistics and memoized results, read by p4p and reckon."""

from __future__ import annotations

import pytest

from reckon.core import CachingLevel, Engine, RequestId
from reckon.errors import ConfigurationError
from reckon.pva import Client, Server, nt
from reckon.pva.bridge import build_pvs, publish_engine_stats, publish_memoized, result_name


async def test_engine_stats_pv_follows_the_engine(pva_env: dict[str, str]) -> None:
    engine = Engine(name="bridge-test")
    async with Server() as server, Client() as c:
        publisher = publish_engine_stats(server, engine, "t:stats", period=0.05)
        async with c.monitor("t:stats") as sub:
            first = await sub.next(timeout=10)
            assert first.value["counters"]["computed"] == 0
            await engine.resolve(RequestId("x", 1), CachingLevel.MEMORY, lambda: 42)
            while True:
                u = await sub.next(timeout=10)
                if u.value["counters"]["computed"] == 1:
                    break
            assert u.value["memory"]["entries"] == 1
        publisher.stop()
        assert "t:stats" not in server
    engine.close()


async def test_memoized_results_become_pvs(pva_env: dict[str, str]) -> None:
    calls: list[int] = []

    def square(x: int) -> int:
        calls.append(x)
        return x * x

    async with Server() as server, Client() as c:
        publish_memoized(server, "t:square", square)
        result = await c.rpc("t:square", nt.uri("t:square", {"x": 7}), timeout=10)
        assert result["value"] == 49
        name = result_name("t:square", {"x": 7})
        assert name == "t:square:x=7"
        assert (await c.get(name, timeout=10))["value"] == 49
        await c.rpc("t:square", nt.uri("t:square", {"x": 3}))
        assert (await c.get("t:square:x=3"))["value"] == 9
        assert calls == [7, 3]


def test_build_pvs_from_a_serve_file() -> None:
    pvs = build_pvs(
        {
            "a": {"type": "d", "value": 1, "units": "mm"},
            "b": {"value": [1.5, 2.5]},
            "c": {"enum": ["x", "y"], "value": 1},
            "d": {"table": {"n": "i"}, "value": {"n": [1, 2]}},
            "e": {"rpc": "echo"},
        }
    )
    assert pvs["a"].value["value"] == 1.0 and pvs["a"].value["display"]["units"] == "mm"
    assert list(pvs["b"].value["value"]) == [1.5, 2.5]
    assert pvs["c"].value["value"]["choices"] == ["x", "y"]
    assert list(pvs["d"].value["value"]["n"]) == [1, 2]
    assert pvs["e"].type is None and pvs["e"].rpc_handler is not None
    with pytest.raises(ConfigurationError, match="unknown rpc"):
        build_pvs({"f": {"rpc": "nope"}})
    with pytest.raises(ConfigurationError, match="give a type"):
        build_pvs({"g": {}})
