"""The web page in headless Chromium (Debian's, driven by Playwright)."""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from reckon.core import CachingLevel, Engine, RequestId
from reckon.observe import ServerHandle, serve

CHROMIUM = os.environ.get("RECKON_CHROMIUM", "/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOT_DIR = os.environ.get("RECKON_SCREENSHOTS")  # set to keep a picture of the page

pytestmark = pytest.mark.skipif(
    not shutil.which(CHROMIUM) and not Path(CHROMIUM).exists(),
    reason="chromium is not installed (make sysdeps installs it)",
)


@pytest.fixture
async def browser(tmp_path: Path) -> AsyncIterator[Any]:
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        context = await pw.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),
            executable_path=CHROMIUM,
            args=ARGS,
            headless=True,
            bypass_csp=True,  # wait_for_function evaluates strings; the page itself runs with CSP
            viewport={"width": 1400, "height": 1000},
        )
        try:
            yield context
        finally:
            await context.close()


async def test_page_shows_a_new_computation_within_a_second(
    browser: Any, server: ServerHandle, engine: Engine, blocked: Any
) -> None:
    for i in range(20):  # some history, hits and misses, for the charts
        await asyncio.to_thread(
            engine.get,
            RequestId("web", i % 7),
            CachingLevel.MEMORY,
            lambda: b"v" * 5000,
            title=f"warm-up {i % 7}",
        )
    page = await browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    await page.goto(server.url)
    await page.wait_for_selector("#conn[data-state='open']", timeout=15_000)
    await page.wait_for_selector("tr[data-task]", timeout=15_000)

    started = time.monotonic()
    job = await asyncio.to_thread(blocked, "browser probe")
    row = page.locator("#tasks tbody tr", has_text="browser probe")
    await row.wait_for(timeout=1_000)
    assert time.monotonic() - started < 5  # generous bound on the whole round trip
    assert await row.get_attribute("data-state") == "running"

    # Status pushes fill the cards and charts.
    await page.wait_for_function(
        "document.getElementById('c-computed').textContent === '7'", timeout=10_000
    )
    assert await page.text_content("#c-memory") == "13"
    if SCREENSHOT_DIR:
        await page.wait_for_timeout(2500)  # a few status samples on the hit-rate chart
        await page.screenshot(path=str(Path(SCREENSHOT_DIR) / "observe-web.png"), full_page=True)

    # Cancel from the page.
    await row.locator("button[data-cancel]").click()
    await page.locator(
        "#tasks tbody tr[data-state='cancelled']", has_text="browser probe"
    ).wait_for(timeout=10_000)
    await asyncio.to_thread(job.release)
    assert type(job.error).__name__ == "ComputationCancelledError"

    # Filter by title.
    await page.fill("#filter", "warm-up 3")
    await page.wait_for_function(
        "document.querySelectorAll('#tasks tbody tr').length === 1", timeout=10_000
    )

    # The buttons: capture off and on, clear memory, clear history.
    await page.click("#btn-capture")
    await page.wait_for_selector("#btn-capture:text('capture: off')", timeout=10_000)
    assert engine.introspector.capture is False
    await page.click("#btn-capture")
    await page.wait_for_selector("#btn-capture:text('capture: on')", timeout=10_000)
    assert engine.introspector.capture is True
    assert len(engine.memory) > 0
    await page.click("#btn-clear-memory")
    await page.wait_for_function("document.getElementById('c-memory').textContent !== ''")
    for _ in range(100):
        if len(engine.memory) == 0:
            break
        await asyncio.sleep(0.05)
    assert len(engine.memory) == 0
    await page.fill("#filter", "")
    await page.click("#btn-clear-history")
    await page.wait_for_function(
        "document.querySelectorAll('#tasks tbody tr').length === 0", timeout=10_000
    )
    assert engine.introspector.history() == []
    assert errors == []


async def test_page_with_token(browser: Any, engine: Engine) -> None:
    with serve(engine, require_token=True, token="page-token") as handle:
        page = await browser.new_page()
        await page.goto(handle.url)  # the URL carries ?token=
        await page.wait_for_selector("#conn[data-state='open']", timeout=15_000)
        bad = await browser.new_page()
        await bad.goto(handle.url.replace("page-token", "nope"))
        await bad.wait_for_selector("#conn[data-state='closed']", timeout=15_000)
        assert "refused" in (await bad.text_content("#conn-text") or "")
