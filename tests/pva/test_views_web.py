"""``reckon pva web``: the live PV page in headless Chromium (Debian's, through Playwright),
against a real reckon server; the token rules; the bound on a slow page's memory."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from _browser import HAVE_CHROMIUM, chromium
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import InvalidStatus

from reckon.pva import Client, ClientConfig, Server, ServerConfig, SharedPV, nt
from reckon.pva.config import loopback_environment
from reckon.pva.views.web import PvWebServer


@pytest.fixture
async def served() -> AsyncIterator[tuple[Server, dict[str, SharedPV], Client]]:
    env = loopback_environment()
    image = np.arange(48, dtype=np.uint16).reshape(6, 8)
    pvs = {
        "web:temp": SharedPV(nt.NTScalar("d", display=True), 20.0),
        "web:wave": SharedPV(nt.NTScalarArray("d"), np.sin(np.linspace(0, 6, 5000))),
        "web:image": SharedPV(nt.NTNDArray(), nt.NTNDArray().wrap(image)),
    }
    server = Server(pvs, config=ServerConfig.from_env(env))
    await server.start()
    cenv = loopback_environment(server.tcp_port, server.udp_port)
    cenv["EPICS_PVA_NAME_SERVERS"] = f"127.0.0.1:{server.tcp_port}"
    client = Client(ClientConfig.from_env(cenv))
    yield server, pvs, client
    await client.close()
    await server.stop()


@pytest.fixture
async def browser(tmp_path: Path) -> AsyncIterator[Any]:
    async with chromium(tmp_path / "chromium-profile") as context:
        yield context


@pytest.mark.skipif(not HAVE_CHROMIUM, reason="chromium is not installed (make sysdeps does)")
async def test_a_posted_value_appears_on_the_page(browser: Any, served: Any) -> None:
    _server, pvs, client = served
    async with PvWebServer([*pvs], client=client) as web:
        assert web.url.startswith("http://127.0.0.1:") and "token" not in web.url
        page = await browser.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        await page.goto(web.url)
        pvs["web:temp"].post({"value": 21.25, "display": {"units": "C"}})
        await page.wait_for_function(
            "document.querySelector('tr[data-name=\"web:temp\"] td.value')?.textContent"
            " === '21.25 C'",
            timeout=60000,
        )
        pvs["web:temp"].post({"value": 30.0, "alarm": {"severity": 2, "message": "hot"}})
        await page.wait_for_function(
            "document.querySelector('tr[data-name=\"web:temp\"] td.severity')?.textContent"
            " === 'MAJOR'",
            timeout=60000,
        )
        severity = page.locator('tr[data-name="web:temp"] td.severity')
        assert await severity.get_attribute("class") == "severity sev-2"
        # the history plot of a scalar: select the row, the canvas shows the line
        await page.click('tr[data-name="web:temp"]')
        await page.wait_for_function(
            "document.getElementById('detail-info')?.textContent.endsWith('recent values')"
        )
        assert await _painted(page, "plot")
        # a 1-D array: downsampled to at most 2000 points for the plot
        await page.click('tr[data-name="web:wave"]')
        info = page.locator("#detail-info")
        await page.wait_for_function(
            "document.getElementById('detail-info')?.textContent.startsWith('array of 5000')"
        )
        assert "every 3th point" in await info.text_content()
        assert await _painted(page, "plot")
        # an NTNDArray: drawn as an image of its own size
        await page.click('tr[data-name="web:image"]')
        await page.wait_for_function(
            "document.getElementById('detail-info')?.textContent === 'image 8x6'"
        )
        size = await page.evaluate(
            "[document.getElementById('image').width, document.getElementById('image').height]"
        )
        assert size == [8, 6]
        corner = await page.evaluate(
            "Array.from(document.getElementById('image').getContext('2d')"
            ".getImageData(7, 5, 1, 1).data)"
        )
        assert corner == [255, 255, 255, 255]  # the brightest pixel is the last one
        assert "shape 5000" in await page.locator('tr[data-name="web:wave"] td.trend').inner_text()
        # the filter
        await page.fill("#filter", "wave")
        assert await page.locator('tr[data-name="web:temp"]').is_hidden()
        assert not errors, errors


async def _painted(page: Any, canvas: str) -> bool:
    return bool(
        await page.evaluate(
            f"(() => {{ const c = document.getElementById('{canvas}');"
            " const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
            " for (let i = 3; i < d.length; i += 4) if (d[i]) return true; return false; })()"
        )
    )


async def test_a_token_is_required_off_loopback_or_when_given(served: Any) -> None:
    _server, pvs, client = served
    async with PvWebServer([*pvs], client=client, token="s3cret") as web:
        assert web.url.endswith("?token=s3cret")
        base = f"ws://127.0.0.1:{web.port}/ws"
        with pytest.raises(InvalidStatus):
            async with ws_connect(base):
                pass
        with pytest.raises(InvalidStatus):
            async with ws_connect(base + "?token=wrong"):
                pass
        async with ws_connect(base + "?token=s3cret") as ws:
            assert json.loads(await ws.recv())["type"] == "hello"
        # a page from another origin may not connect
        with pytest.raises(InvalidStatus):
            async with ws_connect(base + "?token=s3cret", origin="http://evil.example"):  # type: ignore[arg-type]
                pass
    from reckon.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match="requires a token"):
        PvWebServer(["x"], client=client, host="0.0.0.0", require_token=False)


async def test_a_page_that_does_not_read_holds_bounded_bytes(served: Any) -> None:
    _server, pvs, client = served
    async with PvWebServer([*pvs], client=client, max_client_bytes=8 * 1024) as web:
        async with ws_connect(f"ws://127.0.0.1:{web.port}/ws", max_queue=1) as ws:
            await ws.recv()
            for i in range(600):  # the page never reads: its frames are replaced, not queued
                pvs["web:wave"].post(np.full(5000, float(i)))
                pvs["web:temp"].post(float(i))
                if i % 50 == 0:
                    await asyncio.sleep(0.01)
            await asyncio.sleep(0.3)
            one_wave = len(json.dumps(web.frame(web.watch.states["web:wave"])))
            assert one_wave > 8 * 1024  # so the bound is what keeps the page's bytes down
            assert web.pending_bytes() <= 8 * 1024 + one_wave
            # once it reads, the last value arrives
            last = None
            while last != 599.0:
                frame = json.loads(await asyncio.wait_for(ws.recv(), 60))
                if frame.get("name") == "web:temp" and frame["updates"]:
                    last = float(frame["text"])
