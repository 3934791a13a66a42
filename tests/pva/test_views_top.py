"""``reckon pva top`` through textual's pilot (fixed size), against a real reckon server."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
import pytest

from reckon.pva import Client, ClientConfig, Server, ServerConfig, SharedPV, nt
from reckon.pva.config import loopback_environment
from reckon.pva.views.model import PvState, summarize
from reckon.pva.views.top import PvTopApp, cell_texts

from .conftest import until


async def _until(pilot: Any, predicate: Any, within: float = 60.0) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if predicate():
            return
        await pilot.pause(0.05)
    raise AssertionError("the view did not get there in time")


@pytest.fixture
async def served() -> AsyncIterator[tuple[Server, dict[str, SharedPV], Client]]:
    env = loopback_environment()
    pvs = {
        "top:temp": SharedPV(nt.NTScalar("d", display=True), 20.0),
        "top:wave": SharedPV(nt.NTScalarArray("d"), np.arange(5.0)),
        "top:mode": SharedPV(nt.NTEnum(), {"index": 1, "choices": ["off", "on"]}),
        "top:image": SharedPV(nt.NTNDArray(), nt.NTNDArray().wrap(np.zeros((4, 6), np.uint8))),
    }
    pvs["top:temp"].post({"display": {"units": "C"}})
    server = Server(pvs, config=ServerConfig.from_env(env))
    await server.start()
    cenv = loopback_environment(server.tcp_port, server.udp_port)
    cenv["EPICS_PVA_NAME_SERVERS"] = f"127.0.0.1:{server.tcp_port}"
    client = Client(ClientConfig.from_env(cenv))
    yield server, pvs, client
    await client.close()
    await server.stop()


async def test_top_shows_values_severity_rate_and_shapes(served: Any) -> None:
    _server, pvs, client = served
    app = PvTopApp([*pvs, "top:nobody"], client=client, refresh_interval=0.3)
    async with app.run_test(size=(140, 30)) as pilot:

        def row(name: str) -> list[str]:
            return next((r for r in cell_texts(app) if r[0] == name), [])

        try:
            await _until(pilot, lambda: row("top:temp")[1:2] == ["20 C"])
        except AssertionError:
            raise AssertionError(str(cell_texts(app))) from None
        for i in range(1, 6):
            pvs["top:temp"].post(20.0 + i)
            await _until(pilot, lambda i=i: row("top:temp")[1] == f"{20 + i} C")
        pvs["top:temp"].post({"value": 99.5, "alarm": {"severity": 2, "message": "hot"}})
        await _until(pilot, lambda: row("top:temp")[2] == "MAJOR")
        temp = row("top:temp")
        assert float(temp[3]) > 0 and temp[4].endswith("s")
        assert len(temp[5]) >= 5 and set(temp[5]) <= set("▁▂▃▄▅▆▇█")  # a sparkline
        assert row("top:wave")[5] == "shape 5" and row("top:wave")[1].startswith("[0, 1, 2, 3")
        assert row("top:mode")[1] == "(1) on"
        assert row("top:image")[1] == "image 6x4" and row("top:image")[5] == "shape 4x6"
        assert row("top:nobody")[2] == "searching"
        # the severity cell is coloured
        table = app.query_one("#pvs")
        cell = table.get_row("top:temp")[2]  # type: ignore[attr-defined]
        assert "red" in str(cell.style)
        # filter by name
        await pilot.press("f")
        for key in "wav":
            await pilot.press(key)
        await pilot.press("enter")
        await _until(pilot, lambda: [r[0] for r in cell_texts(app)] == ["top:wave"])
        await pilot.press("escape")
        await _until(pilot, lambda: len(cell_texts(app)) == 5)
        for i in range(30):
            pvs["top:temp"].post(float(i))
        await _until(pilot, lambda: row("top:temp")[1] == "29 C")
        await pilot.press("s")
        assert app.sort_key == "rate"
        await _until(pilot, lambda: cell_texts(app)[0][0] == "top:temp")  # the busiest first
        await pilot.press("q")


def test_summaries_of_each_kind() -> None:
    assert summarize({"value": 1.5}) == ("scalar", "1.5", 1.5, ())
    assert summarize({"value": "x"})[0] == "string"
    table = nt.NTTable([("a", "d"), ("b", "s")]).type.default()
    table["value"] = {"a": [1.0, 2.0], "b": ["p", "q"]}
    assert summarize(table, "epics:nt/NTTable:1.0")[3] == (2, 2)
    state = PvState("x")
    for v in (1.0, 2.0, 3.0):
        state.apply({"value": v})
    assert state.sparkline() == "▁▄█" and state.rate() > 0


async def test_the_views_read_a_p4p_server(p4p_server: Any, pva_env: dict[str, str]) -> None:
    """The model behind both views, against pvxs (p4p's server): any pvAccess server works."""
    from reckon.pva.views.model import PvWatch

    server = p4p_server(
        [
            {"name": "p4p:x", "kind": "scalar", "type": "d", "initial": 2.5},
            {"name": "p4p:arr", "kind": "array", "type": "i", "initial": [1, 2, 3]},
            {"name": "p4p:mode", "kind": "enum", "initial": 1, "choices": ["a", "b"]},
        ]
    )
    async with Client() as client:
        watch = await PvWatch(client, ["p4p:x", "p4p:arr", "p4p:mode"]).start()
        try:
            await until(lambda: all(s.updates for s in watch.states.values()))
            server.send({"op": "post", "name": "p4p:x", "value": 3.5})
            await until(lambda: watch.states["p4p:x"].text == "3.5")
        finally:
            await watch.stop()
    x, arr, mode = (watch.states[n] for n in ("p4p:x", "p4p:arr", "p4p:mode"))
    assert x.text == "3.5" and x.kind == "scalar" and x.updates == 2
    assert arr.shape == (3,) and arr.text == "[1, 2, 3]"
    assert mode.text == "(1) b"
