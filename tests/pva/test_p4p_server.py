"""reckon's client against p4p's server (pvxs): every operation, reconnects, errors."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import pytest

from reckon.errors import PvaRemoteError, PvaTimeoutError
from reckon.pva import Client, SyncClient, nt
from reckon.pva.protocol import ScalarArray, Structure

KINDS = "?bBhHiIlLfds"

_BASE: list[dict[str, Any]] = [
    {"name": "p:x", "type": "d", "initial": 1.5},
    {"name": "p:i", "type": "i", "initial": 7},
    {"name": "p:s", "type": "s", "initial": "hello"},
    {"name": "p:count", "type": "i", "initial": 0},
    {"name": "p:add", "kind": "rpc", "mode": "sum"},
    {"name": "p:fail", "kind": "rpc", "mode": "fail"},
    {
        "name": "p:table",
        "kind": "table",
        "columns": [["name", "s"], ["x", "d"]],
        "initial": {"name": ["a", "b"], "x": [1.0, 2.0]},
    },
    {"name": "p:mode", "kind": "enum", "initial": 1, "choices": ["off", "on"]},
]
_ARRAYS: list[dict[str, Any]] = [
    {
        "name": f"p:arr:{k}",
        "kind": "array",
        "type": k,
        "initial": ["a", "b"] if k == "s" else ([True, False] if k == "?" else [1, 2]),
    }
    for k in KINDS
]
SPEC = _BASE + _ARRAYS


@pytest.fixture
def p4p(p4p_server: Any) -> Any:
    return p4p_server(SPEC)


async def test_get_put_put_get_info(p4p: Any) -> None:
    async with Client() as c:
        v = await c.get("p:x", timeout=10)
        assert v["value"] == 1.5
        assert set(v) >= {"value", "alarm", "timeStamp"}
        await c.put("p:x", 4.25)
        assert (await c.get("p:x"))["value"] == 4.25
        await c.put("p:s", "world")
        assert (await c.get("p:s"))["value"] == "world"
        await c.put("p:i", {"value": 9})
        assert (await c.get("p:i"))["value"] == 9
        t = await c.info("p:x")
        assert isinstance(t, Structure) and t.id == "epics:nt/NTScalar:1.0"
        assert "value" in t and "alarm" in t
        assert isinstance(await c.info("p:arr:d"), Structure)
        # pvxs 1.5.3's server does not implement put-get: it must fail cleanly, not hang
        with pytest.raises((PvaRemoteError, PvaTimeoutError)):
            await c.put_get("p:x", 1.0, timeout=2)


async def test_arrays_of_every_scalar_type(p4p: Any) -> None:
    async with Client() as c:
        for k in KINDS:
            name = f"p:arr:{k}"
            t = await c.info(name)
            assert isinstance(t, Structure)
            assert t["value"] == ScalarArray(k)
            v = (await c.get(name, timeout=10))["value"]
            if k == "s":
                assert list(v) == ["a", "b"]
                await c.put(name, ["x", "y", "z"])
                assert list((await c.get(name))["value"]) == ["x", "y", "z"]
            elif k == "?":
                assert list(v) == [True, False]
            else:
                assert list(v) == [1, 2]
                await c.put(name, np.array([3, 4, 5]))
                assert list((await c.get(name))["value"]) == [3, 4, 5]


async def test_nttable_enum_and_rpc(p4p: Any) -> None:
    async with Client() as c:
        table = await c.get("p:table", timeout=10)
        assert list(table["labels"]) == ["name", "x"]
        assert nt.NTTable.rows(table) == [{"name": "a", "x": 1.0}, {"name": "b", "x": 2.0}]
        mode = await c.get("p:mode")
        assert mode["value"]["index"] == 1 and list(mode["value"]["choices"]) == ["off", "on"]
        await c.put("p:mode", {"value": {"index": 0}})
        assert (await c.get("p:mode"))["value"]["index"] == 0
        result = await c.rpc("p:add", nt.uri("p:add", {"a": 2.0, "b": 0.5}))
        assert result["value"] == 2.5
        with pytest.raises(PvaRemoteError, match="refused by test"):
            await c.rpc("p:fail", nt.uri("p:fail", {"a": 1.0}))


@pytest.mark.parametrize("request_text", [None, "record[pipeline=true,queueSize=4]"])
async def test_monitor(p4p: Any, request_text: str | None) -> None:
    async with Client() as c, c.monitor("p:count", request_text) as sub:
        first = await sub.next(timeout=10)
        assert first.value["value"] == 0
        for i in (1, 2, 3):
            await asyncio.to_thread(p4p.send, {"op": "post", "name": "p:count", "value": i})
            await asyncio.to_thread(p4p.read_json)
        seen: list[int] = []
        while not seen or seen[-1] != 3:
            seen.append((await sub.next(timeout=10)).value["value"])
        assert seen == sorted(seen) and seen[-1] == 3


async def test_timeout_names_the_pv(p4p: Any) -> None:
    async with Client() as c:
        with pytest.raises(PvaTimeoutError, match="no:such:pv"):
            await c.get("no:such:pv", timeout=0.5)


async def test_reconnects_after_server_restart(p4p_server: Any, pva_env: dict[str, str]) -> None:
    first = p4p_server(SPEC)
    async with Client() as c, c.monitor("p:x") as sub:
        assert (await c.get("p:x", timeout=10))["value"] == 1.5
        assert (await sub.next(timeout=10)).value["value"] == 1.5
        await c.put("p:x", 3.0)
        assert (await sub.next(timeout=10)).value["value"] == 3.0
        await asyncio.to_thread(first.kill)  # kill -9: no goodbye
        second = await asyncio.to_thread(p4p_server, SPEC)
        # the same PV, served by a new process: the client finds it again by itself
        assert (await c.get("p:x", timeout=20))["value"] == 1.5
        # ... and the monitor resubscribes (first update after a reconnect is the full value)
        assert (await sub.next(timeout=20)).value["value"] == 1.5
        await asyncio.to_thread(second.send, {"op": "post", "name": "p:x", "value": 8.5})
        while (await sub.next(timeout=10)).value["value"] != 8.5:
            pass


def test_sync_client(p4p: Any) -> None:
    with SyncClient() as c:
        assert c.get("p:x", timeout=10)["value"] == 1.5
        c.put("p:x", 2.0)
        assert c.get("p:x")["value"] == 2.0
        assert c.rpc("p:add", nt.uri("p:add", {"a": 1.0, "b": 1.0}))["value"] == 2.0
        updates = c.monitor("p:x", timeout=10)
        assert next(updates).value["value"] == 2.0
        updates.close()
        with pytest.raises(PvaTimeoutError, match="nothing:here"):
            c.get("nothing:here", timeout=0.3)
